"""Every 4D, multi-echo, diffusion and mixed-image-type series of ../shared/realdata, read by lightning_dicom,
against dcm2niix (tests/dcm2niix_reference.py): the volumes of each dcm2niix output, in the order of its 4th
dimension, equal ours voxel for voxel (integers exactly, floats within the harness' rtol) with the 8 corner
voxels within 0.01 mm (LPS).

What is compared, exactly:

* a folder is "multi-volume" when a dcm2niix output has several volumes, or several outputs share a
  SeriesInstanceUID (:func:`_is_multi_volume`; every realdata folder is a parameter, the others skip:
  no hand-picked list);
* our volumes of one SeriesInstanceUID are grouped by (echo number, echo time, image type) and ordered by
  ``temporal_index``: each dcm2niix output must be matched by one group with as many volumes, volume k to
  its 4th-dimension index k, values and corners as above;
* Siemens mosaics (ImageType MOSAIC): besides the voxels (tiles unpacked by
  :mod:`lightning_dicom.dicom.mosaic`), the split is checked: one volume per file (time point), as many
  as dcm2niix's 4th dimension, in AcquisitionNumber order (= file name order there).
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import dcm2niix_reference as ref
import pytest

from lightning_dicom.dicom.index import DicomIndex, SeriesRecord
from lightning_dicom.dicom.series import read_series

pytestmark = [
    pytest.mark.skipif(
        ref.dcm2niix_path() is None, reason="dcm2niix is not installed (pip install dcm2niix)"
    ),
    pytest.mark.skipif(not ref.REALDATA.is_dir(), reason=f"real data not found at {ref.REALDATA}"),
]


@pytest.fixture(scope="session")
def refs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[ref.RefSeries]]:
    """dcm2niix's outputs per folder, converted once per session (cached in a session tmp dir)."""
    return ref.convert_realdata(tmp_path_factory.mktemp("dcm2niix_4d"))


@pytest.fixture(scope="session")
def ours() -> dict[str, list[SeriesRecord]]:
    """Our volumes per realdata folder (the folder of their first file)."""
    with DicomIndex([ref.REALDATA]) as idx:
        idx.scan(workers=1)
        series = idx.series()
    out: dict[str, list[SeriesRecord]] = defaultdict(list)
    for s in series:
        out[Path(s.files[0]).parent.relative_to(ref.REALDATA.resolve()).as_posix()].append(s)
    return out


def _is_multi_volume(outputs: list[ref.RefSeries]) -> bool:
    """dcm2niix writes a 4D output, or several outputs of one SeriesInstanceUID, for this folder."""
    primary = [o for o in outputs if not o.variant]
    uids = [o.series_uid for o in primary]
    return any(len(o.volumes) > 1 for o in primary) or len(uids) != len(set(uids))


FOLDERS = (
    [p.relative_to(ref.REALDATA).as_posix() for p in ref.realdata_folders()] if ref.REALDATA.is_dir() else []
)


def _groups(records: list[SeriesRecord], uid: str) -> list[list[SeriesRecord]]:
    by_kind: dict[tuple, list[SeriesRecord]] = defaultdict(list)
    for r in records:
        if r.series_uid == uid:
            by_kind[(r.echo_number, r.echo_time, r.image_type)].append(r)
    return [sorted(g, key=lambda r: r.temporal_index) for g in by_kind.values()]


def test_the_multi_volume_folders_are_found(refs) -> None:
    multi = [rel for rel, outputs in refs.items() if _is_multi_volume(outputs)]
    assert len(multi) >= 19, multi
    assert "dcm_qa_nih/20180918GE/mr_0004" in multi and "dcm_qa_enh/Philips" in multi


@pytest.mark.parametrize("rel", FOLDERS)
def test_volumes_equal_dcm2niix(rel: str, refs, ours) -> None:
    if not _is_multi_volume(refs[rel]):
        pytest.skip("one volume per series in dcm2niix: tests/test_dcm2niix_reference.py covers it")
    records = ours[rel]
    assert records, f"no volume indexed in {rel}"
    for out in (o for o in refs[rel] if not o.variant):
        groups = _groups(records, out.series_uid)
        if any("MOSAIC" in (r.image_type or "") for g in groups for r in g):
            (group,) = groups  # one mosaic file per time point (tiles unpacked by dicom.mosaic)
            assert len(group) == len(out.volumes) and all(len(r.files) == 1 for r in group)
            assert [r.acquisition_number for r in group] == sorted(r.acquisition_number for r in group)
            assert [Path(r.files[0]).name for r in group] == sorted(Path(r.files[0]).name for r in group)
            assert all(r.split_by == "AcquisitionNumber" for r in group)
        matched = []
        for group in (g for g in groups if len(g) == len(out.volumes)):
            reports = [ref.compare_sitk(read_series(r), v) for r, v in zip(group, out.volumes, strict=True)]
            if all(c.ok() for c in reports):
                matched.append(group)
        assert matched, (
            f"{rel}: dcm2niix output {out.nifti.name} ({out.shape}) matched by none of our groups "
            f"{[(len(g), g[0].split_by) for g in groups]}"
        )
        if out.bvals is not None:
            ours_b = [r.b_value for r in matched[0]]
            assert ours_b == pytest.approx([float(b) for b in out.bvals], abs=1e-3)


def test_ge_fmri_is_ten_volumes_by_instance_number(ours) -> None:
    records = ours["dcm_qa_nih/20180918GE/mr_0004"]
    assert len(records) == 10 and {r.n_slices for r in records} == {15}
    assert {r.split_by for r in records} == {"InstanceNumber order"}
    assert sorted(r.temporal_index for r in records) == list(range(10))


def test_philips_field_map_two_volumes_each_rescaled_by_its_frames(ours) -> None:
    records = ours["dcm_qa_enh/Philips"]
    assert len(records) == 2
    kinds = sorted(r.image_type for r in records)
    assert kinds[0].endswith("FIELD_MAP") and kinds[1].endswith("\\M")
    fmap = next(r for r in records if r.image_type.endswith("FIELD_MAP"))
    assert fmap.frame_rescale and fmap.frame_rescale[0] == pytest.approx((0.24420024420024, -500.0))


def test_slice_orientation_folder_keeps_series_numbers_apart(ours) -> None:
    records = ours["dicom2nifti/failing/sliceorientation/001"]
    assert sorted(r.series_number for r in records) == [202, 501]
