"""read_series: sources, pixel types, geometry checks, and the real-world failures it must name."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from pydicom.encaps import encapsulate
from pydicom.uid import JPEG2000Lossless, generate_uid
from testdata import PYDICOM_FILES

from lightning_dicom.demo.synthetic import direction_from_orientation, make_phantom, write_series
from lightning_dicom.demo.synthetic_stacks import write_multiframe
from lightning_dicom.dicom.index import DicomIndex
from lightning_dicom.dicom.series import read_series
from lightning_dicom.errors import LightningDicomError, SeriesError
from lightning_dicom.io import geometry, to_array


def _record(root: Path):
    with DicomIndex([root]) as idx:
        idx.scan(workers=1)
        (rec,) = idx.series()
    return rec


def _rewrite(path: Path, **changes) -> None:
    ds = pydicom.dcmread(path)
    for k, v in changes.items():
        setattr(ds, k, v)
    ds.save_as(path)


# -- sources and pixel types ----------------------------------------------------------------------
def test_ct_series_reads_as_int16_with_ground_truth_geometry(synthetic_dataset):
    _, series = synthetic_dataset
    s = series[0]
    image = read_series(s.files[0].parent)
    assert image.GetPixelID() == sitk.sitkInt16
    assert image.GetSize() == (24, 24, 16)
    np.testing.assert_array_equal(to_array(image), s.hu)
    g = geometry(image)
    assert g["spacing"] == pytest.approx(list(s.spacing))
    assert g["origin"] == pytest.approx(list(s.origin), abs=1e-4)
    assert g["direction"] == pytest.approx(list(s.direction), abs=1e-6)
    assert g["size"] == [24, 24, 16]


def test_every_source_kind_gives_the_same_volume(synthetic_dataset):
    root, series = synthetic_dataset
    s = series[1]
    by_folder = to_array(read_series(s.files[0].parent))
    by_list = to_array(read_series([str(f) for f in reversed(s.files)]))
    by_record = to_array(read_series(_record(s.files[0].parent)))
    by_uid = to_array(read_series(root, series_uid=s.series_uid))
    for arr in (by_list, by_record, by_uid):
        np.testing.assert_array_equal(arr, by_folder)
    one = read_series(s.files[5])  # a single slice is a volume of one slice
    assert one.GetSize() == (24, 24, 1)
    np.testing.assert_array_equal(to_array(one)[0], s.hu[5])
    assert one.GetOrigin() == pytest.approx(s.origin[:2] + (s.origin[2] + 5 * s.spacing[2],), abs=1e-4)
    assert one.GetSpacing()[2] == pytest.approx(s.spacing[2])  # SliceThickness


def test_ambiguous_or_missing_sources_raise_series_error(synthetic_dataset, tmp_path):
    root, series = synthetic_dataset
    with pytest.raises(SeriesError, match="6 volumes found; pass series_uid= one of") as info:
        read_series(root)
    assert series[0].series_uid in str(info.value)
    with pytest.raises(SeriesError, match="no series 1.2.3 found"):
        read_series(root, series_uid="1.2.3")
    (tmp_path / "a.txt").write_text("hello")
    with pytest.raises(SeriesError, match=r"no readable image series found: not a DICOM file") as info:
        read_series(tmp_path)
    assert info.value.path == str(tmp_path / "a.txt")
    with pytest.raises(SeriesError, match="no readable image series found: not an image volume .RT Dose"):
        read_series(PYDICOM_FILES / "rtdose.dcm")


def test_two_dimensional_image_is_a_one_slice_volume():
    image = read_series(PYDICOM_FILES / "CT_small.dcm")
    assert image.GetSize() == (128, 128, 1)
    assert image.GetPixelID() == sitk.sitkInt16
    assert image.GetSpacing() == pytest.approx((0.661468, 0.661468, 5.0))
    assert image.GetOrigin() == pytest.approx((-158.135803, -179.035797, -75.699997))
    ds = pydicom.dcmread(PYDICOM_FILES / "CT_small.dcm")
    np.testing.assert_array_equal(to_array(image)[0], ds.pixel_array.astype(np.int32) * 1 - 1024)


def test_rgb_file_is_a_vector_image():
    image = read_series(PYDICOM_FILES / "SC_rgb_small_odd.dcm")
    assert image.GetNumberOfComponentsPerPixel() == 3
    assert image.GetSize() == (3, 3, 1)
    assert image.GetPixelID() == sitk.sitkVectorUInt8
    ds = pydicom.dcmread(PYDICOM_FILES / "SC_rgb_small_odd.dcm")
    np.testing.assert_array_equal(to_array(image)[0], ds.pixel_array)
    assert to_array(image).shape == (1, 3, 3, 3)


def test_generated_rgb_series_is_a_vector_volume(tmp_path):
    s = write_series(tmp_path, make_phantom((4, 6, 5), seed=2), seed=4)
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 256, size=(4, 6, 5, 3), dtype=np.uint8)
    for k, f in enumerate(s.files):
        ds = pydicom.dcmread(f)
        del ds.RescaleSlope, ds.RescaleIntercept, ds.RescaleType, ds.WindowCenter, ds.WindowWidth
        ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PlanarConfiguration = 3, "RGB", 0
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
        ds.PixelData = truth[k].tobytes()
        ds.save_as(f)
    image = read_series(tmp_path)
    assert image.GetNumberOfComponentsPerPixel() == 3
    assert image.GetSize() == (5, 6, 4)
    np.testing.assert_array_equal(to_array(image), truth)
    assert image.GetOrigin() == pytest.approx(s.origin, abs=1e-4)


def test_multiframe_with_shuffled_frames_is_put_in_slice_order(tmp_path):
    hu = make_phantom((5, 9, 7), seed=6)
    s = write_multiframe(
        tmp_path / "mf.dcm",
        hu,
        frame_order=[3, 1, 4, 0, 2],
        spacing=(0.5, 0.6, 1.5),
        direction=direction_from_orientation("sagittal", 20),
    )
    image = read_series(s.files[0])
    assert image.GetPixelID() == sitk.sitkInt16
    assert image.GetSize() == (7, 9, 5)
    np.testing.assert_array_equal(to_array(image), s.hu)
    assert image.GetOrigin() == pytest.approx(s.origin, abs=1e-4)
    assert image.GetSpacing() == pytest.approx((0.5, 0.6, 1.5), abs=1e-4)
    assert image.GetDirection() == pytest.approx(s.direction, abs=1e-6)
    # the frames as stored are not in slice order: GDCM alone would get this wrong
    raw = sitk.GetArrayFromImage(sitk.ReadImage(str(s.files[0])))
    assert not np.array_equal(raw, s.hu)


def test_int32_read_is_narrowed_to_int16_when_values_fit(tmp_path):
    hu = make_phantom((3, 8, 8), seed=1)  # -1000..~800 HU
    write_series(tmp_path, hu, rescale_intercept=-1024.0, bits_stored=16, pixel_representation=0)
    rec = _record(tmp_path)
    assert rec.value_range == (-1024.0, 65535 - 1024.0)  # the header allows more than int16
    image = read_series(rec)
    assert image.GetPixelID() == sitk.sitkInt16
    for f in rec.files:  # now values that need int32: uint16 40000 + 10
        _rewrite(Path(f), RescaleIntercept="10", PixelData=np.full((8, 8), 40000, dtype="<u2").tobytes())
    wide = read_series(tmp_path)
    assert wide.GetPixelID() == sitk.sitkInt32
    assert int(to_array(wide).max()) == 40010


# -- geometry checks ------------------------------------------------------------------------------
def test_missing_slice_is_rejected(tmp_path):
    s = write_series(tmp_path, make_phantom((6, 8, 8)), seed=1)
    s.files[3].unlink()
    with pytest.raises(SeriesError, match="non-uniform slice spacing.*missing slice") as info:
        read_series(tmp_path)
    assert info.value.series_uid == s.series_uid


def test_duplicate_positions_are_rejected(tmp_path):
    s = write_series(tmp_path, make_phantom((4, 8, 8)), seed=1)
    shutil.copy(s.files[2], tmp_path / "echo2.dcm")
    _rewrite(tmp_path / "echo2.dcm", SOPInstanceUID=generate_uid())  # another instance, same place
    with pytest.raises(SeriesError, match="1 duplicate slice positions"):
        read_series(tmp_path)


def test_gantry_tilt_shear_is_rejected(tmp_path):
    s = write_series(tmp_path, make_phantom((4, 8, 8)), spacing=(1, 1, 2), seed=1)
    for k, f in enumerate(s.files):
        ipp = [float(v) for v in pydicom.dcmread(f).ImagePositionPatient]
        _rewrite(f, ImagePositionPatient=[ipp[0], ipp[1] + 0.7 * k, ipp[2]])  # slides along y
    with pytest.raises(SeriesError, match=r"not stacked along their normal \(offset up to 2.10 mm\)"):
        read_series(tmp_path)


# -- issue 4: real-world failures -----------------------------------------------------------------
def test_truncated_slice_names_the_file(tmp_path):
    s = write_series(tmp_path, make_phantom((5, 16, 16)), seed=1)
    victim = s.files[2]
    data = victim.read_bytes()
    victim.write_bytes(data[: len(data) - 100])  # header intact, pixel data cut
    with pytest.raises(SeriesError, match="unreadable pixel data: file truncated") as info:
        read_series(tmp_path)
    assert info.value.path == str(victim)
    assert str(victim) in str(info.value)
    with pytest.raises(SeriesError, match="file truncated") as info:
        read_series(PYDICOM_FILES / "MR_truncated.dcm")
    assert info.value.path == str(PYDICOM_FILES / "MR_truncated.dcm")


def test_file_changed_after_indexing_asks_to_reindex(tmp_path):
    s = write_series(tmp_path, make_phantom((4, 8, 8)), seed=1)
    rec = _record(tmp_path)
    read_series(rec)  # fine while unchanged
    st = s.files[1].stat()
    os.utime(s.files[1], ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
    with pytest.raises(
        SeriesError, match=r"changed since it was indexed \(modification time\); re-index"
    ) as info:
        read_series(rec)
    assert info.value.path == str(s.files[1])
    with open(s.files[3], "ab") as fh:
        fh.write(b"xx")
    fresh = _record(tmp_path)
    with open(s.files[3], "ab") as fh:
        fh.write(b"yy")
    with pytest.raises(SeriesError, match=r"size \d+ -> \d+ bytes") as info:
        read_series(fresh)
    assert info.value.path == str(s.files[3])
    s.files[0].unlink()
    with pytest.raises(SeriesError, match="gone or unreadable since it was indexed") as info:
        read_series(fresh)
    assert info.value.path == str(s.files[0])


def test_undecodable_slice_is_named(tmp_path):
    s = write_series(tmp_path, make_phantom((4, 8, 8)), seed=1)
    victim = s.files[2]
    ds = pydicom.dcmread(victim)
    ds.file_meta.TransferSyntaxUID = JPEG2000Lossless
    ds.PixelData = encapsulate([b"\xff\x4f\xff\x51" + bytes(60)])  # a J2K start marker, then nothing
    ds.save_as(victim)
    rec = _record(tmp_path)
    assert rec.problems == ()  # the encapsulation is well-formed: only decoding can tell
    with pytest.raises(SeriesError, match="cannot decode this file") as info:
        read_series(rec)
    assert info.value.path == str(victim)


def test_known_gdcm_misdecodes_are_refused(tmp_path):
    s = write_series(tmp_path, make_phantom((1, 4, 4)), seed=1)
    ds = pydicom.dcmread(s.files[0])
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 32, 32, 31, 0
    ds.RescaleIntercept = 0
    ds.PixelData = (np.arange(16) + 70000).astype(">u4").tobytes()
    ds.file_meta.TransferSyntaxUID = pydicom.uid.ExplicitVRBigEndian
    pydicom.dcmwrite(s.files[0], ds, little_endian=False, implicit_vr=False, force_encoding=True)
    assert pydicom.dcmread(s.files[0]).pixel_array[0, 0] == 70000  # a valid file ...
    with pytest.raises(SeriesError, match="32-bit Explicit VR Big Endian"):  # ... GDCM would misread
        read_series(s.files[0])
    with pytest.raises(SeriesError, match="RLE Lossless colour with 16 bits"):
        read_series(PYDICOM_FILES / "SC_rgb_rle_16bit.dcm")


def _strip_file_meta(path: Path, *, implicit_vr: bool, little_endian: bool) -> None:
    """Rewrite a file as a raw dataset: no 128-byte preamble, no DICM, no file meta group."""
    ds = pydicom.dcmread(path)
    if not little_endian:
        arr = ds.pixel_array
        ds.PixelData = arr.astype(arr.dtype.newbyteorder(">")).tobytes()
    del ds.file_meta
    ds.preamble = None
    pydicom.dcmwrite(
        path, ds, implicit_vr=implicit_vr, little_endian=little_endian, enforce_file_format=False
    )
    assert path.read_bytes()[128:132] != b"DICM"


@pytest.mark.parametrize("implicit_vr", [True, False])
def test_series_of_raw_datasets_without_file_meta_reads(tmp_path, implicit_vr):
    s = write_series(tmp_path, make_phantom((3, 8, 10)), spacing=(0.7, 0.8, 2.5), seed=4)
    for f in s.files:
        _strip_file_meta(f, implicit_vr=implicit_vr, little_endian=True)
    rec = _record(tmp_path)
    assert (rec.n_slices, rec.problems) == (3, ())
    image = read_series(rec)
    np.testing.assert_array_equal(to_array(image), s.hu)
    assert image.GetOrigin() == pytest.approx(s.origin, abs=1e-4)
    assert image.GetSpacing() == pytest.approx(s.spacing, abs=1e-4)


def test_big_endian_raw_dataset_is_refused_with_a_reason(tmp_path):
    """GDCM cannot read an explicit big endian dataset without file meta ("Unable to determine
    ImageIO reader"): the index says so and read_series raises before decoding."""
    s = write_series(tmp_path, make_phantom((2, 8, 8)), seed=6)
    for f in s.files:
        _strip_file_meta(f, implicit_vr=False, little_endian=False)
    rec = _record(tmp_path)
    assert rec.n_slices == 2
    assert len(rec.problems) == 2
    with pytest.raises(SeriesError, match="Explicit VR Big Endian dataset without file meta") as info:
        read_series(rec)
    assert info.value.path == str(s.files[0])


def test_truncated_raw_dataset_fails_naming_the_file(tmp_path):
    s = write_series(tmp_path, make_phantom((2, 8, 8)), seed=5)
    for f in s.files:
        _strip_file_meta(f, implicit_vr=True, little_endian=True)
    s.files[1].write_bytes(s.files[1].read_bytes()[:-30])
    rec = _record(tmp_path)
    with pytest.raises(SeriesError, match="file truncated") as info:
        read_series(rec)
    assert info.value.path == str(s.files[1])


def test_errors_never_contain_patient_name_or_id(tmp_path):
    s = write_series(tmp_path, make_phantom((4, 8, 8)), patient_id="PID777", patient_name="DOE^JANE", seed=1)
    s.files[1].unlink()
    data = s.files[2].read_bytes()
    s.files[2].write_bytes(data[:-50])
    messages = []
    for source in (tmp_path, s.files[2]):
        with pytest.raises(LightningDicomError) as info:
            read_series(source)
        messages.append(str(info.value))
    assert messages
    assert not any("PID777" in m or "DOE" in m for m in messages)


# -- the raw pixel reader gives exactly what GDCM gives -------------------------------------------
def _via_gdcm(rec):
    import lightning_dicom.dicom.series as lio

    lio._FORCE_GDCM = True
    try:
        return read_series(rec)
    finally:
        lio._FORCE_GDCM = False


def _assert_raw_equals_gdcm(rec) -> sitk.Image:
    """The series qualifies for the raw pixel reader, which gives GDCM's voxels and pixel type to the bit;
    and read_series gives the same image either way (a single file is always read by GDCM)."""
    import lightning_dicom.dicom.series as lio

    assert rec.raw_pixels, "expected a series the raw pixel reader takes"
    raw = lio._read_raw(rec, lio._pixel_type(rec))
    assert raw is not None
    fast, slow = read_series(rec), _via_gdcm(rec)
    for image in (raw, fast):
        a, b = to_array(image), to_array(slow)
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)
    assert fast.GetPixelID() == slow.GetPixelID()
    assert fast.GetSize() == slow.GetSize()
    assert fast.GetOrigin() == slow.GetOrigin()
    assert fast.GetSpacing() == slow.GetSpacing()
    assert fast.GetDirection() == slow.GetDirection()
    assert fast.GetMetaDataKeys() == slow.GetMetaDataKeys()
    return fast


