"""Tests for lightning_dicom.demo.synthetic: files written are read back exactly by SimpleITK."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

from lightning_dicom.demo.synthetic import (
    SyntheticSeries,
    direction_from_orientation,
    main,
    make_phantom,
    write_dataset,
    write_series,
)


def _sorted_by_normal(files: list[Path]) -> list[Path]:
    """Sort files by ImagePositionPatient projected on cross(row, col), read with pydicom."""
    keyed = []
    for f in files:
        ds = pydicom.dcmread(f, stop_before_pixels=True)
        iop = np.array([float(v) for v in ds.ImageOrientationPatient])
        normal = np.cross(iop[:3], iop[3:])
        keyed.append((float(np.dot(normal, [float(v) for v in ds.ImagePositionPatient])), f))
    return [f for _, f in sorted(keyed)]


def _read_sitk(files: list[Path]) -> sitk.Image:
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames([str(f) for f in _sorted_by_normal(files)])
    return reader.Execute()


def _assert_matches(img: sitk.Image, s: SyntheticSeries) -> None:
    arr = sitk.GetArrayFromImage(img)
    assert arr.shape == s.hu.shape
    np.testing.assert_array_equal(arr, s.hu.astype(arr.dtype))
    assert np.array_equal(np.rint(arr).astype(np.int64), s.hu.astype(np.int64))
    np.testing.assert_allclose(img.GetSpacing(), s.spacing, atol=1e-4)
    np.testing.assert_allclose(img.GetOrigin(), s.origin, atol=1e-4)
    np.testing.assert_allclose(img.GetDirection(), s.direction, atol=1e-4)


def test_direction_from_orientation_frames() -> None:
    assert direction_from_orientation() == (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)
    sag = np.array(direction_from_orientation("sagittal")).reshape(3, 3)
    np.testing.assert_array_equal(sag[:, 0], [0, 1, 0])
    np.testing.assert_array_equal(sag[:, 1], [0, 0, -1])
    np.testing.assert_array_equal(sag[:, 2], [-1, 0, 0])
    cor = np.array(direction_from_orientation("coronal")).reshape(3, 3)
    np.testing.assert_array_equal(cor[:, 0], [1, 0, 0])
    np.testing.assert_array_equal(cor[:, 1], [0, 0, -1])
    np.testing.assert_array_equal(cor[:, 2], [0, 1, 0])
    for name in ("axial", "sagittal", "coronal"):
        base = np.array(direction_from_orientation(name)).reshape(3, 3)
        m = np.array(direction_from_orientation(name, 20.0)).reshape(3, 3)
        np.testing.assert_allclose(m.T @ m, np.eye(3), atol=1e-12)
        np.testing.assert_allclose(np.cross(m[:, 0], m[:, 1]), m[:, 2], atol=1e-12)
        np.testing.assert_allclose(m[:, 0], base[:, 0])  # rotation about the row axis
        assert np.degrees(np.arccos(np.dot(m[:, 2], base[:, 2]))) == pytest.approx(20.0)
    with pytest.raises(ValueError, match="orientation"):
        direction_from_orientation("transverse")


def test_make_phantom_deterministic_and_in_range() -> None:
    a = make_phantom((8, 32, 32), lesion=True, seed=3)
    assert a.dtype == np.int16
    assert a.shape == (8, 32, 32)
    np.testing.assert_array_equal(a, make_phantom((8, 32, 32), lesion=True, seed=3))
    assert not np.array_equal(a, make_phantom((8, 32, 32), lesion=True, seed=4))
    assert a.min() >= -1024
    assert a.max() <= 3071
    assert a[:, 0, 0].tolist() == [-1000] * 8  # air in the corner
    assert (a < -600).sum() > 0
    assert (a > 500).sum() > 0
    plain = make_phantom((8, 32, 32), seed=3)
    assert not ((plain > 200) & (plain < 400)).any()
    assert ((a > 200) & (a < 400)).sum() > 10  # the lesion


CASES = {
    "axial": direction_from_orientation("axial"),
    "sagittal": direction_from_orientation("sagittal"),
    "coronal": direction_from_orientation("coronal"),
    "axial_oblique20": direction_from_orientation("axial", 20.0),
    "sagittal_oblique20": direction_from_orientation("sagittal", 20.0),
}


@pytest.mark.parametrize("case", list(CASES))
def test_series_roundtrip_sitk(tmp_path: Path, case: str) -> None:
    hu = make_phantom((12, 20, 24), lesion=True, seed=1)  # non-square, anisotropic in-plane spacing
    s = write_series(
        tmp_path / case,
        hu,
        spacing=(0.7, 0.9, 2.5),
        origin=(-12.5, 30.25, 101.0),
        direction=CASES[case],
        seed=5,
    )
    assert len(s.files) == 12
    assert all(f.parent == tmp_path / case for f in s.files)
    np.testing.assert_array_equal(s.hu, hu)
    # file-name order differs from slice order; InstanceNumber follows slice order
    assert sorted(s.files) != s.files
    assert _sorted_by_normal(s.files) == s.files
    assert [int(pydicom.dcmread(f, stop_before_pixels=True).InstanceNumber) for f in s.files] == list(
        range(1, 13)
    )
    _assert_matches(_read_sitk(s.files), s)


def test_headers(tmp_path: Path) -> None:
    s = write_series(tmp_path, make_phantom((4, 10, 12)), spacing=(0.7, 0.9, 3.0), shuffle=False)
    assert [f.name for f in s.files] == [f"IM{k:05d}.dcm" for k in range(4)]
    ds = pydicom.dcmread(s.files[1])
    assert ds.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian
    assert ds.SOPClassUID == pydicom.uid.CTImageStorage
    assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
    assert (ds.Rows, ds.Columns) == (10, 12)
    assert [float(v) for v in ds.PixelSpacing] == [0.9, 0.7]  # [between rows (y), between columns (x)]
    assert float(ds.SliceThickness) == float(ds.SpacingBetweenSlices) == 3.0
    assert [float(v) for v in ds.ImagePositionPatient] == [-20.0, -20.0, -37.0]
    assert float(ds.SliceLocation) == -37.0
    assert ds.RescaleType == "HU"
    assert float(ds.RescaleIntercept) == -1024.0
    assert (ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation) == (16, 16, 15, 0)
    assert ds.PatientName == "SYN^PATIENT0001"
    assert ds.PatientID == "SYN0001"
    assert ds.Manufacturer == "lightning_dicom synthetic"
    assert ds.StudyInstanceUID == s.study_uid
    assert ds.SeriesInstanceUID == s.series_uid
    assert len({pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID for f in s.files}) == 4
    np.testing.assert_array_equal(ds.pixel_array, s.hu[1].astype(np.int32) + 1024)
    mr = write_series(tmp_path / "mr", make_phantom((2, 8, 8)), modality="MR")
    assert pydicom.dcmread(mr.files[0]).SOPClassUID == pydicom.uid.MRImageStorage


@pytest.mark.parametrize(
    ("slope", "intercept", "bits_stored", "pixel_representation"),
    [(1.0, 0.0, 12, 1), (0.5, -1024.0, 16, 0), (2.0, -1024.0, 16, 0)],
)
def test_rescale_variants_roundtrip(
    tmp_path: Path, slope: float, intercept: float, bits_stored: int, pixel_representation: int
) -> None:
    hu = make_phantom((4, 16, 16), lesion=True, seed=2)
    s = write_series(
        tmp_path,
        hu,
        rescale_slope=slope,
        rescale_intercept=intercept,
        bits_stored=bits_stored,
        pixel_representation=pixel_representation,
    )
    if slope == 2.0:  # odd HU values are not representable: hu is the round trip
        assert np.abs(s.hu.astype(int) - hu).max() <= 1
        assert not np.array_equal(s.hu, hu)
    else:
        np.testing.assert_array_equal(s.hu, hu)
    _assert_matches(_read_sitk(s.files), s)


def test_out_of_range_raises(tmp_path: Path) -> None:
    hu = np.zeros((2, 4, 4), dtype=np.int16)
    hu[0, 0, 0] = -1025  # stored -1 with the default unsigned representation
    with pytest.raises(ValueError, match="not representable"):
        write_series(tmp_path, hu)
    hu[0, 0, 0] = 3072  # 4096 does not fit in 12 bits
    with pytest.raises(ValueError, match="not representable"):
        write_series(tmp_path, hu, bits_stored=12)
    with pytest.raises(ValueError, match="not representable"):
        write_series(tmp_path, hu, rescale_intercept=0.0, bits_stored=12, pixel_representation=1)
    assert not list(tmp_path.iterdir())  # nothing written


def _dataset_summary(root: Path, series: list[SyntheticSeries]) -> list[tuple]:
    return [
        (s.study_uid, s.series_uid, s.label, s.origin, str(s.files[0].relative_to(root)), s.hu.tobytes())
        for s in series
    ]


def test_write_dataset(tmp_path: Path) -> None:
    root = tmp_path / "a"
    series = write_dataset(
        root,
        n_patients=5,
        series_per_patient=2,
        shape_zyx=(6, 24, 24),
        seed=0,
        orientations=("axial", "sagittal:20"),
    )
    assert len(series) == 10
    assert sum(s.label for s in series) == 5  # round(10 * 0.5)
    for s in series:  # the label says whether a lesion was drawn
        assert bool(((s.hu > 200) & (s.hu < 400)).any()) == bool(s.label)
    assert [s.patient_id for s in series[::2]] == [f"SYN{i:04d}" for i in range(1, 6)]
    assert series[0].patient_name == "SYN^PATIENT0001"
    assert len({s.series_uid for s in series}) == 10
    assert len({s.study_uid for s in series}) == 5
    assert series[0].origin != series[2].origin

    # layout: root/<patient>/<study>/<series>/files, non-informative names, one study per patient
    for s in series:
        rel = s.files[0].relative_to(root).parts
        assert len(rel) == 4
        assert not any(s.patient_id in p or "PATIENT" in p for p in rel)
        headers = [pydicom.dcmread(f, stop_before_pixels=True) for f in s.files]
        assert {h.SeriesInstanceUID for h in headers} == {s.series_uid}
        assert {h.PatientID for h in headers} == {s.patient_id}
    assert len({s.files[0].parents[2] for s in series}) == 5
    _assert_matches(_read_sitk(series[1].files), series[1])  # oblique sagittal

    with open(root / "labels.csv", newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["SeriesInstanceUID", "label"]
    assert {r[0]: int(r[1]) for r in rows[1:]} == {s.series_uid: s.label for s in series}
    assert len(rows) == 11

    again = write_dataset(
        tmp_path / "b",
        n_patients=5,
        series_per_patient=2,
        shape_zyx=(6, 24, 24),
        seed=0,
        orientations=("axial", "sagittal:20"),
    )
    assert _dataset_summary(tmp_path / "b", again) == _dataset_summary(root, series)
    other = write_dataset(
        tmp_path / "c", n_patients=5, series_per_patient=2, shape_zyx=(6, 24, 24), seed=1, labels_csv=False
    )
    assert not (tmp_path / "c" / "labels.csv").exists()
    assert not {s.series_uid for s in other} & {s.series_uid for s in series}
    assert not {s.study_uid for s in other} & {s.study_uid for s in series}


@pytest.mark.parametrize(("n", "fraction", "expected"), [(8, 0.25, 2), (7, 0.5, 4), (3, 0.0, 0), (3, 1.0, 3)])
def test_write_dataset_label_balance(tmp_path: Path, n: int, fraction: float, expected: int) -> None:
    series = write_dataset(tmp_path, n_patients=n, shape_zyx=(2, 16, 16), lesion_fraction=fraction, seed=7)
    assert sum(s.label for s in series) == expected == round(n * fraction)


def test_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(tmp_path), "--patients", "2", "--seed", "3", "--shape", "3", "16", "16"]) == 0
    out = capsys.readouterr().out.strip()
    assert "2 series" in out
    assert "PATIENT" not in out
    assert len(out.splitlines()) == 1
    assert len(list(tmp_path.rglob("*.dcm"))) == 6
    assert (tmp_path / "labels.csv").exists()
