"""Siemens mosaics (issue 10): one stored image holding a grid of slices, unpacked into a 3D volume with
dcm2niix's geometry, in the index and in the reader. Generated mosaics (real-format CSA headers) of
every orientation, both CSA normal signs and every acquisition order; real ones in
tests/test_realdata_geometry.py."""

from __future__ import annotations

import warnings

import numpy as np
import pydicom
import pytest

from lightning_dicom.demo.synthetic import direction_from_orientation
from lightning_dicom.demo.synthetic_mosaic import acquisition_times, write_mosaic
from lightning_dicom.dicom.index import DicomIndex
from lightning_dicom.dicom.mosaic import read_csa
from lightning_dicom.dicom.series import read_series
from lightning_dicom.io import to_array


def _index(root):
    with DicomIndex([root]) as idx:
        idx.scan(workers=1)
        return idx.series(), idx.skipped()


def _world_volume(n: int, r: int, c: int, positions, row, col, spacing_xy) -> np.ndarray:
    """uint16 [n, r, c]: voxel (k, j, i) = a linear function of its world position (LPS mm), so that
    any misplaced voxel reads a wrong value."""
    jj, ii = np.meshgrid(np.arange(r), np.arange(c), indexing="ij")
    out = []
    for p in positions:
        pts = (
            np.asarray(p)
            + ii[..., None] * spacing_xy[0] * np.asarray(row)
            + jj[..., None] * spacing_xy[1] * np.asarray(col)
        )
        out.append(np.rint(2000 + 3.0 * pts[..., 0] + 7.0 * pts[..., 1] + 11.0 * pts[..., 2]))
    return np.stack(out).astype(np.uint16)


def _value_at(pts: np.ndarray) -> np.ndarray:
    return np.rint(2000 + 3.0 * pts[..., 0] + 7.0 * pts[..., 1] + 11.0 * pts[..., 2])