def _assert_both_refuse(rec) -> None:
    """GDCM refuses the series, and so does read_series, with the same message."""
    with pytest.raises(SeriesError) as slow:
        _via_gdcm(rec)
    with pytest.raises(SeriesError) as fast:
        read_series(rec)
    assert str(fast.value) == str(slow.value)


RAW_VARIANTS = [  # (bits_stored, pixel_representation, slope, intercept, orientation)
    (16, 0, 1.0, -1024.0, "axial"),
    (12, 0, 1.0, -1024.0, "sagittal:20"),
    (12, 1, 1.0, 0.0, "coronal:15"),
    (16, 1, 1.0, 0.0, "axial:33"),
    (16, 1, 2.0, -3.0, "axial"),
    (16, 0, 0.5, -1024.0, "sagittal"),
    (12, 0, 0.37, -1000.25, "coronal"),
    (16, 1, -1.0, 10.0, "axial"),
    (14, 1, 1.0, 0.0, "axial"),
    (16, 0, 1.0, 0.0, "axial"),
    (16, 0, 4096.0, -1024.0, "axial"),  # int32 range
    (16, 0, 2.0**20, 0.0, "axial"),  # beyond int32: float32
]


@pytest.mark.parametrize(("bits_stored", "signed", "slope", "intercept", "orientation"), RAW_VARIANTS)
def test_raw_pixel_reader_equals_gdcm_on_generated_series(
    tmp_path, bits_stored, signed, slope, intercept, orientation
):
    base = 0.0 if signed else -1024.0  # written with slope 1 and this intercept, then relabelled
    lo, hi = (-(2 ** (bits_stored - 1)), 2 ** (bits_stored - 1) - 1) if signed else (0, 2**bits_stored - 1)
    hu = np.clip(make_phantom((5, 12, 10), seed=3), lo + base, min(hi + base, 32767))
    name, _, deg = orientation.partition(":")
    s = write_series(
        tmp_path,
        hu,
        rescale_intercept=base,
        bits_stored=bits_stored,
        pixel_representation=signed,
        direction=direction_from_orientation(name, float(deg or 0)),
        spacing=(0.7, 0.8, 1.5),
        seed=9,
    )
    if (slope, intercept) != (1.0, base):
        for f in s.files:
            _rewrite(f, RescaleSlope=f"{slope:.10g}", RescaleIntercept=f"{intercept:.10g}")
    rec = _record(tmp_path)
    assert list(rec.files) != sorted(rec.files)  # shuffled names: slice order is not name order
    image = _assert_raw_equals_gdcm(rec)
    if (slope, intercept) == (1.0, base):
        np.testing.assert_array_equal(to_array(image), s.hu)


