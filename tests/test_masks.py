"""read_mask: label images, DICOM SEG and RTSTRUCT placed on a reference grid (real files, no mocks)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

from lightning_dicom.demo.synthetic import (
    SyntheticSeries,
    direction_from_orientation,
    make_phantom,
    write_series,
)
from lightning_dicom.demo.synthetic_masks import write_rtstruct, write_seg
from lightning_dicom.dicom.index import DicomIndex, SeriesRecord
from lightning_dicom.dicom.series import read_series
from lightning_dicom.errors import LightningDicomWarning
from lightning_dicom.masks.read import MaskError, read_mask, read_mask_report
from lightning_dicom.masks.rtstruct import fill_polygons

SHAPE = (12, 40, 44)  # z, y, x
SPACING = (0.9, 1.1, 2.5)  # x, y, z mm
ORIENTATIONS = {"axial": ("axial", 0.0), "oblique20": ("axial", 20.0), "sagittal": ("sagittal", 0.0)}
PYDICOM_RT_FRAME = "1.2.826.0.1.3680043.8.498.2010020400001.2"


# ------------------------------------------------------------------------------------------------
# helpers: an independent even-odd rasteriser and geometry from the writer's ground truth


def pnpoly(polys: list[np.ndarray], shape_yx: tuple[int, int]) -> np.ndarray:
    """Even-odd membership of every pixel centre: W. R. Franklin's crossing test, edge by edge."""
    ny, nx = shape_yx
    y, x = np.mgrid[0:ny, 0:nx].astype(float)
    inside = np.zeros((ny, nx), bool)
    for p in polys:
        for (xi, yi), (xj, yj) in zip(p, np.roll(p, 1, axis=0), strict=True):
            crosses = (yi > y) != (yj > y)
            with np.errstate(divide="ignore", invalid="ignore"):
                x_at = (xj - xi) * (y - yi) / (yj - yi) + xi
            inside ^= crosses & (x < x_at)
    return inside


def min_centre_edge_distance(poly: np.ndarray, shape_yx: tuple[int, int]) -> float:
    """Smallest distance (pixels) from a pixel centre to an edge: a test precondition (no ties)."""
    ny, nx = shape_yx
    c = np.stack(np.mgrid[0:ny, 0:nx][::-1], -1).reshape(-1, 2).astype(float)
    best = np.inf
    for a, b in zip(poly, np.roll(poly, -1, axis=0), strict=True):
        ab = b - a
        t = np.clip(((c - a) @ ab) / (ab @ ab), 0, 1)
        best = min(best, float(np.min(np.linalg.norm(c - (a + t[:, None] * ab), axis=1))))
    return best


def star(rng: np.random.Generator, n: int, centre: tuple[float, float], radius: float) -> np.ndarray:
    a = np.sort(rng.uniform(0, 2 * np.pi, n))
    r = radius * rng.uniform(0.55, 1.0, n)
    return np.column_stack([centre[0] + r * np.cos(a), centre[1] + r * np.sin(a)])


def shoelace(p: np.ndarray) -> float:
    x, y = p[:, 0], p[:, 1]
    return 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))


def to_lps(s: SyntheticSeries, ij: np.ndarray, k: float | np.ndarray) -> np.ndarray:
    """(column, row) index points on slice k -> LPS mm, from the writer's ground-truth geometry."""
    ij = np.asarray(ij, dtype=float)
    idx = np.column_stack([ij, np.broadcast_to(np.asarray(k, dtype=float), (len(ij),))])
    d = np.asarray(s.direction).reshape(3, 3)
    return (idx * np.asarray(s.spacing)) @ d.T + np.asarray(s.origin)


def arr(img: sitk.Image) -> np.ndarray:
    return sitk.GetArrayFromImage(img)


def assert_on_grid(mask: sitk.Image, ref: sitk.Image) -> None:
    assert mask.GetPixelID() == sitk.sitkUInt8
    assert mask.GetSize() == ref.GetSize()
    assert mask.GetSpacing() == ref.GetSpacing()
    assert mask.GetOrigin() == ref.GetOrigin()
    assert mask.GetDirection() == ref.GetDirection()
    assert set(np.unique(arr(mask)).tolist()) <= {0, 1}


