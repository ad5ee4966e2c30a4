"""Series holding several volumes (lightning_dicom.dicom.volumes): one generated input per row of issue 9's
table, and the same kind in other vendors' tags. Each test asserts the volumes, their order, values and
attributes, or the refusal's message."""

from __future__ import annotations

import numpy as np
import pytest

from lightning_dicom.config import SelectionConfig, SplitConfig
from lightning_dicom.data.split import split_series
from lightning_dicom.demo.synthetic_mr import (
    MRVolume,
    ge_b_value,
    philips_b_value,
    siemens_b_value,
    write_enhanced_mr,
    write_mr_series,
)
from lightning_dicom.dicom import frames as frames_mod
from lightning_dicom.dicom import series as series_mod
from lightning_dicom.dicom.index import DicomIndex, select_series
from lightning_dicom.dicom.series import read_series
from lightning_dicom.errors import SeriesError

NZ, NY, NX = 4, 6, 5


def _stored(t: int, nz: int = NZ) -> np.ndarray:
    """Distinct stored values per volume t and slice z: 1000 t + 10 z + pixel ramp."""
    z = np.arange(nz)[:, None, None]
    return (1000 * (t + 1) + 10 * z + np.arange(NY * NX).reshape(1, NY, NX) % 7).astype(np.uint16)


def _volumes(root):
    with DicomIndex([root]) as idx:
        idx.scan(workers=1)
        return idx.series()


def _assert_values(rec, expected: np.ndarray) -> None:
    arr = np.asarray(series_mod.io.to_array(read_series(rec)), dtype=np.float64)
    np.testing.assert_allclose(arr, expected, rtol=0, atol=1e-3)


def test_ge_fmri_without_temporal_attributes_splits_by_instance_number(tmp_path):
    vols = [MRVolume(_stored(t), {"TemporalPositionIdentifier": 1, "AcquisitionNumber": 1}) for t in range(3)]
    write_mr_series(tmp_path, vols, common_attrs={"NumberOfTemporalPositions": 3})
    recs = _volumes(tmp_path)
    assert len(recs) == 3 and {r.n_slices for r in recs} == {NZ}
    assert {r.split_by for r in recs} == {"InstanceNumber order"}
    for r in recs:
        assert r.n_volumes == 3
        _assert_values(r, vols[r.temporal_index].values)
    assert [r.temporal_index for r in recs] == [0, 1, 2]


@pytest.mark.parametrize(
    ("keyword", "attr"), [("TemporalPositionIdentifier", "temporal"), ("TriggerTime", "trig")]
)
def test_time_points_by_a_temporal_attribute(tmp_path, keyword, attr):
    vols = [MRVolume(_stored(t), {keyword: str(100 * t) if attr == "trig" else t + 1}) for t in range(3)]
    write_mr_series(tmp_path, vols)
    recs = _volumes(tmp_path)
    assert {r.split_by for r in recs} == {keyword}
    assert len(recs) == 3
    for r in recs:
        _assert_values(r, vols[r.temporal_index].values)
    assert [r.temporal_index for r in recs] == [0, 1, 2]


def test_multi_echo_is_one_volume_per_echo_and_selectable(tmp_path):
    vols = [MRVolume(_stored(e), {"EchoNumbers": e + 1, "EchoTime": str(10 + 20 * e)}) for e in range(2)]
    write_mr_series(tmp_path, vols)
    recs = _volumes(tmp_path)
    assert sorted((r.echo_number, r.echo_time) for r in recs) == [(1, 10.0), (2, 30.0)]
    assert all(r.split_by == "echo" and r.temporal_index == 0 for r in recs)
    first = next(r for r in recs if r.echo_number == 1)
    _assert_values(first, vols[0].values)
    kept, dropped = select_series(recs, SelectionConfig(echo_number=[1]))
    assert [r.echo_number for r in kept] == [1] and "echo number 2" in dropped[0][1]


