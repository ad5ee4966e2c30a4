"""Irregular stacks (issue 4): missing slices, non-uniform spacing and gantry tilt, rejected by default
and resampled onto an orthogonal uniform grid with ``read_series(..., irregular="resample")``."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from pydicom.uid import generate_uid

import lightning_dicom.dicom.series as lio
from lightning_dicom.demo.synthetic import direction_from_orientation, make_phantom, write_series
from lightning_dicom.demo.synthetic_stacks import write_irregular_series, write_multiframe
from lightning_dicom.dicom.index import DicomIndex
from lightning_dicom.dicom.series import planned_geometry, read_series
from lightning_dicom.errors import LightningDicomWarning, SeriesError
from lightning_dicom.io import geometry, to_array


def _record(root: Path):
    with DicomIndex([root]) as idx:
        idx.scan(workers=1)
        (rec,) = idx.series()
    return rec


def _linear_in_z(n: int, step_hu: int, shape_yx=(12, 10)) -> np.ndarray:
    """A phantom slice (noisy, not smooth in-plane) plus step_hu per slice: linear along z."""
    base = make_phantom((1, *shape_yx), seed=3)[0].astype(np.int32)
    return np.stack([base + step_hu * k for k in range(n)]).clip(-1024, 3071).astype(np.int16)


def _world_phantom(positions, direction, spacing_xy, shape_yx, f) -> np.ndarray:
    """int16 [z, y, x] whose voxel (k, j, i) is round(f(world point of that pixel of slice k))."""
    mat = np.asarray(direction, dtype=float).reshape(3, 3)
    row, col = mat[:, 0], mat[:, 1]
    ny, nx = shape_yx
    jj, ii = np.meshgrid(np.arange(ny), np.arange(nx), indexing="ij")
    planes = []
    for p in positions:
        pts = (
            np.asarray(p, dtype=float)[None, None, :]
            + ii[..., None] * spacing_xy[0] * row
            + jj[..., None] * spacing_xy[1] * col
        )
        planes.append(np.rint(f(pts)))
    return np.stack(planes).astype(np.int16)


def _tilted_positions(origin, direction, depths, tilt_deg):
    mat = np.asarray(direction, dtype=float).reshape(3, 3)
    shear = math.tan(math.radians(tilt_deg))
    return [
        tuple(
            float(pydicom.valuerep.DSfloat(pydicom.valuerep.format_number_as_ds(float(v))))
            for v in np.asarray(origin) + d * mat[:, 2] + d * shear * mat[:, 1]
        )
        for d in depths
    ]


def _world_points(image: sitk.Image) -> np.ndarray:
    """World point of every voxel, [z, y, x, 3], from SimpleITK's own index -> physical mapping."""
    nx, ny, nz = image.GetSize()
    out = np.empty((nz, ny, nx, 3))
    for k in range(nz):
        for j in range(ny):
            for i in range(nx):
                out[k, j, i] = image.TransformIndexToPhysicalPoint((i, j, k))
    return out


def _assert_same_image(a: sitk.Image, b: sitk.Image) -> None:
    assert a.GetPixelID() == b.GetPixelID()
    assert to_array(a).tobytes() == to_array(b).tobytes()
    assert geometry(a) == geometry(b)
    assert a.GetMetaDataKeys() == b.GetMetaDataKeys()