@pytest.mark.parametrize(("bits_stored", "signed"), [(12, 0), (12, 1), (10, 1), (15, 0), (8, 0), (9, 1)])
def test_raw_pixel_reader_ignores_garbage_in_unused_high_bits_as_gdcm_does(tmp_path, bits_stored, signed):
    write_series(
        tmp_path,
        make_phantom((3, 8, 9), seed=2) * 0,
        rescale_intercept=0.0,
        bits_stored=bits_stored,
        pixel_representation=signed,
        seed=1,
    )
    rng = np.random.default_rng(bits_stored)
    for f in sorted(tmp_path.iterdir()):
        values = rng.integers(0, 2**16, size=(8, 9), dtype=np.uint16)  # every bit random, overlays too
        _rewrite(f, PixelData=values.astype("<u2").tobytes(), RescaleSlope="1", RescaleIntercept="-7")
    _assert_raw_equals_gdcm(_record(tmp_path))


@pytest.mark.parametrize(
    ("bits_stored", "signed", "slope", "intercept"),
    [(1, 0, "1", "-7"), (7, 1, "1", "-7"), (12, 1, "1", "2048"), (12, 1, "-1", "40000"), (8, 0, "1", "-128")],
)
def test_rescale_gdcm_refuses_is_refused_alike(tmp_path, bits_stored, signed, slope, intercept):
    """ITK's GDCM reader refuses an integral rescale into a type smaller than the stored one ("Pixel
    type larger than output type"): the raw pixel reader leaves those series to it."""
    s = write_series(
        tmp_path,
        make_phantom((2, 6, 5)) * 0,
        rescale_intercept=0.0,
        bits_stored=bits_stored,
        pixel_representation=signed,
        seed=1,
    )
    for f in s.files:
        _rewrite(f, RescaleSlope=slope, RescaleIntercept=intercept)
    rec = _record(tmp_path)
    assert rec.raw_pixels
    _assert_both_refuse(rec)