def test_dwi_standard_b_values_and_directions(tmp_path):
    vols = [MRVolume(_stored(0), {"DiffusionBValue": 0.0})]
    for t, g in enumerate(([1.0, 0.0, 0.0], [0.0, 1.0, 0.0]), start=1):
        vols.append(MRVolume(_stored(t), {"DiffusionBValue": 1000.0, "DiffusionGradientOrientation": g}))
    write_mr_series(tmp_path, vols)
    recs = _volumes(tmp_path)
    assert [r.b_value for r in recs] == [0.0, 1000.0, 1000.0]
    assert [r.temporal_index for r in recs] == [0, 1, 2]
    assert recs[1].split_by == "b-value, DiffusionGradientOrientation"
    for r, v in zip(recs, vols, strict=True):
        _assert_values(r, v.values)
    kept, _ = select_series(recs, SelectionConfig(b_value=[0]))
    assert [r.b_value for r in kept] == [0.0]


@pytest.mark.parametrize(
    "make",
    [
        lambda b: ge_b_value(b),
        lambda b: ge_b_value(b, offset=True),
        lambda b: siemens_b_value(b),
        lambda b: philips_b_value(b),
    ],
    ids=["GE", "GE+1e9", "Siemens-block-11", "Philips"],
)
def test_vendor_private_b_values_with_their_creator(tmp_path, make):
    vols = [MRVolume(_stored(t), private=[make(b)]) for t, b in enumerate((0, 800))]
    write_mr_series(tmp_path, vols)
    recs = _volumes(tmp_path)
    assert [r.b_value for r in recs] == [0.0, 800.0]
    _assert_values(recs[1], vols[1].values)


def test_private_b_value_of_another_creator_is_not_trusted(tmp_path):
    vols = [
        MRVolume(_stored(t), private=[ge_b_value(b, creator="ACME_PRIVATE")]) for t, b in enumerate((0, 800))
    ]
    write_mr_series(tmp_path, vols)
    recs = _volumes(tmp_path)
    assert [r.b_value for r in recs] == [None, None]
    assert {r.split_by for r in recs} == {"InstanceNumber order"}


def test_b0_and_b2000_at_offset_positions_are_two_regular_volumes(tmp_path):
    nz = 12
    vols = [
        MRVolume(_stored(0, nz), {"DiffusionBValue": 2000.0}),
        MRVolume(_stored(1, nz), {"DiffusionBValue": 0.0}, z_offset=3.5),
    ]
    write_mr_series(tmp_path, vols, spacing=(1.0, 1.0, 4.0))
    recs = _volumes(tmp_path)
    assert [(r.b_value, r.n_slices, r.spacing[2]) for r in recs] == [(2000.0, 12, 4.0), (0.0, 12, 4.0)]
    assert recs[1].positions[0][2] - recs[0].positions[0][2] == pytest.approx(3.5)
    for r, v in zip(recs, vols, strict=True):
        _assert_values(r, v.values)


def test_resampling_refuses_a_stack_mixing_acquisitions(tmp_path):
    """Without b-value tags the two acquisitions look like one irregular stack: resampling would blend them."""
    nz = 6
    vols = [
        MRVolume(_stored(0, nz), {"AcquisitionNumber": 1}),
        MRVolume(_stored(1, nz), {"AcquisitionNumber": 2}, z_offset=3.5),
    ]
    write_mr_series(tmp_path, vols)
    (rec,) = _volumes(tmp_path)
    assert rec.n_slices == 12 and rec.varying == ("acquisition_number",)
    with pytest.raises(SeriesError, match="differ in acquisition_number: resampling would blend"):
        read_series(rec, irregular="resample")


def test_two_acquisitions_at_one_position_are_named_in_the_refusal(tmp_path):
    vols = [
        MRVolume(_stored(0), {"AcquisitionNumber": 2}),
        MRVolume(_stored(1), {"AcquisitionNumber": 3}, z_offset=12.0),  # its first slice = the other's last
    ]
    files = write_mr_series(tmp_path, vols)
    (rec,) = _volumes(tmp_path)
    with pytest.raises(SeriesError) as info:
        read_series(rec)
    msg = str(info.value)
    assert "2 instances share the slice position 42.000 mm" in msg
    assert str(files[NZ - 1]) in msg and str(files[NZ]) in msg
    assert "AcquisitionNumber (2, 3)" in msg and info.value.path == rec.refusal[0]