# -- (1) missing slices ---------------------------------------------------------------------------
def test_missing_slice_rejected_by_default_and_interpolated_on_resample(tmp_path, caplog):
    hu = _linear_in_z(7, 10)
    s = write_series(
        tmp_path, hu, spacing=(0.7, 0.8, 2.5), patient_id="PID4242", patient_name="DOE^JOHN", seed=2
    )
    s.files[3].unlink()
    rec = _record(tmp_path)
    with pytest.raises(
        SeriesError,
        match=r"non-uniform slice spacing.*1 missing slice \(the widest hole: 5.000 mm "
        r"after slice 3 of 6\).*irregular='resample'",
    ) as info:
        read_series(rec)
    assert info.value.series_uid == s.series_uid
    assert s.series_uid in str(info.value)
    with pytest.warns(LightningDicomWarning) as record:
        image = read_series(rec, irregular="resample")
    assert image.GetPixelID() == sitk.sitkFloat32
    assert image.GetSize() == (10, 12, 7)
    assert image.GetSpacing() == pytest.approx((0.7, 0.8, 2.5))
    assert image.GetOrigin() == pytest.approx(s.origin, abs=1e-6)
    assert image.GetDirection() == pytest.approx(s.direction)
    arr = to_array(image)
    for k in (0, 1, 2, 4, 5, 6):  # acquired slices: copied
        np.testing.assert_array_equal(arr[k], s.hu[k].astype(np.float32))
    np.testing.assert_array_equal(arr[3], (arr[2] + arr[4]) / 2)  # the missing one: mean of its neighbours
    np.testing.assert_array_equal(arr[3], s.hu[3])  # ... which, linear along z, is the slice that was lost
    messages = [str(w.message) for w in record]
    assert len(messages) == 1
    assert s.series_uid in messages[0] and "1 missing slice filled by linear interpolation" in messages[0]
    assert "PID4242" not in messages[0] and "DOE" not in messages[0]
    assert planned_geometry(rec, irregular="resample") == geometry(image)


def test_consecutive_missing_slices_are_interpolated_linearly(tmp_path):
    hu = _linear_in_z(8, 9)
    s = write_series(tmp_path, hu, spacing=(1.0, 1.0, 2.0), seed=5)
    s.files[3].unlink()
    s.files[4].unlink()
    with pytest.raises(SeriesError, match=r"2 missing slices"):
        read_series(tmp_path)
    arr = to_array(_resampled(tmp_path, irregular="resample"))
    assert arr.shape == hu.shape
    np.testing.assert_allclose(arr, s.hu, atol=1e-3)  # exact up to float32 rounding of the thirds


# -- (2) non-uniform spacing ----------------------------------------------------------------------
def test_non_uniform_gaps_resample_onto_the_median_gap(tmp_path):
    depths = np.cumsum([0.0, 2.0, 2.5, 2.0, 2.5, 2.0, 2.0])  # 0 2 4.5 6.5 9 11 13: median gap 2.0
    in_plane = _linear_in_z(1, 0)[0].astype(np.int32)
    hu = np.stack([in_plane + 8 * d for d in depths]).astype(np.int16)  # 8 HU/mm along the normal
    direction = direction_from_orientation("coronal", 12)
    s = write_irregular_series(
        tmp_path, hu, depths=depths, spacing=(0.9, 0.6, 2.0), direction=direction, seed=1
    )
    rec = _record(tmp_path)
    assert list(map(str, rec.files)) == list(map(str, s.files))
    with pytest.raises(
        SeriesError,
        match=r"gaps from 2.000 to 2.500 mm \(median 2.000\); a missing slice or a "
        "variable-spacing acquisition",
    ) as info:
        read_series(rec)
    assert info.value.series_uid == s.series_uid
    image = _resampled(rec, irregular="resample", gap_tolerance=0.05)
    assert image.GetSize() == (10, 12, 7)  # 0, 2, ..., 12 mm: the last one 1 mm before the last acquired
    assert image.GetSpacing() == pytest.approx((0.9, 0.6, 2.0))
    assert image.GetOrigin() == pytest.approx(s.positions[0], abs=1e-9)
    arr = to_array(image)
    for m in range(7):
        np.testing.assert_allclose(arr[m], in_plane + 8 * (2.0 * m), atol=1e-3)
    # a looser tolerance accepts 25 % deviations: the regular path, gaps taken as the median
    loose = read_series(rec, gap_tolerance=0.3)
    assert loose.GetPixelID() == sitk.sitkInt16
    assert loose.GetSize() == (10, 12, 7)
    np.testing.assert_array_equal(to_array(loose), s.hu)
    _assert_same_image(read_series(rec, irregular="resample", gap_tolerance=0.3), loose)