def test_raw_pixel_reader_equals_gdcm_with_per_file_rescale_and_implicit_vr(tmp_path):
    write_series(tmp_path, make_phantom((4, 8, 8), seed=5), seed=2)
    files = sorted(tmp_path.iterdir())
    _rewrite(files[0], RescaleSlope="2", RescaleIntercept="-2048")
    _rewrite(files[1], RescaleSlope="0.5")
    ds = pydicom.dcmread(files[2])
    ds.file_meta.TransferSyntaxUID = pydicom.uid.ImplicitVRLittleEndian
    ds.save_as(files[2], enforce_file_format=True)
    rec = _record(tmp_path)
    assert not rec.uniform_rescale
    assert _assert_raw_equals_gdcm(rec).GetPixelID() == sitk.sitkFloat32
    _rewrite(files[1], RescaleSlope="1")  # integral again: int32 read, narrowed to int16
    assert _assert_raw_equals_gdcm(_record(tmp_path)).GetPixelID() == sitk.sitkInt16


@pytest.mark.parametrize("signed", [0, 1])
def test_raw_pixel_reader_equals_gdcm_on_8_bit_series(tmp_path, signed):
    s = write_series(tmp_path, make_phantom((3, 5, 7), seed=1), seed=3)  # 5 x 7: odd, padded pixel data
    rng = np.random.default_rng(signed)
    for f in s.files:
        ds = pydicom.dcmread(f)
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, signed
        ds.RescaleSlope, ds.RescaleIntercept = "3", "-100"
        ds.PixelData = rng.integers(0, 256, size=35, dtype=np.uint8).tobytes()
        ds.save_as(f)
    _assert_raw_equals_gdcm(_record(tmp_path))


