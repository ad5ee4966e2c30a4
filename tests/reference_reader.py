"""An independent reference reader written with pydicom + numpy only, and the comparisons against it.

Shared by tests/test_reference.py (pydicom's own test files, generated series) and
tests/test_reference_data.py (the pydicom-data files). It shares no code with lightning_dicom.

The reference decodes ``pixel_array``, applies RescaleSlope/Intercept, orders slices by
ImagePositionPatient projected on the normal and stacks them; its geometry is DICOM's: origin =
IPP of the first slice, direction columns = row cosines, column cosines, normal, spacing x =
PixelSpacing[1], y = PixelSpacing[0], z = gap between positions (single slice: SliceThickness, else
SpacingBetweenSlices, else 1; no IPP/IOP: origin 0, identity, PixelSpacing or 1). Colour data stays
raw (RGB as decoded by pydicom); PALETTE COLOR is expanded to RGB at the depth of its indices: 8-bit
RGB for 8-bit indices (the LUT's 16-bit entries >> 8), the LUT's 16 bits for 16-bit indices.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pydicom
import SimpleITK as sitk
from pydicom.pixels import apply_color_lut, iter_pixels
from pydicom.uid import UID

GEOMETRY_ATOL_MM = 1e-4
#: Lossy JPEG (baseline, extended): pydicom's pylibjpeg-libjpeg decoder rounds the inverse DCT and
#: chroma upsampling differently from GDCM (up to 3 units, mean < 0.12 on pydicom's files; Pillow
#: matches GDCM exactly), so whichever plugin is installed, compare within a tolerance.
LOSSY_JPEG = ("1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51")
LOSSY_ATOL = 4

_ENCODINGS = {  # (implicit VR, little endian) as pydicom parsed a file -> transfer syntax
    (True, True): "1.2.840.10008.1.2",
    (False, True): "1.2.840.10008.1.2.1",
    (False, False): "1.2.840.10008.1.2.2",
}


def read_dataset(path: str | Path) -> pydicom.Dataset:
    """The whole dataset. A raw dataset (no preamble, no file meta) gets the transfer syntax that pydicom
    found while parsing it, so that its pixel data can be decoded."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = pydicom.dcmread(str(path), force=True)
    if "TransferSyntaxUID" not in ds.file_meta:
        implicit, little = ds.original_encoding
        if (implicit, little) in _ENCODINGS:
            ds.file_meta.TransferSyntaxUID = UID(_ENCODINGS[implicit, little])
    return ds


def _modality(ds: pydicom.Dataset, frames: np.ndarray) -> np.ndarray:
    slope, icpt = ds.get("RescaleSlope"), ds.get("RescaleIntercept")
    if slope is None and "SharedFunctionalGroupsSequence" in ds:
        pvt = ds.SharedFunctionalGroupsSequence[0].get("PixelValueTransformationSequence")
        if pvt:
            slope, icpt = pvt[0].RescaleSlope, pvt[0].RescaleIntercept
    return frames.astype(np.float64) * float(slope if slope is not None else 1) + float(icpt or 0)