def test_holes_too_wide_to_interpolate_are_refused_even_on_resample(tmp_path):
    write_irregular_series(tmp_path, _linear_in_z(5, 3), depths=[0, 2, 4, 20, 22], seed=1)
    with pytest.raises(SeriesError, match="7 missing slices"):
        read_series(tmp_path)
    with pytest.raises(SeriesError, match=r"a hole of 16.000 mm is more than 5 median gaps: too wide"):
        read_series(tmp_path, irregular="resample")


# -- (3) gantry tilt (shear) ----------------------------------------------------------------------
GANTRY_CASES = [  # (orientation, oblique degrees, tilt degrees, depths or None for uniform 2 mm)
    ("axial", 0.0, 15.0, None),
    ("axial", 0.0, -15.0, None),
    ("sagittal", 10.0, 12.0, None),
    ("axial", 0.0, 15.0, [0.0, 2.0, 4.0, 8.0, 10.0, 12.5, 14.5, 16.5]),  # tilted, a missing slice, a 2.5 gap
]


@pytest.mark.parametrize(("orientation", "oblique", "tilt", "depths"), GANTRY_CASES)
def test_gantry_tilted_stack_is_resampled_in_world_coordinates(tmp_path, orientation, oblique, tilt, depths):
    direction = direction_from_orientation(orientation, oblique)
    origin, spacing, shape_yx = (-20.0, -20.0, -40.0), (1.0, 1.2, 2.0), (20, 24)
    depths = list(np.arange(8) * 2.0) if depths is None else depths

    def f(p):  # HU, a function of world position only
        return 3.0 * p[..., 0] + 20.0 * p[..., 1] + 5.0 * p[..., 2] + 600.0

    positions = _tilted_positions(origin, direction, depths, tilt)
    hu = _world_phantom(positions, direction, spacing, shape_yx, f)
    s = write_irregular_series(
        tmp_path, hu, positions=positions, spacing=spacing, direction=direction, seed=4
    )
    np.testing.assert_allclose(s.positions, positions, atol=1e-9)
    rec = _record(tmp_path)
    with pytest.raises(
        SeriesError,
        match=r"not stacked along their normal .*gantry tilt \(about "
        rf"{abs(tilt):.1f} degrees\)",
    ) as info:
        read_series(rec)
    assert info.value.series_uid == s.series_uid

    image = _resampled(rec, irregular="resample")
    assert image.GetPixelID() == sitk.sitkFloat32
    mat = np.asarray(image.GetDirection()).reshape(3, 3)
    np.testing.assert_allclose(mat.T @ mat, np.eye(3), atol=1e-9)  # orthonormal ...
    np.testing.assert_allclose(mat, np.asarray(direction).reshape(3, 3), atol=1e-6)  # ... the slice frame
    assert image.GetOrigin() == pytest.approx(positions[0], abs=1e-9)
    assert image.GetSpacing() == pytest.approx((*spacing[:2], 2.0))
    n_out = int(math.floor(depths[-1] / 2.0 + 1e-6)) + 1
    assert image.GetSize() == (shape_yx[1], shape_yx[0], n_out)
    assert planned_geometry(rec, irregular="resample") == geometry(image)

    arr = to_array(image).astype(np.float64)
    world = _world_points(image)
    # where each output voxel falls in the acquired slices that bracket it along the normal (pixel units)
    row, col, normal = mat[:, 0], mat[:, 1], mat[:, 2]
    depth = [(p - np.asarray(positions[0])) @ normal for p in (np.asarray(q) for q in positions)]
    tol = 1e-6
    inside = np.zeros(arr.shape, dtype=bool)
    outside = np.zeros(arr.shape, dtype=bool)
    for m in range(n_out):
        z = 2.0 * m
        brackets = {
            max(k for k in range(len(depth)) if depth[k] <= z + tol),
            min(k for k in range(len(depth)) if depth[k] >= z - tol),
        }
        u = np.stack([((world[m] - positions[k]) @ row) / spacing[0] for k in brackets])
        v = np.stack([((world[m] - positions[k]) @ col) / spacing[1] for k in brackets])
        inside[m] = (
            (u >= -tol) & (u <= shape_yx[1] - 1 + tol) & (v >= -tol) & (v <= shape_yx[0] - 1 + tol)
        ).all(0)
        outside[m] = (
            (u < -0.5 - tol)
            | (u > shape_yx[1] - 0.5 + tol)
            | (v < -0.5 - tol)
            | (v > shape_yx[0] - 0.5 + tol)
        ).any(0)
    assert inside.sum() > 0.7 * arr.size and outside.sum() > 0.05 * arr.size
    err = np.abs(arr - f(world))[inside]
    assert err.max() <= 0.5 + 1e-3  # linear interpolation of a linear function: only the HU rounding is left
    assert np.all(
        arr[outside] == s.hu.min()
    )  # outside the acquired field of view: the smallest acquired value
    assert np.all(arr >= s.hu.min()) and np.all(arr <= s.hu.max())

    # the test can tell: the acquired slices stacked as if they were not sheared are off by far more
    if depths == list(np.arange(8) * 2.0):
        naive = s.hu.astype(np.float64)
        assert np.abs(naive - f(world))[inside].max() > 10


