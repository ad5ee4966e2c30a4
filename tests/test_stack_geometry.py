"""Regular or not (issue 10, lightning_dicom/dicom/stack_geometry.py): rounding noise in
ImagePositionPatient is read, real gantry tilts of 1-20 degrees are still detected (fitted in-plane
drift against depth), and stacks missing ImagePositionPatient/ImageOrientationPatient are refused as one
volume naming the missing tag."""

from __future__ import annotations

import math

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from pydicom.uid import SecondaryCaptureImageStorage

from lightning_dicom.demo.synthetic import direction_from_orientation, make_phantom, write_series
from lightning_dicom.demo.synthetic_stacks import write_irregular_series, write_multiframe
from lightning_dicom.dicom.index import DicomIndex
from lightning_dicom.dicom.series import read_series
from lightning_dicom.dicom.stack_geometry import in_plane_fit, shear_tolerance_mm
from lightning_dicom.errors import LightningDicomWarning, SeriesError
from lightning_dicom.io import to_array

PIXEL, GAP, N = 0.86, 7.0, 12  # the MR: 0.86 mm pixels, 7 mm gaps


def _positions(direction, *, tilt_deg=0.0, noise_mm=0.0, gap_noise=0.0, seed=0, n=N):
    """Slice origins: depth k x 7 mm (+- gap_noise x 7 mm / 2 each), a tilt along the column direction,
    and uniform in-plane jitter of +- noise_mm per coordinate (what DS rounding does)."""
    rng = np.random.default_rng(seed)
    mat = np.asarray(direction).reshape(3, 3)
    row, col, normal = mat[:, 0], mat[:, 1], mat[:, 2]
    depth = np.arange(n) * GAP + rng.uniform(-1, 1, n) * gap_noise * GAP / 2
    jitter = rng.uniform(-noise_mm, noise_mm, (n, 2))
    shear = math.tan(math.radians(tilt_deg))
    origin = np.array([-110.3, -95.7, -40.2])
    return [
        tuple(origin + d * normal + d * shear * col + j[0] * row + j[1] * col)
        for d, j in zip(depth, jitter, strict=True)
    ]


def _write(tmp_path, positions, direction):
    return write_irregular_series(
        tmp_path,
        make_phantom((len(positions), 16, 14), seed=3),
        positions=positions,
        spacing=(PIXEL, PIXEL, GAP),
        direction=direction,
        modality="MR",
        seed=1,
    )


DIRECTIONS = {
    "axial": direction_from_orientation("axial", 0.0),
    "sagittal:15": direction_from_orientation("sagittal", 15.0),
}


@pytest.mark.parametrize("orientation", list(DIRECTIONS))
@pytest.mark.parametrize("noise_mm", [0.01, 0.03, 0.07])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_rounding_noise_is_read_as_a_regular_stack(tmp_path, orientation, noise_mm, seed):
    direction = DIRECTIONS[orientation]
    positions = _positions(direction, noise_mm=noise_mm, gap_noise=0.02, seed=seed)  # gaps 7 mm +- 1 %
    s = _write(tmp_path, positions, direction)
    image = read_series(tmp_path)
    assert image.GetPixelID() == sitk.sitkInt16  # the regular path, not a resampled float32 stack
    np.testing.assert_array_equal(to_array(image), s.hu)
    assert image.GetSpacing()[2] == pytest.approx(GAP, rel=0.01)
    np.testing.assert_allclose(image.GetOrigin(), s.positions[0], atol=1e-9)