def test_mosaic_like_files_one_per_time_point(tmp_path):
    vols = [MRVolume(_stored(t, 1), {"AcquisitionNumber": t + 1}) for t in range(3)]
    write_mr_series(tmp_path, vols)
    recs = _volumes(tmp_path)
    assert [(r.n_slices, r.acquisition_number, r.split_by) for r in recs] == [
        (1, t + 1, "AcquisitionNumber") for t in range(3)
    ]


def test_enhanced_mixed_image_types_with_per_frame_rescale_decoded_once(tmp_path):
    vols = [
        MRVolume(
            _stored(0),
            {"EchoTime": "1.5"},
            slope=1.25,
            intercept=0.0,
            frame_type=("ORIGINAL", "PRIMARY", "M", "M"),
        ),
        MRVolume(
            _stored(1),
            {"EchoTime": "0"},
            slope=0.25,
            intercept=-500.0,
            frame_type=("ORIGINAL", "PRIMARY", "M", "FIELD_MAP"),
        ),
    ]
    write_enhanced_mr(tmp_path / "fmap.dcm", vols, position_major=False)
    recs = _volumes(tmp_path)
    assert [r.image_type.split("\\")[-1] for r in recs] == ["M", "FIELD_MAP"]
    calls = []

    def counting(rec, ptype):
        calls.append(rec.series_id)
        return series_mod._decode(rec, ptype)

    frames_mod._LAST = None
    for r, v in zip(recs, vols, strict=True):
        img = frames_mod.decode_volume(r, series_mod._pixel_type(r), counting)
        np.testing.assert_allclose(series_mod.io.to_array(img), v.values, atol=1e-3)
        _assert_values(r, v.values)
    assert len(calls) == 1  # the file was decoded once for both volumes


def test_enhanced_dti_orders_volumes_as_dcm2niix(tmp_path):
    """b=0 has the last DimensionIndexValues (65): dcm2niix puts it after the gradients."""
    vols = [MRVolume(_stored(0), {"DiffusionBValue": 0}, dim=[1, 65])]
    vols += [MRVolume(_stored(t), {"DiffusionBValue": 1300}, dim=[2, t]) for t in (1, 2, 3)]
    write_enhanced_mr(tmp_path / "dti.dcm", vols, position_major=True)
    recs = _volumes(tmp_path)
    assert [r.b_value for r in recs] == [1300.0, 1300.0, 1300.0, 0.0]
    assert [r.temporal_index for r in recs] == [0, 1, 2, 3]
    for r, v in zip(recs, [*vols[1:], vols[0]], strict=True):
        _assert_values(r, v.values)


def test_enhanced_fmri_temporal_index_selection(tmp_path):
    vols = [MRVolume(_stored(t), {"TemporalPositionIndex": t + 1}) for t in range(3)]
    write_enhanced_mr(tmp_path / "bold.dcm", vols)
    recs = _volumes(tmp_path)
    kept, _ = select_series(recs, SelectionConfig(temporal_index=[2]))
    assert len(kept) == 1 and kept[0].temporal_index == 2
    _assert_values(kept[0], vols[2].values)


def test_split_keeps_the_volumes_of_a_series_together(tmp_path):
    for s in range(6):
        write_mr_series(
            tmp_path / f"s{s}", [MRVolume(_stored(t), {"AcquisitionNumber": t}) for t in range(3)], seed=s
        )
    recs = _volumes(tmp_path)
    assert len(recs) == 18
    split = split_series(recs, SplitConfig(val=0.34, test=0.0, group_by="series"))
    part_of = {sid: part for part, ids in split.items() for sid in ids}
    for uid in {r.series_uid for r in recs}:
        assert len({part_of[r.series_id] for r in recs if r.series_uid == uid}) == 1