def _frames(ds: pydicom.Dataset) -> np.ndarray:
    """pixel_array as [frames, rows, cols(, samples)]; PALETTE COLOR expanded to RGB (8-bit for 8-bit
    indices, 16-bit for 16-bit indices)."""
    n_frames = int(ds.get("NumberOfFrames") or 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # a frame at a time: a third of the memory (and of the time) of pixel_array on 120-frame colour
        arr = np.stack(list(iter_pixels(ds))) if n_frames > 1 else ds.pixel_array
        if ds.PhotometricInterpretation == "PALETTE COLOR":
            rgb = apply_color_lut(arr, ds)
            arr = (rgb >> 8).astype(np.uint8) if ds.BitsAllocated == 8 and rgb.max() > 255 else rgb
    samples = int(ds.get("SamplesPerPixel") or 1) if ds.PhotometricInterpretation != "PALETTE COLOR" else 3
    return arr.reshape(n_frames, ds.Rows, ds.Columns, *((samples,) if samples > 1 else ()))


def reference_read(paths: list[str | Path]) -> dict:
    """{'array': z-y-x float64 (modality units) or raw colour, 'origin', 'direction', 'spacing'}."""
    dss = [read_dataset(p) for p in paths]
    first = dss[0]
    colour = int(first.get("SamplesPerPixel") or 1) > 1 or first.PhotometricInterpretation == "PALETTE COLOR"
    shared = first.get("SharedFunctionalGroupsSequence")
    iop = first.get("ImageOrientationPatient")
    if iop is None and shared and shared[0].get("PlaneOrientationSequence"):
        iop = shared[0].PlaneOrientationSequence[0].ImageOrientationPatient
    ps = first.get("PixelSpacing")
    if ps is None and shared and shared[0].get("PixelMeasuresSequence"):
        ps = shared[0].PixelMeasuresSequence[0].PixelSpacing
    sx, sy = (float(ps[1]), float(ps[0])) if ps else (1.0, 1.0)
    if len(dss) == 1 and int(first.get("NumberOfFrames") or 1) > 1:  # one multi-frame file
        frames = _frames(first)
        per = first.get("PerFrameFunctionalGroupsSequence")
        iop = [float(v) for v in iop] if iop is not None else [1, 0, 0, 0, 1, 0]  # no geometry: identity
        row, col = np.array(iop[:3], float), np.array(iop[3:], float)
        normal = np.cross(row, col)
        if per:
            ipps = np.array(
                [[float(v) for v in f.PlanePositionSequence[0].ImagePositionPatient] for f in per]
            )
        else:  # classic multi-frame: contiguous frames from IPP (or 0)
            gap = float(first.get("SpacingBetweenSlices") or first.get("SliceThickness") or 1)
            start = first.get("ImagePositionPatient") or [0, 0, 0]
            ipps = np.array([float(v) for v in start]) + np.outer(np.arange(len(frames)) * gap, normal)
        order = np.argsort(ipps @ normal, kind="stable")
        arr = frames[order] if colour else _modality(first, frames[order])
        ipps = ipps[order]
        sz = float((ipps[1] - ipps[0]) @ normal)
        return {
            "array": arr,
            "origin": ipps[0],
            "direction": np.column_stack([row, col, normal]).ravel(),
            "spacing": np.array([sx, sy, sz]),
        }
    if iop is None or first.get("ImagePositionPatient") is None:  # 2D images without geometry
        assert len(dss) == 1
        frames = _frames(first)
        return {
            "array": frames if colour else _modality(first, frames),
            "origin": np.zeros(3),
            "direction": np.eye(3).ravel(),
            "spacing": np.array([sx, sy, float(first.get("SliceThickness") or 1)]),
        }
    row, col = np.array([float(v) for v in iop[:3]]), np.array([float(v) for v in iop[3:]])
    normal = np.cross(row, col)
    ipps = [np.array([float(v) for v in ds.ImagePositionPatient]) for ds in dss]
    order = sorted(range(len(dss)), key=lambda k: float(ipps[k] @ normal))
    slices = [_frames(dss[k]) if colour else _modality(dss[k], _frames(dss[k])) for k in order]
    if len(dss) > 1:
        sz = float((ipps[order[1]] - ipps[order[0]]) @ normal)
    else:
        sz = float(first.get("SliceThickness") or first.get("SpacingBetweenSlices") or 1)
    return {
        "array": np.concatenate(slices),
        "origin": ipps[order[0]],
        "direction": np.column_stack([row, col, normal]).ravel(),
        "spacing": np.array([sx, sy, sz]),
    }


def assert_matches_reference(
    image: sitk.Image, ref: dict, *, exact: bool = True, lossy: bool = False, lossy_atol: float = LOSSY_ATOL
) -> None:
    arr = sitk.GetArrayFromImage(image)
    assert arr.shape == ref["array"].shape
    if lossy:
        assert_lossy_close(arr, ref["array"], atol=lossy_atol)
    elif exact:
        np.testing.assert_array_equal(arr.astype(np.float64), ref["array"])
    else:
        np.testing.assert_allclose(arr.astype(np.float64), ref["array"], rtol=1e-6, atol=1e-3)
    np.testing.assert_allclose(image.GetOrigin(), ref["origin"], atol=GEOMETRY_ATOL_MM)
    np.testing.assert_allclose(image.GetDirection(), ref["direction"], atol=GEOMETRY_ATOL_MM)
    np.testing.assert_allclose(image.GetSpacing(), ref["spacing"], atol=GEOMETRY_ATOL_MM)


def assert_lossy_close(arr: np.ndarray, ref: np.ndarray, *, atol: float = LOSSY_ATOL) -> None:
    """Two decodes of one lossy image: every value within ``atol``, and nearly all equal."""
    if arr.dtype.kind in "iu" and ref.dtype.kind in "iu":  # integers (colour): no float64 copies
        work = np.int16 if max(arr.itemsize, ref.itemsize) == 1 else np.int64
        diff = np.abs(arr.astype(work) - ref.astype(work))
    else:
        diff = np.abs(arr.astype(np.float64) - ref)
    assert diff.max() <= atol, diff.max()
    assert diff.mean() < 0.5, diff.mean()
