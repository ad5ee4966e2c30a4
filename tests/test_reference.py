"""read_series against an independent reference reader written with pydicom + numpy only.

The reference (tests/reference_reader.py, shared with tests/test_reference_data.py) decodes
``pixel_array``, applies RescaleSlope/Intercept, orders slices by ImagePositionPatient projected on
the normal and stacks them; its geometry is DICOM's: origin = IPP of the first slice, direction
columns = row cosines, column cosines, normal, spacing x = PixelSpacing[1], y = PixelSpacing[0],
z = gap between positions (single slice: SliceThickness, else SpacingBetweenSlices, else 1; no
IPP/IOP: origin 0, identity, PixelSpacing or 1). It shares no code with lightning_dicom.

Compared on generated series (every orientation, shuffled names, rescale and bit-depth variants,
multi-frame files) and on every single-frame grayscale image of pydicom's test files that pydicom
itself can decode without extra plugins.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from reference_reader import (
    GEOMETRY_ATOL_MM,
    LOSSY_JPEG,
    assert_lossy_close,
    assert_matches_reference,
    read_dataset,
    reference_read,
)
from testdata import PYDICOM_FILES

from lightning_dicom.demo.synthetic import direction_from_orientation, make_phantom, write_series
from lightning_dicom.demo.synthetic_stacks import write_multiframe
from lightning_dicom.dicom.index import DicomIndex
from lightning_dicom.dicom.series import read_series
from lightning_dicom.errors import SeriesError
from lightning_dicom.io import to_array

# -- generated series -----------------------------------------------------------------------------
ORIENTATIONS = [
    ("axial", 0.0),
    ("sagittal", 0.0),
    ("coronal", 0.0),
    ("axial", 20.0),
    ("sagittal", 20.0),
    ("coronal", -20.0),
]


@pytest.mark.parametrize(("orientation", "degrees"), ORIENTATIONS, ids=lambda v: str(v))
def test_generated_orientations_match_reference(tmp_path, orientation, degrees):
    hu = make_phantom((7, 12, 10), seed=3)
    s = write_series(
        tmp_path,
        hu,
        spacing=(0.7, 0.9, 1.5),
        origin=(-12.5, 33.25, 101.0),
        direction=direction_from_orientation(orientation, degrees),
        seed=11,
    )
    assert sorted(s.files) != s.files  # names do not follow slice order
    image = read_series(tmp_path)
    assert image.GetPixelID() == sitk.sitkInt16
    ref = reference_read(sorted(s.files))  # the reference sorts by itself, not by our list
    assert_matches_reference(image, ref)
    np.testing.assert_array_equal(to_array(image), s.hu)  # and both equal the ground truth
    np.testing.assert_allclose(image.GetDirection(), s.direction, atol=1e-6)


ENCODINGS = [
    # slope, intercept, bits_stored, pixel_representation, expected SimpleITK pixel type
    (1.0, -1024.0, 16, 0, sitk.sitkInt16),  # uint16 + intercept: values fit int16 after the read
    (1.0, -1024.0, 12, 0, sitk.sitkInt16),  # 12-bit unsigned CT
    (1.0, 0.0, 16, 1, sitk.sitkInt16),  # signed 16-bit, no rescale
    (1.0, 0.0, 12, 1, sitk.sitkInt16),  # signed 12-bit
    (2.0, -2048.0, 16, 0, sitk.sitkInt16),
    (0.5, -1024.0, 16, 0, sitk.sitkFloat32),  # fractional slope: float
    (1.0, -1024.5, 16, 0, sitk.sitkFloat32),  # fractional intercept: float
]


@pytest.mark.parametrize(("slope", "intercept", "bits", "signed", "ptype"), ENCODINGS)
def test_generated_encodings_match_reference(tmp_path, slope, intercept, bits, signed, ptype):
    hu = make_phantom((5, 9, 11), seed=4)
    if intercept == 0.0 and not signed:
        hu = hu - hu.min()
    s = write_series(
        tmp_path,
        hu,
        rescale_slope=slope,
        rescale_intercept=intercept,
        bits_stored=bits,
        pixel_representation=signed,
        direction=direction_from_orientation("coronal", 10),
        seed=2,
    )
    image = read_series(tmp_path)
    assert image.GetPixelID() == ptype, image.GetPixelIDTypeAsString()
    ref = reference_read(s.files)
    assert_matches_reference(image, ref, exact=True)  # x.5 values are exact in float32


@pytest.mark.parametrize("per_frame", [True, False], ids=["enhanced-shuffled-frames", "classic"])
def test_generated_multiframe_matches_reference(tmp_path, per_frame):
    hu = make_phantom((6, 10, 8), seed=5)
    order = [4, 1, 5, 0, 3, 2] if per_frame else None
    s = write_multiframe(
        tmp_path / "mf.dcm",
        hu,
        spacing=(0.6, 0.8, 2.5),
        frame_order=order,
        per_frame_positions=per_frame,
        direction=direction_from_orientation("axial", 15),
    )
    image = read_series(s.files[0])
    ref = reference_read(s.files)
    assert_matches_reference(image, ref)
    np.testing.assert_array_equal(to_array(image), s.hu)
    assert image.GetPixelID() == sitk.sitkInt16


# -- pydicom's test files -------------------------------------------------------------------------
def _headers() -> dict[str, pydicom.Dataset]:
    out = {}
    for path in sorted(PYDICOM_FILES.rglob("*")):
        if not path.is_file() or "TINY_ALPHA" in path.parts:
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ds = pydicom.dcmread(path, stop_before_pixels=True)
        except Exception:
            continue
        out[str(path.relative_to(PYDICOM_FILES))] = ds
    return out


def _is_grayscale_single_frame_image(ds: pydicom.Dataset) -> bool:
    try:
        return (
            "Rows" in ds
            and ds.get("SamplesPerPixel", 1) == 1
            and str(ds.get("PhotometricInterpretation", "")).startswith("MONOCHROME")
            and int(ds.get("NumberOfFrames") or 1) == 1
            and "SeriesInstanceUID" in ds
        )
    except (TypeError, ValueError):
        return False


with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # badVR.dcm: NumberOfFrames '1A'
    _HEADERS = _headers()
    GRAYSCALE = sorted(k for k, ds in _HEADERS.items() if _is_grayscale_single_frame_image(ds))
    COLOUR = sorted(
        k
        for k, ds in _HEADERS.items()
        if "Rows" in ds
        and "SeriesInstanceUID" in ds
        and (ds.get("SamplesPerPixel", 1) > 1 or ds.get("PhotometricInterpretation") == "PALETTE COLOR")
    )


#: Files read_series rejects on purpose (regex of the SeriesError reason), with why.
REJECTED = {
    "MR_truncated.dcm": "file truncated",  # header fine, pixel data cut
    "rtdose_1frame.dcm": "no readable image series",  # RT Dose: not an image volume
    "rtdose_expb_1frame.dcm": "no readable image series",
    "rtdose_rle_1frame.dcm": "no readable image series",
    "badVR.dcm": "no readable image series",  # RT Dose with NumberOfFrames '1A'
    "liver_1frame.dcm": "no readable image series",  # Segmentation
    "liver_expb_1frame.dcm": "no readable image series",
    "JPEG2000-embedded-sequence-delimiter.dcm": "cannot decode",  # corrupt J2K codestream
    "SC_rgb_rle_16bit.dcm": "RLE Lossless colour",  # GDCM mis-decodes: rejected
    "SC_rgb_rle_16bit_2frame.dcm": "RLE Lossless colour",
    "SC_rgb_rle_32bit.dcm": "RLE Lossless colour",
    "SC_rgb_rle_32bit_2frame.dcm": "RLE Lossless colour",
}


def _reference_or_skip(rel: str) -> dict:
    try:
        return reference_read([PYDICOM_FILES / rel])
    except (RuntimeError, NotImplementedError, ValueError) as err:
        pytest.skip(
            f"pydicom cannot decode {rel} without extra plugins "
            f"(pylibjpeg / pylibjpeg-libjpeg / pylibjpeg-openjpeg / python-gdcm): {str(err)[:80]}"
        )


def test_pydicom_file_lists_are_not_empty():
    assert len(GRAYSCALE) >= 40
    assert "CT_small.dcm" in GRAYSCALE
    assert "MR_small_RLE.dcm" in GRAYSCALE
    assert len(COLOUR) >= 25
    assert "examples_palette.dcm" in COLOUR


@pytest.mark.parametrize("rel", GRAYSCALE)
def test_pydicom_grayscale_matches_reference(rel):
    if rel in REJECTED:
        with pytest.raises(SeriesError, match=REJECTED[rel]) as info:
            read_series(PYDICOM_FILES / rel)
        assert info.value.path == str(PYDICOM_FILES / rel)
        return
    ref = _reference_or_skip(rel)
    image = read_series(PYDICOM_FILES / rel)
    integral = bool(np.all(ref["array"] % 1 == 0))
    lossy = _HEADERS[rel].file_meta.get("TransferSyntaxUID") in LOSSY_JPEG
    assert_matches_reference(image, ref, exact=integral, lossy=lossy)
    if integral and ref["array"].min() >= -32768 and ref["array"].max() <= 32767:
        assert image.GetPixelID() == sitk.sitkInt16, image.GetPixelIDTypeAsString()
    elif not integral:
        assert image.GetPixelID() == sitk.sitkFloat32, image.GetPixelIDTypeAsString()


#: GDCM needs ~6 s for this 4 kB file (implicit VR data under an explicit VR transfer syntax).
SLOW = {"SC_rgb_jpeg.dcm"}


@pytest.mark.parametrize("rel", [pytest.param(r, marks=pytest.mark.slow) if r in SLOW else r for r in COLOUR])
def test_pydicom_colour_is_a_vector_image_matching_reference(rel):
    if rel in REJECTED:
        with pytest.raises(SeriesError, match=REJECTED[rel]):
            read_series(PYDICOM_FILES / rel)
        return
    ref = _reference_or_skip(rel)
    image = read_series(PYDICOM_FILES / rel)
    assert image.GetNumberOfComponentsPerPixel() == 3
    assert image.GetDimension() == 3
    ts = _HEADERS[rel].file_meta.TransferSyntaxUID
    arr = to_array(image).astype(np.float64)
    assert arr.shape == ref["array"].shape
    if ts in LOSSY_JPEG:
        assert_lossy_close(arr, ref["array"])
    else:
        np.testing.assert_array_equal(arr, ref["array"])
    np.testing.assert_allclose(image.GetSpacing(), ref["spacing"], atol=GEOMETRY_ATOL_MM)


def test_pydicom_dicomdir_series_match_reference():
    """Every multi-slice volume of dicomdirtests/ through the index, against the reference."""
    with DicomIndex([PYDICOM_FILES / "dicomdirtests"]) as idx:
        idx.scan(workers=1)
        volumes = idx.series()
    read, rejected = 0, []
    for rec in volumes:
        try:
            image = read_series(rec)
        except SeriesError as err:
            rejected.append((Path(rec.files[0]).parent.name, err.reason))
            continue
        ref = reference_read(list(rec.files))
        assert_matches_reference(image, ref, exact=rec.integer_values)
        read += 1
    assert read == 23
    # CT2 holds instances 18 and 180-182 only: a 202.5 mm hole in a 1.25 mm stack
    assert len(rejected) == 1
    assert rejected[0][0] == "CT2"
    assert "non-uniform slice spacing" in rejected[0][1]


def test_monochrome1_values_are_modality_values_not_inverted():
    """GDCM inverts MONOCHROME1 before the rescale; read_series undoes it (CR: slope 0.684, intercept 200)."""
    rel = "dicomdirtests/77654033/CR1/6154"
    assert _HEADERS[rel].PhotometricInterpretation == "MONOCHROME1"
    image = read_series(PYDICOM_FILES / rel)
    ds = read_dataset(PYDICOM_FILES / rel)
    expected = ds.pixel_array.astype(np.float64) * 0.684 + 200
    np.testing.assert_allclose(to_array(image)[0], expected, rtol=1e-6)
    assert image.GetPixelID() == sitk.sitkFloat32


@pytest.mark.parametrize(
    ("pr", "bits", "slope", "intercept"), [(0, 12, 1.0, 0.0), (1, 16, 1.0, -100.0), (0, 16, 0.5, 10.0)]
)
def test_generated_monochrome1_matches_reference(tmp_path, pr, bits, slope, intercept):
    stored = (np.arange(2 * 8 * 8).reshape(2, 8, 8) * 7 - (200 if pr else 0)).astype(np.float64)
    s = write_series(
        tmp_path,
        stored * slope + intercept,
        rescale_slope=slope,
        rescale_intercept=intercept,
        bits_stored=bits,
        pixel_representation=pr,
    )
    for f in s.files:
        ds = pydicom.dcmread(f)
        ds.PhotometricInterpretation = "MONOCHROME1"
        ds.save_as(f)
    image = read_series(tmp_path)
    assert_matches_reference(image, reference_read(s.files))


def test_reference_reader_is_independent_of_file_names(tmp_path):
    """Sanity check of the reference itself: name order differs from slice order, result does not."""
    s = write_series(tmp_path, make_phantom((4, 6, 6), seed=8), seed=3)
    by_name = reference_read(sorted(s.files))
    by_slice = reference_read(s.files)
    np.testing.assert_array_equal(by_name["array"], by_slice["array"])
    np.testing.assert_array_equal(by_name["array"], s.hu)
    assert os.path.basename(sorted(s.files)[0]) != os.path.basename(s.files[0])