def test_cli_index_prints_volumes_by_attribute(tmp_path, capsys):
    from lightning_dicom.cli import main

    write_mr_series(tmp_path / "data", [MRVolume(_stored(t)) for t in range(3)])
    assert (
        main(
            [
                "index",
                str(tmp_path / "data"),
                "--work-dir",
                str(tmp_path / "work"),
                "--quiet",
                "--workers",
                "1",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "3 volumes of 4 slices, by InstanceNumber order" in out


def test_acquisition_attributes_reach_the_cache_sidecar_and_batch_meta(tmp_path):
    from lightning_dicom.config import PreprocessingConfig
    from lightning_dicom.data.cache import VolumeCache
    from lightning_dicom.data.dataset import SeriesDataset

    vols = [MRVolume(_stored(0), {"DiffusionBValue": 0.0}), MRVolume(_stored(1), {"DiffusionBValue": 1000.0})]
    write_mr_series(tmp_path / "dwi", vols)
    recs = _volumes(tmp_path / "dwi")
    prep = PreprocessingConfig(normalize="none")
    cache = VolumeCache(tmp_path / "cache", prep)
    assert cache.build_one(recs[1], raise_errors=True) == "ok"
    side = cache.sidecar(recs[1])["acquisition"]
    assert (side["b_value"], side["temporal_index"], side["n_volumes"]) == (1000.0, 1, 2)
    meta = SeriesDataset(recs, prep)[1]["meta"]
    assert float(meta["b_value"]) == 1000.0 and int(meta["temporal_index"]) == 1


def test_a_per_slice_acquisition_counter_is_not_a_mixed_stack(tmp_path):
    """Step-and-shoot CT numbers each slice's acquisition: that alone does not stop resampling."""
    vols = [
        MRVolume(_stored(0, 1), {"AcquisitionNumber": z + 1}, z_offset=z * 4.0 + (1.0 if z == 3 else 0.0))
        for z in range(5)
    ]
    write_mr_series(tmp_path, vols)
    (rec,) = _volumes(tmp_path)
    assert rec.n_slices == 5 and rec.varying == ()
    from lightning_dicom.errors import LightningDicomWarning

    with pytest.warns(LightningDicomWarning, match="resampled onto a uniform grid"):
        assert read_series(rec, irregular="resample").GetSize()[2] == 5


@pytest.mark.parametrize("vendor", ["ge", "siemens", "philips"])
def test_fast_parser_and_pydicom_read_the_same_acquisition_fields(tmp_path, vendor):
    import json

    from lightning_dicom.dicom.header import _fast_header, _pydicom_header

    make = {"ge": ge_b_value, "siemens": siemens_b_value, "philips": philips_b_value}[vendor]
    attrs = {"EchoTime": "12.5", "EchoNumbers": 2, "AcquisitionNumber": 3, "TriggerTime": "40"}
    (path, *_) = write_mr_series(tmp_path, [MRVolume(_stored(0, 1), attrs, private=[make(1500)])])
    with open(path, "rb") as fh:
        fast = _fast_header(fh, str(path))
        fh.seek(0)
        slow = _pydicom_header(fh, str(path))
    assert fast is not None and fast["acq"] == slow["acq"]
    acq = json.loads(fast["acq"])
    assert (acq["b_value"], acq["echo_number"], acq["echo_time"], acq["trigger_time"]) == (
        1500.0,
        2,
        12.5,
        40.0,
    )
    assert acq["image_type"] == "ORIGINAL\\PRIMARY\\M\\ND"


def test_index_report_lists_the_refusal(tmp_path):
    vols = [
        MRVolume(_stored(0), {"AcquisitionNumber": 2}),
        MRVolume(_stored(1), {"AcquisitionNumber": 3}, z_offset=12.0),
    ]
    write_mr_series(tmp_path, vols)
    with DicomIndex([tmp_path]) as idx:
        idx.scan(workers=1)
        (refusal,) = idx.report()["refusals"]
    assert "duplicate slice positions" in refusal["reason"] and refusal["path"].endswith(".dcm")