@pytest.mark.parametrize("orientation", list(DIRECTIONS))
@pytest.mark.parametrize("tilt_deg", [1.0, 2.0, 5.0, 10.0, 20.0, -3.0])
def test_real_tilts_are_detected_through_the_noise(tmp_path, orientation, tilt_deg):
    direction = DIRECTIONS[orientation]
    positions = _positions(direction, tilt_deg=tilt_deg, noise_mm=0.07, gap_noise=0.02, seed=4)
    _write(tmp_path, positions, direction)
    with pytest.raises(SeriesError, match=r"gantry tilt \(about (\d+\.\d) degrees\)") as info:
        read_series(tmp_path)
    measured = float(info.value.reason.split("gantry tilt (about ")[1].split(" degrees")[0])
    assert measured == pytest.approx(abs(tilt_deg), abs=0.15)
    with pytest.warns(LightningDicomWarning, match="resampled onto a uniform grid"):
        image = read_series(tmp_path, irregular="resample")
    assert image.GetPixelID() == sitk.sitkFloat32
    np.testing.assert_allclose(
        np.reshape(image.GetDirection(), (3, 3)), np.reshape(direction, (3, 3)), atol=1e-5
    )


def test_the_fit_separates_drift_from_scatter():
    depth = np.arange(10) * 5.0
    noise = np.random.default_rng(0).uniform(-0.07, 0.07, (10, 3))
    noise[:, 2] = 0
    drift, scatter, slope = in_plane_fit(noise, depth)
    assert drift < 3 * 0.07 and scatter <= 2 * 0.07 and slope < 0.01
    tilt = np.outer(depth * math.tan(math.radians(1.0)), [0.0, 1.0, 0.0]) + noise
    drift, scatter, slope = in_plane_fit(tilt, depth)
    assert math.degrees(math.atan(slope)) == pytest.approx(1.0, abs=0.1) and drift > 0.7
    assert shear_tolerance_mm((0.86, 0.86)) == pytest.approx(0.215) and shear_tolerance_mm((0.1, 0.1)) == 0.05


def test_scattered_origins_beyond_noise_are_refused(tmp_path):
    """Offsets that do not grow with depth but exceed the tolerance (mixed stacks) are still refused."""
    direction = DIRECTIONS["axial"]
    positions = _positions(direction, noise_mm=0.0)
    positions[5] = tuple(np.asarray(positions[5]) + [0.6, 0.0, 0.0])  # one slice 0.6 mm off (0.7 pixel)
    _write(tmp_path, positions, direction)
    with pytest.raises(SeriesError, match=r"offset up to 0.60 mm.*scatter 0.5\d mm"):
        read_series(tmp_path)


# -- missing ImagePositionPatient / ImageOrientationPatient ----------------------------------------------
def _strip(files, keyword, which=None):
    for k, path in enumerate(files):
        if which is None or k in which:
            ds = pydicom.dcmread(path)
            delattr(ds, keyword)
            ds.save_as(path)


def _series(root):
    with DicomIndex([root]) as idx:
        idx.scan(workers=1)
        return idx.series()


@pytest.mark.parametrize("which", [None, {4}])
def test_a_stack_without_positions_is_one_refused_volume(tmp_path, which):
    s = write_series(tmp_path, make_phantom((12, 8, 8), seed=1), modality="MR", seed=2)
    _strip(s.files, "ImagePositionPatient", which)
    (rec,) = _series(tmp_path)  # one volume, not 12 one-slice volumes
    assert rec.n_slices == 12
    missing = 12 if which is None else 1
    assert f"ImagePositionPatient (0020,0032) missing in {missing} of 12 files" in rec.geometry_problem
    with pytest.raises(SeriesError, match=r"ImagePositionPatient \(0020,0032\) missing .*refused") as info:
        read_series(rec)
    assert info.value.series_uid == s.series_uid
    with pytest.raises(SeriesError, match="ImagePositionPatient"):
        read_series(tmp_path, irregular="resample")


def test_a_stack_without_orientation_is_refused_naming_it(tmp_path):
    s = write_series(tmp_path, make_phantom((5, 8, 8), seed=1), modality="CT", seed=2)
    _strip(s.files, "ImageOrientationPatient")
    (rec,) = _series(tmp_path)
    assert (
        rec.n_slices == 5
        and "ImageOrientationPatient (0020,0037) missing in 5 of 5 files" in rec.geometry_problem
    )
    with pytest.raises(SeriesError, match=r"ImageOrientationPatient \(0020,0037\) missing"):
        read_series(rec)