def _set_pixel_length(path: Path, rec_offset: int, n: int) -> None:
    """Rewrite the Pixel Data element (explicit VR, value at ``rec_offset``) to hold n bytes (odd allowed)."""
    data = bytearray(path.read_bytes())
    value = bytes(data[rec_offset:]) + bytes(max(0, n - (len(data) - rec_offset)))
    data[rec_offset - 4 : rec_offset] = n.to_bytes(4, "little")
    path.write_bytes(bytes(data[:rec_offset]) + value[:n])


def test_raw_pixel_reader_equals_gdcm_with_odd_or_longer_pixel_data(tmp_path):
    s = write_series(tmp_path / "a", make_phantom((3, 5, 7), seed=1), seed=3)
    for f in s.files:  # 8-bit, 35 bytes: an odd length, without the padding byte
        ds = pydicom.dcmread(f)
        ds.BitsAllocated, ds.BitsStored, ds.HighBit = 8, 8, 7
        ds.PixelData = np.arange(35, dtype=np.uint8).tobytes()
        ds.save_as(f)
    rec = _record(tmp_path / "a")
    for f, lay in zip(rec.files, rec.raw_pixels, strict=True):
        _set_pixel_length(Path(f), lay[0], 35)
    rec = _record(tmp_path / "a")
    assert os.path.getsize(rec.files[0]) % 2 == 1
    _assert_raw_equals_gdcm(rec)
    s = write_series(tmp_path / "b", make_phantom((3, 6, 6), seed=2), seed=4)
    rec = _record(tmp_path / "b")
    for k, (f, lay) in enumerate(zip(rec.files, rec.raw_pixels, strict=True)):
        _set_pixel_length(Path(f), lay[0], 72 + [1, 8, 72][k])  # odd, a little and a frame longer
    _assert_raw_equals_gdcm(_record(tmp_path / "b"))


