"""The dcm2niix reference harness itself (tests/dcm2niix_reference.py), on ../shared/realdata.

SimpleITK's ImageSeriesReader (not lightning_dicom) reads the same files; after canonicalisation it
must equal dcm2niix voxel for voxel, corners within 0.01 mm.
"""

from __future__ import annotations

from pathlib import Path

import dcm2niix_reference as ref
import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

pytestmark = [
    pytest.mark.skipif(
        ref.dcm2niix_path() is None, reason="dcm2niix is not installed (pip install dcm2niix)"
    ),
    pytest.mark.skipif(not ref.REALDATA.is_dir(), reason=f"real data not found at {ref.REALDATA}"),
]

GE_FMRI = "dcm_qa_nih/20180918GE/mr_0004"


def _sitk_series(files: list[Path]) -> sitk.Image:
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames([str(f) for f in files])
    return reader.Execute()


def _sorted_series_files(folder: Path) -> list[Path]:
    uid = sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(folder))[0]
    return [Path(f) for f in sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder), uid)]


def _assert_matches_sitk(image: sitk.Image, volume: ref.RefVolume) -> ref.Comparison:
    return ref.assert_same_volume(
        sitk.GetArrayFromImage(image),
        image.GetOrigin(),
        image.GetSpacing(),
        np.reshape(image.GetDirection(), (3, 3)),
        volume,
    )


@pytest.mark.parametrize(
    "rel",
    [
        "dicom2nifti/ge/anatomical/001",
        "dicom2nifti/generic/anatomical/001",
        "dicom2nifti/hitachi/anatomical/001",
        "dicom2nifti/generic/rgb/001",
    ],
)
def test_plain_3d_series_equals_sitk(rel: str, tmp_path: Path) -> None:
    folder = ref.REALDATA / rel
    (out,) = ref.convert(folder, tmp_path)
    assert len(out.volumes) == 1 and out.fourth_dim == "" and out.variant == ""
    assert out.series_uid == str(
        pydicom.dcmread(next(folder.iterdir()), stop_before_pixels=True).SeriesInstanceUID
    )
    files = ref.source_files(out, folder)
    assert sorted(files) == sorted(_sorted_series_files(folder))
    report = _assert_matches_sitk(_sitk_series(_sorted_series_files(folder)), out.volumes[0])
    assert report.integer_exact and report.max_abs_diff == 0


def test_sagittal_needs_canonical(tmp_path: Path) -> None:
    """dcm2niix's array differs from SimpleITK's by flips/permutation; canonical() reconciles them."""
    folder = ref.REALDATA / "dicom2nifti/ge/anatomical/001"
    (out,) = ref.convert(folder, tmp_path)
    image = _sitk_series(_sorted_series_files(folder))
    ours = sitk.GetArrayFromImage(image)
    assert ours.shape == out.volumes[0].array.shape
    assert not np.array_equal(ours, out.volumes[0].array)  # the row flip at least
    assert ref.compare_sitk(image, out.volumes[0]).ok()


def test_varying_rescale_is_converted_with_per_slice_scaling(tmp_path: Path) -> None:
    """RescaleSlope/Intercept differ per slice: -p n would ignore that, so the harness reruns with -p y."""
    folder = ref.REALDATA / "dicom2nifti/generic/anatomical/002_non_isotropic"
    (out,) = ref.convert(folder, tmp_path)
    assert out.p_option == "y"
    report = _assert_matches_sitk(_sitk_series(_sorted_series_files(folder)), out.volumes[0])
    assert not report.integer_exact and report.max_abs_diff < 1e-4


def test_ge_fmri_is_10_volumes_of_15_slices_in_instance_order(tmp_path: Path) -> None:
    folder = ref.REALDATA / GE_FMRI
    (out,) = ref.convert(folder, tmp_path)
    assert out.shape == (64, 64, 15, 10) and out.fourth_dim == "time"
    assert all(v.array.shape == (15, 64, 64) for v in out.volumes)
    files = ref.source_files(out, folder)
    assert len(files) == 150
    by_instance = sorted(files, key=lambda f: int(pydicom.dcmread(f, stop_before_pixels=True).InstanceNumber))
    for t in (0, 9):  # InstanceNumber is time-major: 15 slices of time point 1, then time point 2...
        _assert_matches_sitk(_sitk_series(by_instance[15 * t : 15 * t + 15]), out.volumes[t])