def test_in_plane_shift_along_both_axes_is_undone(tmp_path):
    """A 'mixed' stack: each slice origin offset along row and column (whole and fractional pixels)."""
    direction = direction_from_orientation("axial", 0)
    offsets = [(0.0, 0.0), (1.0, -2.0), (0.25, 0.5), (-1.5, 1.75), (3.0, 0.0)]
    positions = [(-10.0 + a, -12.0 + b, 5.0 + 3.0 * k) for k, (a, b) in enumerate(offsets)]

    def f(p):
        return -7.0 * p[..., 0] + 11.0 * p[..., 1] + 2.0 * p[..., 2]

    hu = _world_phantom(positions, direction, (1.0, 1.0), (16, 18), f)
    write_irregular_series(tmp_path, hu, positions=positions, spacing=(1.0, 1.0, 3.0), seed=2)
    with pytest.raises(SeriesError, match=r"offset up to 3.00 mm"):
        read_series(tmp_path)
    image = _resampled(tmp_path, irregular="resample")
    arr = to_array(image)
    assert arr.shape == (5, 16, 18)
    # slice 0 is the reference grid: unchanged; slice 1 moved by whole pixels: exact copies where in view
    np.testing.assert_array_equal(arr[0], hu[0])
    np.testing.assert_array_equal(arr[1][:-2, 1:], hu[1][2:, :-1])  # origin 1 mm right and 2 mm up
    assert np.all(arr[1][-2:, :] == hu.min()) and np.all(arr[1][:, 0] == hu.min())
    world = _world_points(image)
    inner = (slice(None), slice(3, -3), slice(4, -4))  # inside every slice's field of view
    assert np.abs(arr[inner] - f(world[inner])).max() <= 0.5 + 1e-3


# -- regular stacks, duplicates and arguments -------------------------------------------------------
@pytest.mark.parametrize("orientation", ["axial", "sagittal:20", "coronal:15"])
@pytest.mark.parametrize("force_gdcm", [False, True])
def test_regular_stacks_are_the_same_image_in_both_modes(tmp_path, monkeypatch, orientation, force_gdcm):
    monkeypatch.setattr(lio, "_FORCE_GDCM", force_gdcm)
    name, _, deg = orientation.partition(":")
    s = write_series(
        tmp_path,
        make_phantom((6, 10, 9), seed=7),
        spacing=(0.7, 0.9, 1.5),
        direction=direction_from_orientation(name, float(deg or 0)),
        seed=3,
    )
    rec = _record(tmp_path)
    plain = read_series(rec)
    np.testing.assert_array_equal(to_array(plain), s.hu)
    _assert_same_image(read_series(rec, irregular="resample"), plain)
    assert planned_geometry(rec, irregular="resample") == geometry(plain) == planned_geometry(rec)