def test_raw_pixel_reader_equals_gdcm_on_raw_datasets_and_single_files(tmp_path):
    s = write_series(tmp_path, make_phantom((3, 8, 10)), spacing=(0.7, 0.8, 2.5), seed=4)
    _strip_file_meta(s.files[0], implicit_vr=True, little_endian=True)
    _assert_raw_equals_gdcm(_record(tmp_path))
    for f in s.files:
        _assert_raw_equals_gdcm(_record(f))


def test_raw_pixel_reader_leaves_other_series_to_gdcm(tmp_path):
    s = write_series(tmp_path / "m1", make_phantom((2, 6, 6)), seed=1)
    for f in s.files:
        _rewrite(f, PhotometricInterpretation="MONOCHROME1")
    assert _record(tmp_path / "m1").raw_pixels == ()
    s = write_series(tmp_path / "hb", make_phantom((2, 6, 6)), seed=1, bits_stored=12)
    _rewrite(s.files[0], HighBit=15)
    assert _record(tmp_path / "hb").raw_pixels == ()
    s = write_multiframe(tmp_path / "mf.dcm", make_phantom((3, 6, 6)))
    assert _record(tmp_path / "mf.dcm").raw_pixels == ()
    for name in ("SC_rgb_small_odd.dcm", "JPEG2000.dcm", "MR_small_bigendian.dcm", "image_dfl.dcm"):
        assert _record(PYDICOM_FILES / name).raw_pixels == ()


def test_raw_pixel_reader_equals_gdcm_on_every_eligible_pydicom_file():
    eligible = 0
    for path in sorted(PYDICOM_FILES.rglob("*")):
        if not path.is_file():
            continue
        with DicomIndex([path]) as idx:
            idx.scan(workers=1)
            volumes = idx.series()
        for rec in volumes:
            if not rec.raw_pixels:
                continue
            try:
                _via_gdcm(rec)
            except SeriesError:  # refused before or by GDCM: the raw reader must refuse it too
                _assert_both_refuse(rec)
                continue
            _assert_raw_equals_gdcm(rec)
            eligible += 1
    assert eligible >= 20