def record_of(folder: Path) -> SeriesRecord:
    with DicomIndex([folder]) as idx:
        idx.scan(workers=1)
        (rec,) = idx.series()
    return rec


@pytest.fixture(scope="module", params=list(ORIENTATIONS))
def series(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    name, deg = ORIENTATIONS[request.param]
    folder = tmp_path_factory.mktemp(f"ct_{request.param}")
    s = write_series(
        folder,
        make_phantom(SHAPE, seed=3),
        spacing=SPACING,
        origin=(-21.3, 14.2, -40.7),
        direction=direction_from_orientation(name, deg),
        seed=3,
    )
    return s, read_series(s.files), folder


@pytest.fixture(scope="module")
def axial(tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp("ct_axial_only")
    s = write_series(folder, make_phantom(SHAPE, seed=4), spacing=SPACING, origin=(5.0, -8.0, 12.0), seed=4)
    return s, read_series(s.files), folder


@pytest.fixture(scope="module")
def other_series(tmp_path_factory: pytest.TempPathFactory):
    """A second study (its own frame of reference) on the same grid as ``axial``."""
    folder = tmp_path_factory.mktemp("ct_other")
    s = write_series(folder, make_phantom(SHAPE, seed=5), spacing=SPACING, origin=(5.0, -8.0, 12.0), seed=5)
    return s, folder


# ------------------------------------------------------------------------------------------------
# the rasteriser


def test_fill_polygons_matches_independent_even_odd_on_random_polygons():
    rng = np.random.default_rng(7)
    shape = (48, 56)
    n_inside = 0
    for case in range(80):
        if case % 3 == 0:  # self-intersecting, partly outside the slice
            polys = [rng.uniform(-12, 66, size=(int(rng.integers(3, 12)), 2))]
        elif case % 3 == 1:
            polys = [star(rng, int(rng.integers(3, 60)), tuple(rng.uniform(5, 50, 2)), rng.uniform(2, 30))]
        else:  # outer, hole, island
            c = tuple(rng.uniform(20, 36, 2))
            polys = [star(rng, 40, c, 18), star(rng, 25, c, 8), star(rng, 9, c, 3)]
        got = fill_polygons(polys, shape)
        np.testing.assert_array_equal(got, pnpoly(polys, shape), err_msg=f"case {case}")
        n_inside += int(got.sum())
    assert n_inside > 20000  # the cases are not trivially empty


def test_fill_polygons_edges_are_half_open_whatever_the_vertex_order():
    rect = np.array([[5, 5], [45, 5], [45, 35], [5, 35]], float)  # vertices exactly on pixel centres
    a, b = fill_polygons([rect], (40, 50)), fill_polygons([rect[::-1]], (40, 50))
    np.testing.assert_array_equal(a, b)
    assert a.sum() == 40 * 30  # area in pixels, exactly
    assert a[5:35, 6:46].all()
    assert not a[:, 5].any()
    assert not a[35].any()


# ------------------------------------------------------------------------------------------------
# RTSTRUCT that ships with pydicom


def _pydicom_rt_reference() -> sitk.Image:
    ref = sitk.Image(51, 41, 3, sitk.sitkInt16)  # centres at x=-245..255, y=-195..205, z=-200..-180
    ref.SetOrigin((-245.0, -195.0, -200.0))
    ref.SetSpacing((10.0, 10.0, 10.0))
    return ref


def test_pydicom_rtstruct_is_read_and_points_are_reported(pydicom_files):
    path = pydicom_files / "rtstruct.dcm"
    ref = _pydicom_rt_reference()
    masks, report = read_mask_report(path, ref, frame_of_reference_uid=PYDICOM_RT_FRAME)
    assert list(masks) == ["patient"]
    m = arr(masks["patient"])
    assert_on_grid(masks["patient"], ref)
    # three 400 x 300 mm rectangles at z = -200, -190, -180: centres strictly inside
    x = -245.0 + 10 * np.arange(51)
    y = -195.0 + 10 * np.arange(41)
    inside = (np.abs(y)[:, None] < 150) & (np.abs(x)[None, :] < 200)
    for k in range(3):
        np.testing.assert_array_equal(m[k], inside)
    assert m.sum() == 3 * 40 * 30
    joined = "\n".join(report)
    assert "Isocenter 1" in joined
    assert "Isocenter 2" in joined
    assert joined.count("POINT") == 2


def test_pydicom_rtstruct_mismatched_or_absent_reference_series_is_a_mask_error(pydicom_files, axial):
    path = pydicom_files / "rtstruct.dcm"
    with pytest.raises(MaskError, match="frame of reference") as err:
        read_mask(path, _pydicom_rt_reference(), frame_of_reference_uid="1.2.3.4")
    assert err.value.path == str(path)
    assert PYDICOM_RT_FRAME in str(err.value)
    assert "Phantom30sep" not in str(err.value)
    # a series drawn elsewhere, given as its record: its own frame of reference does not match
    _, _, folder = axial
    with pytest.raises(MaskError, match="frame of reference"):
        read_mask(path, record_of(folder))
    # no UIDs on the reference side: the contours lie on none of its slice planes
    with pytest.raises(MaskError, match="slice planes"):
        read_mask(path, axial[1])


# ------------------------------------------------------------------------------------------------
# synthetic RTSTRUCT on axial, oblique and sagittal series


def _rt_rois(s: SyntheticSeries) -> tuple[dict, dict[str, dict[int, list[np.ndarray]]], dict[str, float]]:
    """ROIs to write (LPS), the polygons expected per slice (index space) and analytic areas (px^2)."""
    rng = np.random.default_rng(11)
    shape_yx = SHAPE[1:]
    polys = {}
    while len(polys) < 4:  # polygons whose edges stay clear of every pixel centre (no ties)
        name = ["outer", "hole", "over", "partly"][len(polys)]
        centre, radius = {
            "outer": ((20.4, 19.7), 15.0),
            "hole": ((20.4, 19.7), 5.5),
            "over": ((31.2, 22.6), 9.0),
            "partly": ((12.3, 11.8), 6.0),
        }[name]
        p = star(rng, 24, centre, radius)
        if min_centre_edge_distance(p, shape_yx) > 1e-3:
            polys[name] = p
    outer, hole, over, partly = polys["outer"], polys["hole"], polys["over"], polys["partly"]
    tilted = np.column_stack([outer, np.linspace(2.0, 6.0, len(outer))])  # crosses several slices
    rois = {
        "outer": [to_lps(s, outer, 3), to_lps(s, outer, 4), to_lps(s, hole, 4), to_lps(s, outer, 5)],
        "over": [to_lps(s, over, 4), to_lps(s, over, 6)],
        "marker": [to_lps(s, outer[:1], 4)],
        "empty": [],
        "between": [to_lps(s, outer, 7.5)],
        "tilted": [to_lps(s, tilted[:, :2], tilted[:, 2])],
        "partly": [to_lps(s, partly, 8), to_lps(s, partly, 8.4), to_lps(s, partly, SHAPE[0] + 3)],
    }
    expected = {
        "outer": {3: [outer], 4: [outer, hole], 5: [outer]},
        "over": {4: [over], 6: [over]},
        "partly": {8: [partly]},
    }
    return rois, expected, {"outer": shoelace(outer), "hole": shoelace(hole)}


def test_rtstruct_rasterised_on_reference_matches_independent_even_odd(series, tmp_path):
    s, ref, _ = series
    rois, expected, areas = _rt_rois(s)
    path = write_rtstruct(tmp_path / "rt.dcm", s, rois)
    masks, report = read_mask_report(path, ref)
    assert sorted(masks) == ["outer", "over", "partly"]
    voxel_mm3 = float(np.prod(ref.GetSpacing()))
    for name, by_slice in expected.items():
        assert_on_grid(masks[name], ref)
        want = np.zeros(SHAPE, bool)
        for k, polys in by_slice.items():
            want[k] = pnpoly(polys, SHAPE[1:])
        got = arr(masks[name]).astype(bool)
        np.testing.assert_array_equal(got, want, err_msg=name)
        assert got.sum() * voxel_mm3 == pytest.approx(want.sum() * voxel_mm3)
    outer = arr(masks["outer"]).astype(bool)
    # the hole: slice 4 lacks the inner polygon's voxels, slices 3 and 5 keep them
    hole_px = pnpoly([expected["outer"][4][1]], SHAPE[1:])
    assert hole_px.sum() > 40
    assert not outer[4][hole_px].any()
    assert outer[3][hole_px].all()
    assert outer[5][hole_px].all()
    # volume close to the analytic one (area x slice spacing), holes subtracted
    px_mm2 = ref.GetSpacing()[0] * ref.GetSpacing()[1]
    analytic = (3 * areas["outer"] - areas["hole"]) * px_mm2 * ref.GetSpacing()[2]
    assert outer.sum() * voxel_mm3 == pytest.approx(analytic, rel=0.04)
    # overlapping ROIs stay separate
    over = arr(masks["over"]).astype(bool)
    assert (outer & over).sum() > 10
    assert (over & ~outer).sum() > 10
    # what could not be drawn is reported, not guessed
    lines = {line.split(":")[0]: line for line in report}
    assert "POINT" in lines["ROI 3 (marker)"]
    assert "omitted" in lines["ROI 3 (marker)"]
    assert "empty ROI" in lines["ROI 4 (empty)"]
    assert "between slice planes" in lines["ROI 5 (between)"]
    assert "0.50" in lines["ROI 5 (between)"]
    assert "not parallel" in lines["ROI 6 (tilted)"]
    assert "1 contour(s) between slice planes" in lines["ROI 7 (partly)"]
    assert "1 contour(s) on a plane outside" in lines["ROI 7 (partly)"]
    assert "omitted" not in lines["ROI 7 (partly)"]
    assert len(report) == 5


def test_rtstruct_referenced_series_is_checked(axial, other_series, tmp_path):
    s, ref, folder = axial
    rois = {"box": [to_lps(s, np.array([[3.3, 4.2], [20.6, 4.4], [19.7, 17.1]]), 5)]}
    good = write_rtstruct(tmp_path / "good.dcm", s, rois)
    masks = read_mask(good, record_of(folder))  # frame of reference matches
    assert arr(masks["box"]).sum() > 50
    # same frame of reference given explicitly, from the series' own header
    frame = str(pydicom.dcmread(s.files[0], stop_before_pixels=True).FrameOfReferenceUID)
    assert arr(read_mask(good, ref, frame_of_reference_uid=frame)["box"]).sum() == arr(masks["box"]).sum()
    # the same contours against another study's series on the identical grid: refused
    other, other_folder = other_series
    with pytest.raises(MaskError, match="frame of reference") as err:
        read_mask(good, record_of(other_folder))
    assert other.patient_id not in str(err.value)
    assert other.patient_name not in str(err.value)
    # without a frame of reference in the file, the referenced series UID decides
    no_frame = write_rtstruct(tmp_path / "noframe.dcm", s, rois, references=False)
    assert arr(read_mask(no_frame, ref, series_uid=s.series_uid)["box"]).sum() == arr(masks["box"]).sum()
    wrong_series = write_rtstruct(tmp_path / "wrong.dcm", s, rois, frame_of_reference_uid="1.2.3.4.5")
    with pytest.raises(MaskError, match="1.2.3.4.5"):
        read_mask(wrong_series, record_of(folder))


def test_read_mask_warns_with_the_report(axial, tmp_path):
    s, ref, _ = axial
    path = write_rtstruct(
        tmp_path / "rt.dcm",
        s,
        {
            "box": [to_lps(s, np.array([[3.3, 4.2], [20.6, 4.4], [19.7, 17.1]]), 5)],
            "marker": [to_lps(s, np.array([[4.0, 4.0]]), 5)],
        },
    )
    with pytest.warns(LightningDicomWarning) as record:
        masks = read_mask(path, ref)
    assert list(masks) == ["box"]
    assert any("marker" in str(w.message) and "POINT" in str(w.message) for w in record)


# ------------------------------------------------------------------------------------------------
# DICOM SEG written by highdicom


def _known_masks() -> dict[str, np.ndarray]:
    z, y, x = np.mgrid[0 : SHAPE[0], 0 : SHAPE[1], 0 : SHAPE[2]]
    ball = (z - 6) ** 2 * 4 + (y - 18) ** 2 + (x - 20) ** 2 <= 90
    box = (z >= 2) & (z <= 9) & (y >= 15) & (y < 30) & (x >= 25) & (x < 40)  # overlaps the ball
    return {"ball": ball, "box": box}


def _frame_order(path: Path) -> np.ndarray:
    ds = pydicom.dcmread(path)
    iop = np.asarray(
        ds.SharedFunctionalGroupsSequence[0].PlaneOrientationSequence[0].ImageOrientationPatient, dtype=float
    )
    normal = np.cross(iop[:3], iop[3:])
    return np.array(
        [
            np.dot(np.asarray(f.PlanePositionSequence[0].ImagePositionPatient, dtype=float), normal)
            for f in ds.PerFrameFunctionalGroupsSequence
        ]
    )


def test_seg_binary_read_back_exactly_with_shuffled_frames(series, tmp_path):
    s, ref, _ = series
    known = _known_masks()
    path = write_seg(tmp_path / "seg.dcm", s, known, shuffle_frames=True, seed=1)
    order = _frame_order(path)
    assert len(order) > 10
    assert np.any(np.diff(order) < 0)
    assert np.any(np.diff(order) > 0)  # really shuffled
    masks, report = read_mask_report(path, ref)
    assert report == []
    assert list(masks) == ["ball", "box"]
    for name, want in known.items():
        assert_on_grid(masks[name], ref)
        np.testing.assert_array_equal(arr(masks[name]).astype(bool), want, err_msg=name)
    assert (arr(masks["ball"]) & arr(masks["box"])).sum() == (known["ball"] & known["box"]).sum() > 0
    renamed = read_mask(path, ref, names={2: "kidney"})
    assert list(renamed) == ["ball", "kidney"]


def test_seg_fractional_thresholded_at_half_and_placed_on_a_cropped_reference(axial, tmp_path):
    s, ref, folder = axial
    rng = np.random.default_rng(2)
    prob = rng.choice([0.0, 0.2, 0.49, 0.51, 0.8, 1.0], size=SHAPE).astype(np.float32)
    path = write_seg(tmp_path / "frac.dcm", s, {"p": prob}, fractional=True, shuffle_frames=True)
    assert pydicom.dcmread(path).SegmentationType == "FRACTIONAL"
    masks = read_mask(path, record_of(folder))
    np.testing.assert_array_equal(arr(masks["p"]).astype(bool), prob >= 0.5)
    # a reference on another grid (cropped): placement by physical position
    crop = ref[4:30, 3:35, 2:10]
    masks = read_mask(path, crop)
    assert_on_grid(masks["p"], crop)
    np.testing.assert_array_equal(arr(masks["p"]).astype(bool), (prob >= 0.5)[2:10, 3:35, 4:30])


def test_seg_label_array_and_referenced_series_check(axial, other_series, tmp_path):
    s, ref, folder = axial
    label = np.zeros(SHAPE, np.uint8)
    label[2:5, 5:15, 5:15] = 1
    label[6:9, 20:30, 10:30] = 2
    path = write_seg(tmp_path / "label.dcm", s, label)
    masks = read_mask(path, record_of(folder))
    assert sorted(masks) == ["label_1", "label_2"]
    for v in (1, 2):
        np.testing.assert_array_equal(arr(masks[f"label_{v}"]), (label == v).astype(np.uint8))
    other, other_folder = other_series
    with pytest.raises(MaskError, match="frame of reference") as err:
        read_mask(path, record_of(other_folder))
    assert other.patient_name not in str(err.value)
    assert s.patient_name not in str(err.value)


# ------------------------------------------------------------------------------------------------
# label images (NIfTI, MHA)


def _lps_affine(img: sitk.Image) -> np.ndarray:
    a = np.eye(4)
    a[:3, :3] = np.asarray(img.GetDirection()).reshape(3, 3) @ np.diag(img.GetSpacing())
    a[:3, 3] = img.GetOrigin()
    return a


def _write_ras_affine_nifti(path: Path, mask_zyx: np.ndarray, ref: sitk.Image) -> None:
    """A NIfTI written the nibabel way: data [x, y, z], affine to RAS (= diag(-1,-1,1) x LPS)."""
    ras = np.diag([-1.0, -1.0, 1.0, 1.0]) @ _lps_affine(ref)
    try:
        import nibabel as nib
    except ImportError:  # same file content, through SimpleITK: flip both in-plane axes (physically neutral)
        img = sitk.GetImageFromArray(mask_zyx.astype(np.uint8))
        img.CopyInformation(ref)
        sitk.WriteImage(sitk.Flip(img, [True, True, False]), str(path))
        return
    nii = nib.Nifti1Image(np.ascontiguousarray(mask_zyx.transpose(2, 1, 0)).astype(np.uint8), ras)
    nii.set_qform(ras, code=1)
    nii.set_sform(ras, code=1)
    nii.to_filename(str(path))


def test_nifti_in_ras_two_ways_gives_the_same_voxels(series, tmp_path):
    s, ref, _ = series
    want = _known_masks()["ball"]
    img = sitk.GetImageFromArray(want.astype(np.uint8))
    img.CopyInformation(ref)
    ras = sitk.DICOMOrient(img, "RAS")
    assert ras.GetDirection() != ref.GetDirection()  # a different grid: read_mask must resample
    sitk.WriteImage(ras, str(tmp_path / "sitk_ras.nii.gz"))
    _write_ras_affine_nifti(tmp_path / "affine_ras.nii.gz", want, ref)
    for name in ("sitk_ras.nii.gz", "affine_ras.nii.gz"):
        masks, report = read_mask_report(tmp_path / name, ref)
        assert list(masks) == ["label_1"]
        assert_on_grid(masks["label_1"], ref)
        np.testing.assert_array_equal(arr(masks["label_1"]).astype(bool), want, err_msg=name)
        assert report == []


def test_label_image_gives_one_entry_per_value_and_partial_overlap_is_reported(axial, tmp_path):
    _, ref, _ = axial
    label = np.zeros(SHAPE, np.int16)
    label[1:4, 2:10, 2:12] = 1
    label[5:10, 20:35, 15:40] = 2
    img = sitk.GetImageFromArray(label)
    img.CopyInformation(ref)
    sitk.WriteImage(img, str(tmp_path / "labels.mha"))
    masks, report = read_mask_report(tmp_path / "labels.mha", ref, names={1: "liver"})
    assert sorted(masks) == ["label_2", "liver"]
    assert report == []
    np.testing.assert_array_equal(arr(masks["liver"]), (label == 1).astype(np.uint8))
    np.testing.assert_array_equal(arr(masks["label_2"]), (label == 2).astype(np.uint8))
    # shifted by 4 slices along the normal: the top slices fall outside and are cropped
    shifted = sitk.Image(img)
    shifted.SetOrigin(tuple(np.asarray(ref.GetOrigin()) + 4 * ref.GetSpacing()[2] * np.array([0, 0, 1.0])))
    sitk.WriteImage(shifted, str(tmp_path / "shifted.nii.gz"))
    masks, report = read_mask_report(tmp_path / "shifted.nii.gz", ref)
    np.testing.assert_array_equal(arr(masks["label_2"])[9:12], (label == 2)[5:8].astype(np.uint8))
    assert arr(masks["label_2"]).sum() == (label == 2)[5:8].sum()
    assert any("beyond the reference" in line for line in report)


def test_mask_that_does_not_overlap_the_reference_is_a_mask_error(axial, tmp_path):
    _, ref, _ = axial
    img = sitk.GetImageFromArray(_known_masks()["box"].astype(np.uint8))
    img.CopyInformation(ref)
    img.SetOrigin(tuple(np.asarray(ref.GetOrigin()) + np.array([500.0, 0.0, 0.0])))
    sitk.WriteImage(img, str(tmp_path / "far.nii.gz"))
    with pytest.raises(MaskError, match="does not overlap") as err:
        read_mask(tmp_path / "far.nii.gz", ref)
    assert err.value.path == str(tmp_path / "far.nii.gz")


def test_a_ct_slice_is_not_a_mask(axial):
    s, ref, _ = axial
    with pytest.raises(MaskError, match="neither a Segmentation nor an RT Structure Set"):
        read_mask(s.files[0], ref)