def test_the_csa_header_written_is_read_by_nibabel(tmp_path):
    vol = np.arange(5 * 4 * 6, dtype=np.uint16).reshape(5, 4, 6)
    m = write_mosaic(tmp_path / "m.dcm", vol, normal_sign=-1, order="interleaved")
    ds = pydicom.dcmread(m.path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from nibabel.nicom import csareader

    csa = csareader.get_csa_header(ds)
    assert csa["type"] == 2 and read_csa(ds)["tags"].keys() == csa["tags"].keys()
    assert csareader.get_n_mosaic(csa) == 5
    np.testing.assert_allclose(csareader.get_slice_normal(csa), [0, 0, -1])
    assert csareader.get_acq_mat_txt(csa) == "4*6"
    assert csareader.is_mosaic(csa)
    np.testing.assert_allclose(csa["tags"]["MosaicRefAcqTimes"]["items"], acquisition_times(5, "interleaved"))
    assert ds.Rows == 12 and ds.Columns == 18  # a 3 x 3 grid of 4 x 6 tiles
    np.testing.assert_array_equal(ds.pixel_array[4:8, 6:12], vol[4])  # tile 4: grid row 1, column 1


def test_a_real_sized_mosaic_is_72x72x5_at_the_first_tile(tmp_path):
    """The issue's file: 216 x 216 stored, 5 tiles of 72 x 72, 3 x 3 x 12 mm, first voxel (-108, -108, 16)."""
    rng = np.random.default_rng(0)
    vol = rng.integers(0, 4000, size=(5, 72, 72)).astype(np.uint16)
    m = write_mosaic(tmp_path / "epi.dcm", vol, origin=(-108.0, -108.0, 16.0), pixel_spacing=(3, 3), gap=12)
    assert m.corner_ipp == (-324.0, -324.0, 16.0)
    (rec,), skipped = _index(tmp_path)
    assert not skipped
    assert (rec.cols, rec.rows, rec.n_slices, rec.mosaic_grid) == (72, 72, 5, 3)
    assert rec.spacing == pytest.approx((3.0, 3.0, 12.0))
    assert rec.summary()["n_slices"] == 5 and rec.summary()["rows"] == 72
    img = read_series(rec)
    assert img.GetSize() == (72, 72, 5)
    assert img.GetOrigin() == pytest.approx((-108.0, -108.0, 16.0))
    assert img.GetSpacing() == pytest.approx((3.0, 3.0, 12.0))
    np.testing.assert_array_equal(to_array(img), vol)


CASES = [
    (o, s, order)
    for o in ("axial", "sagittal", "coronal", "oblique")
    for s in (1, -1)
    for order in ("ascending", "descending", "interleaved")
]


@pytest.mark.parametrize(("orientation", "normal_sign", "order"), CASES)
def test_every_orientation_sign_and_order_puts_each_voxel_at_its_world_position(
    tmp_path, orientation, normal_sign, order
):
    direction = (
        direction_from_orientation("axial", 0.0)
        if orientation == "axial"
        else direction_from_orientation(
            "sagittal" if orientation == "oblique" else orientation, 17.0 if orientation == "oblique" else 0.0
        )
    )
    mat = np.asarray(direction).reshape(3, 3)
    n, r, c, spacing_xy, gap = 7, 6, 5, (1.5, 2.0), 4.0
    p0 = np.array([-30.25, 12.5, 40.0])
    positions = [p0 + k * gap * normal_sign * mat[:, 2] for k in range(n)]
    vol = _world_volume(n, r, c, positions, mat[:, 0], mat[:, 1], spacing_xy)
    m = write_mosaic(
        tmp_path / "m.dcm",
        vol,
        direction=direction,
        origin=p0,
        pixel_spacing=spacing_xy,
        gap=gap,
        normal_sign=normal_sign,
        order=order,
    )
    (rec,), _ = _index(tmp_path)
    assert (rec.cols, rec.rows, rec.n_slices, rec.mosaic_grid) == (c, r, n, 3)
    assert rec.spacing == pytest.approx((*spacing_xy, gap))
    img = read_series(rec)
    arr = to_array(img).astype(np.float64)
    assert arr.shape == (n, r, c)
    # world point of every voxel from SimpleITK's own index -> physical mapping
    pts = np.array(
        [
            [[img.TransformIndexToPhysicalPoint((i, j, k)) for i in range(c)] for j in range(r)]
            for k in range(n)
        ]
    )
    np.testing.assert_array_equal(arr, _value_at(pts))
    # ascending along the normal (row x column): slices of the volume read are in space order
    normal = mat[:, 2]
    depth = [img.TransformIndexToPhysicalPoint((0, 0, k)) for k in range(n)]
    assert np.all(np.diff(np.asarray(depth) @ normal) > 0)
    # the corner voxels are where the tiles were written
    firsts = sorted(m.positions, key=lambda p: float(np.asarray(p) @ normal))
    np.testing.assert_allclose(img.GetOrigin(), firsts[0], atol=1e-4)
    np.testing.assert_allclose(img.TransformIndexToPhysicalPoint((0, 0, n - 1)), firsts[-1], atol=1e-4)


@pytest.mark.parametrize(("csa", "private_count"), [(True, False), (False, True)])
def test_the_tile_count_comes_from_either_place(tmp_path, csa, private_count):
    vol = np.arange(4 * 3 * 3, dtype=np.uint16).reshape(4, 3, 3)
    write_mosaic(tmp_path / "m.dcm", vol, csa=csa, private_count=private_count, gap=2.0)
    (rec,), _ = _index(tmp_path)
    assert (rec.n_slices, rec.mosaic_grid) == (4, 2)
    img = read_series(rec)
    np.testing.assert_array_equal(to_array(img), vol)  # no CSA normal: row x column (nibabel's fallback)


def test_a_mosaic_without_a_tile_count_is_skipped_naming_the_tags(tmp_path):
    write_mosaic(tmp_path / "m.dcm", np.zeros((4, 3, 3), dtype=np.uint16), csa=False, private_count=False)
    series, skipped = _index(tmp_path)
    assert series == []
    ((path, reason),) = skipped
    assert "NumberOfImagesInMosaic" in reason and "(0019,xx0A)" in reason and path.endswith("m.dcm")


def test_mosaics_of_one_series_are_one_volume_each(tmp_path):
    """Several mosaics of one series (time points): each file is a volume of its own, never a stack of
    mosaics at one position."""
    vol = np.arange(5 * 4 * 4, dtype=np.uint16).reshape(5, 4, 4)
    a = write_mosaic(tmp_path / "a.dcm", vol, instance_number=1)
    write_mosaic(tmp_path / "b.dcm", vol + 1, series_uid=a.series_uid, instance_number=2)
    series, _ = _index(tmp_path)
    assert [(s.n_slices, s.rows, s.cols) for s in series] == [(5, 4, 4), (5, 4, 4)]
    assert {to_array(read_series(s)).sum() for s in series} == {int(vol.sum()), int(vol.sum()) + vol.size}


def test_an_implicit_vr_mosaic_reads_the_same(tmp_path):
    """Private elements of an implicit-VR file carry no VR: the CSA header and (0019,xx0A) are still found."""
    vol = np.arange(5 * 4 * 4, dtype=np.uint16).reshape(5, 4, 4)
    m = write_mosaic(tmp_path / "explicit" / "m.dcm", vol, normal_sign=-1)
    ds = pydicom.dcmread(m.path)
    ds.file_meta.TransferSyntaxUID = pydicom.uid.ImplicitVRLittleEndian
    ds.save_as(tmp_path / "implicit.dcm", implicit_vr=True, little_endian=True)
    explicit, implicit = read_series(m.path), read_series(tmp_path / "implicit.dcm")
    assert implicit.GetSize() == (4, 4, 5) and implicit.GetOrigin() == explicit.GetOrigin()
    np.testing.assert_array_equal(to_array(implicit), vol[::-1])  # CSA normal -z: tile 4 is the lowest