def test_convert_a_file_list(tmp_path: Path) -> None:
    files = sorted((ref.REALDATA / GE_FMRI).glob("*.dcm"))[:30]
    (out,) = ref.convert(files, tmp_path)
    assert out.shape == (64, 64, 15, 2)


def test_mosaic_and_bvals(tmp_path: Path) -> None:
    (mosaic,) = ref.convert(ref.REALDATA / "dcm_qa_nih/20180918Si/mr_0003", tmp_path / "si")
    assert mosaic.shape == (72, 72, 5, 2) and "MOSAIC" in mosaic.image_type
    (dwi,) = ref.convert(ref.REALDATA / "dicom2nifti/philips_enhanced/dti/001", tmp_path / "dwi")
    assert dwi.fourth_dim == "bval" and dwi.bvals.tolist() == [1300, 1300, 1300, 0]
    assert dwi.bvecs.shape == (3, 4)


def test_canonical_is_invariant_to_flips_and_permutations() -> None:
    rng = np.random.default_rng(0)
    arr = rng.integers(0, 1000, size=(5, 6, 7)).astype(np.int16)  # z, y, x
    rot = sitk.VersorTransform((0.2, -0.1, 0.3), 0.25).GetMatrix()  # an oblique direction
    affine = ref.itk_affine((10.0, -20.0, 30.0), (0.8, 0.9, 2.5), np.reshape(rot, (3, 3)))
    base_arr, base_aff = ref.canonical(arr, affine)
    # the same voxels indexed differently: flip x and z, then swap x and y
    flip = np.eye(4)
    flip[0, 0], flip[0, 3] = -1, arr.shape[2] - 1
    flip[2, 2], flip[2, 3] = -1, arr.shape[0] - 1
    arr2, aff2 = arr[::-1, :, ::-1], affine @ flip
    swap = np.eye(4)[[1, 0, 2, 3]]
    arr3, aff3 = arr2.transpose(0, 2, 1), aff2 @ swap
    for other_arr, other_aff in ((arr2, aff2), (arr3, aff3)):
        can_arr, can_aff = ref.canonical(other_arr, other_aff)
        np.testing.assert_array_equal(can_arr, base_arr)
        np.testing.assert_allclose(can_aff, base_aff, atol=1e-9)
    # corners are the same world points, in canonical order
    np.testing.assert_allclose(
        np.sort(ref.corners(arr.shape, affine), axis=0),
        np.sort(ref.corners(base_arr.shape, base_aff), axis=0),
        atol=1e-9,
    )


def test_assert_same_volume_catches_a_shift_and_a_value(tmp_path: Path) -> None:
    folder = ref.REALDATA / "dicom2nifti/hitachi/anatomical/001"
    (out,) = ref.convert(folder, tmp_path)
    image = _sitk_series(_sorted_series_files(folder))
    arr, origin = sitk.GetArrayFromImage(image), np.array(image.GetOrigin())
    spacing, direction = image.GetSpacing(), np.reshape(image.GetDirection(), (3, 3))
    with pytest.raises(AssertionError, match="corners"):
        ref.assert_same_volume(arr, origin + [0, 0.02, 0], spacing, direction, out.volumes[0])
    changed = arr.copy()
    changed[1, 2, 3] += 1
    with pytest.raises(AssertionError, match="values"):
        ref.assert_same_volume(changed, origin, spacing, direction, out.volumes[0])
    with pytest.raises(AssertionError, match="shapes"):
        ref.assert_same_volume(arr[:-1], origin, spacing, direction, out.volumes[0])


def test_convert_realdata_covers_every_folder_and_caches(tmp_path: Path) -> None:
    first = ref.convert_realdata(tmp_path)
    assert set(first) == {f.relative_to(ref.REALDATA).as_posix() for f in ref.realdata_folders()}
    assert all(first.values()), [k for k, v in first.items() if not v]
    stamp = tmp_path / GE_FMRI / "dcm2niix.key"
    mtime = stamp.stat().st_mtime_ns
    again = ref.convert_realdata(tmp_path)
    assert stamp.stat().st_mtime_ns == mtime  # loaded, not converted again
    assert [o.nifti.name for o in again[GE_FMRI]] == [o.nifti.name for o in first[GE_FMRI]]
    assert again["dicom2nifti/generic/anatomical/002_non_isotropic"][0].p_option == "y"