@pytest.mark.parametrize("modality", ["OT", "CT-screenshot"])
def test_projection_images_without_geometry_stay_2d_images(tmp_path, modality):
    """Other images (here OT, and CT Secondary Captures such as dose reports) without position stay one
    2D volume each."""
    s = write_series(tmp_path, make_phantom((3, 8, 8), seed=1), modality=modality[:2], seed=2)
    _strip(s.files, "ImagePositionPatient")
    _strip(s.files, "ImageOrientationPatient")
    if modality == "CT-screenshot":
        for path in s.files:
            ds = pydicom.dcmread(path)
            ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
            ds.save_as(path)
    series = _series(tmp_path)
    assert [r.n_slices for r in series] == [1, 1, 1] and not any(r.geometry_problem for r in series)
    assert all(read_series(r).GetSize() == (8, 8, 1) for r in series)


def test_one_slice_without_position_is_a_2d_image(tmp_path):
    s = write_series(tmp_path, make_phantom((1, 8, 8), seed=1), modality="MR", seed=2)
    _strip(s.files, "ImagePositionPatient")
    (rec,) = _series(tmp_path)
    assert not rec.geometry_problem and read_series(rec).GetSize() == (8, 8, 1)


# -- multi-frame files whose frames all sit at one position ----------------------------------------------
@pytest.mark.parametrize("where", ["shared", "per-frame"])
def test_enhanced_frames_at_one_position_are_a_time_series_not_a_volume(tmp_path, where):
    """The position in SharedFunctionalGroupsSequence (one for all frames), or the same per-frame position
    in every frame: a 2D+t series, refused rather than stacked with an invented slice spacing."""
    s = write_multiframe(tmp_path / "mf.dcm", make_phantom((4, 8, 8), seed=2))
    ds = pydicom.dcmread(s.files[0])
    first = ds.PerFrameFunctionalGroupsSequence[0].PlanePositionSequence[0].ImagePositionPatient
    for item in ds.PerFrameFunctionalGroupsSequence:
        if where == "shared":
            del item.PlanePositionSequence
        else:
            item.PlanePositionSequence[0].ImagePositionPatient = first
    if where == "shared":
        ds.SharedFunctionalGroupsSequence[0].PlanePositionSequence = [pydicom.Dataset()]
        ds.SharedFunctionalGroupsSequence[0].PlanePositionSequence[0].ImagePositionPatient = first
    ds.save_as(s.files[0])
    (rec,) = _series(tmp_path)
    assert rec.has_geometry and len(set(rec.positions)) == 1
    with pytest.raises(
        SeriesError, match=r"all 4 slices/frames sit at one position, a time series \(2D\+t\)"
    ):
        read_series(rec)


def test_the_datamodule_reports_a_stack_without_positions_instead_of_training_on_its_slices(tmp_path):
    """The issue's case: 12 files with orientation and SliceLocation but no ImagePositionPatient were 12
    one-slice volumes the DataModule trained on; now one volume, refused with the reason, reported."""
    from lightning_dicom import DicomDataModule
    from lightning_dicom.demo.synthetic import write_dataset

    root = tmp_path / "data"
    series = write_dataset(root, n_patients=3, shape_zyx=(12, 16, 16), spacing=(1.0, 1.0, 2.0), seed=5)
    _strip(series[0].files, "ImagePositionPatient")
    dm = DicomDataModule(
        root=root,
        labels=root / "labels.csv",
        work_dir=tmp_path / "work",
        preprocessing={"spacing": [2.0, 2.0, 2.0], "window": [-200, 400], "size": [8, 12, 12]},
        split={"val": 0.34, "seed": 3},
        progress=False,
        loader={"batch_size": 1, "num_workers": 0},
    )
    dm.prepare_data()
    dm.setup("fit")
    failed = dict(dm.report["series_failed"])
    assert list(failed) == [series[0].series_uid]
    assert "ImagePositionPatient (0020,0032) missing in 12 of 12 files" in failed[series[0].series_uid]
    seen = {b["meta"]["series_id"][0] for b in dm.predict_dataloader()}
    assert seen == {s.series_uid for s in series[1:]}