def test_regular_multiframe_and_single_files_are_the_same_in_both_modes(tmp_path):
    s = write_multiframe(tmp_path / "mf.dcm", make_phantom((5, 8, 8), seed=2), frame_order=[2, 0, 4, 1, 3])
    _assert_same_image(read_series(s.files[0], irregular="resample"), read_series(s.files[0]))
    s = write_series(tmp_path / "one", make_phantom((1, 8, 8), seed=2))
    _assert_same_image(read_series(s.files[0], irregular="resample"), read_series(s.files[0]))


def test_deviations_below_the_tolerances_take_the_regular_path(tmp_path):
    depths = [0.0, 2.0, 4.04, 6.0, 7.98]  # at most 2 % off
    positions = [(-5.0 + 0.01 * k, -5.0, -3.0 + d) for k, d in enumerate(depths)]  # 0.04 mm of shear
    s = write_irregular_series(
        tmp_path, make_phantom((5, 8, 8), seed=1), positions=positions, spacing=(1.0, 1.0, 2.0), seed=1
    )
    plain = read_series(tmp_path)
    assert plain.GetPixelID() == sitk.sitkInt16
    np.testing.assert_array_equal(to_array(plain), s.hu)
    _assert_same_image(read_series(tmp_path, irregular="resample"), plain)
    with pytest.raises(SeriesError, match="non-uniform slice spacing"):
        read_series(tmp_path, gap_tolerance=0.01)


@pytest.mark.parametrize("irregular", ["reject", "resample"])
def test_duplicate_positions_are_refused_in_both_modes(tmp_path, irregular):
    s = write_series(tmp_path, make_phantom((4, 8, 8)), seed=1)
    ds = pydicom.dcmread(s.files[2])
    ds.SOPInstanceUID = generate_uid()
    ds.save_as(tmp_path / "echo2.dcm")
    with pytest.raises(SeriesError, match="1 duplicate slice positions") as info:
        read_series(tmp_path, irregular=irregular)
    assert info.value.series_uid == s.series_uid


def test_invalid_arguments_are_value_errors(tmp_path):
    write_series(tmp_path, make_phantom((2, 4, 4)))
    with pytest.raises(ValueError, match="irregular must be 'reject' or 'resample'"):
        read_series(tmp_path, irregular="interpolate")  # type: ignore[arg-type]
    for bad in (0, 1.0, -0.1, "0.05", True):
        with pytest.raises(ValueError, match="gap_tolerance must be a number in"):
            read_series(tmp_path, gap_tolerance=bad)  # type: ignore[arg-type]


def test_gdcm_and_raw_reads_of_an_irregular_stack_agree(tmp_path, monkeypatch):
    direction = direction_from_orientation("axial", 0)
    positions = _tilted_positions((0.0, 0.0, 0.0), direction, [0, 2, 4, 8, 10], 10.0)
    hu = _world_phantom(positions, direction, (1.0, 1.0), (10, 12), lambda p: 4 * p[..., 1] + 9 * p[..., 2])
    write_irregular_series(tmp_path, hu, positions=positions, spacing=(1.0, 1.0, 2.0), seed=1)
    rec = _record(tmp_path)
    fast = _resampled(rec, irregular="resample")
    monkeypatch.setattr(lio, "_FORCE_GDCM", True)
    _assert_same_image(_resampled(rec, irregular="resample"), fast)


def _resampled(*args, **kwargs):
    """read_series of an irregular stack with resampling: it must warn (LightningDicomWarning) that it did."""
    with pytest.warns(LightningDicomWarning, match=r"irregular stack .* resampled onto a uniform grid"):
        return read_series(*args, **kwargs)
