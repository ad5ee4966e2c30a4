"""The SimpleITK boundary: DICOM series in, ``SimpleITK.Image`` (LPS, mm, modality units) out.

This is the only module that calls SimpleITK's readers and the only place where axis order is
converted: :func:`to_array` gives z-y-x numpy arrays of an x-y-z SimpleITK image.

Geometry is DICOM's: origin = ImagePositionPatient (0020,0032) of the first slice along the normal,
direction from ImageOrientationPatient (0020,0037) (columns: row direction, column direction,
normal), spacing = PixelSpacing (0028,0030) reversed to x-y, and the slice gap measured between
sorted positions. Values are modality units: stored x RescaleSlope (0028,1053) + RescaleIntercept
(0028,1052) (HU for CT), read as int16 when the headers guarantee integers that fit (GDCM would
otherwise promote int16 CT to int32).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Union

import numpy as np
import SimpleITK as sitk

from .errors import SeriesError
from .index import DicomIndex, SeriesRecord

__all__ = ["geometry", "read_series", "to_array"]

SeriesSource = Union[SeriesRecord, str, os.PathLike, Sequence[Union[str, os.PathLike]]]

#: Largest relative deviation of a slice gap from the median before a series is rejected.
GAP_TOLERANCE = 0.05
#: Largest distance (mm) of a slice position from the line along the normal (gantry tilt).
SHEAR_TOLERANCE_MM = 0.05


def _pixel_type(rec: SeriesRecord) -> int:
    lo, hi = rec.value_range
    if rec.samples_per_pixel > 1:
        return sitk.sitkUnknown
    if rec.integer_values and lo >= -32768 and hi <= 32767:
        return sitk.sitkInt16
    if rec.integer_values and lo >= -(2**31) and hi <= 2**31 - 1:
        return sitk.sitkInt32
    return sitk.sitkFloat32


def check_geometry(rec: SeriesRecord) -> None:
    """Reject stacks that a plain series reader would misplace.

    Raises:
        SeriesError: duplicate slice positions, missing/non-uniform slices or a sheared
            (gantry-tilted) stack.
    """
    if rec.n_instances < 2 or len(rec.positions) < 2:
        return
    iop = np.asarray(rec.orientation)
    normal = np.cross(iop[:3], iop[3:])
    pos = np.asarray(rec.positions, dtype=float)
    proj = pos @ normal
    gaps = np.diff(proj)
    if np.any(np.abs(gaps) < 1e-3):
        raise SeriesError(
            f"{int(np.sum(np.abs(gaps) < 1e-3))} duplicate slice positions (repeated instances, or several "
            "phases/echoes in one series); select one with a description rule or split the series",
            series_uid=rec.series_uid, path=rec.files[0])
    med = float(np.median(gaps))
    dev = float(np.max(np.abs(gaps - med)))
    if dev > GAP_TOLERANCE * abs(med):
        raise SeriesError(
            f"non-uniform slice spacing: gaps from {gaps.min():.3f} to {gaps.max():.3f} mm (median {med:.3f}); "
            "a missing slice or a variable-spacing acquisition", series_uid=rec.series_uid, path=rec.files[0])
    offsets = pos - pos[0] - np.outer(proj - proj[0], normal)
    shear = float(np.max(np.linalg.norm(offsets, axis=1)))
    if shear > SHEAR_TOLERANCE_MM:
        raise SeriesError(
            f"slices are not stacked along their normal (offset up to {shear:.2f} mm): gantry tilt or "
            "mixed stacks are not supported", series_uid=rec.series_uid, path=rec.files[0])


def _resolve(source: SeriesSource, series_uid: str | None) -> SeriesRecord:
    if isinstance(source, SeriesRecord):
        return source
    paths = [source] if isinstance(source, (str, os.PathLike)) else list(source)
    with DicomIndex(paths) as idx:
        idx.scan(workers=1)
        series = idx.series()
    if series_uid is not None:
        series = [s for s in series if series_uid in (s.series_id, s.series_uid)]
    if not series:
        what = f"series {series_uid}" if series_uid else "any readable image series"
        raise SeriesError(f"no {what} found", path=str(paths[0]))
    if len(series) > 1:
        ids = ", ".join(s.series_id for s in series[:10])
        raise SeriesError(f"{len(series)} volumes found; pass series_uid= one of: {ids}", path=str(paths[0]))
    return series[0]


def read_series(source: SeriesSource, *, series_uid: str | None = None) -> sitk.Image:
    """Read one DICOM series (or multi-frame file) as a 3D SimpleITK image.

    Args:
        source: a :class:`SeriesRecord` from an index, a folder, a file, or a list of files.
        series_uid: which series when ``source`` holds several (SeriesInstanceUID or series id).

    Returns:
        A 3D image: LPS geometry in mm, values in modality units (HU for CT), int16 when the
        headers guarantee it, else int32/float32. Multi-component (RGB) data is a vector image.

    Raises:
        SeriesError: the series is ambiguous, missing, cannot be decoded or has bad geometry.
    """
    rec = _resolve(source, series_uid)
    check_geometry(rec)
    ptype = _pixel_type(rec)
    try:
        if len(rec.files) == 1:
            img = sitk.ReadImage(rec.files[0], ptype)
        else:
            reader = sitk.ImageSeriesReader()
            reader.SetFileNames(list(rec.files))
            reader.SetOutputPixelType(ptype)
            reader.MetaDataDictionaryArrayUpdateOff()
            reader.LoadPrivateTagsOff()
            img = reader.Execute()
    except RuntimeError as err:
        first = str(err).strip().splitlines()[-1][:200] if str(err).strip() else type(err).__name__
        raise SeriesError(f"SimpleITK/GDCM cannot read this series: {first}",
                          series_uid=rec.series_uid, path=rec.files[0]) from None
    if img.GetDimension() == 2:
        img = sitk.JoinSeries(img)
    if len(rec.files) > 1:  # geometry from our own sort and measurement, not the reader's guess
        iop = np.asarray(rec.orientation)
        normal = np.cross(iop[:3], iop[3:])
        img.SetDirection(tuple(np.column_stack([iop[:3], iop[3:], normal]).ravel().tolist()))
        img.SetOrigin(tuple(float(x) for x in rec.positions[0]))
        img.SetSpacing(rec.spacing)
    if ptype == sitk.sitkInt32:
        arr = sitk.GetArrayViewFromImage(img)
        if arr.size and arr.min() >= -32768 and arr.max() <= 32767:
            img = sitk.Cast(img, sitk.sitkInt16)
    return img


def to_array(image: sitk.Image) -> np.ndarray:
    """A copy of the voxels as a z-y-x array (``[D, H, W]``, or ``[D, H, W, C]`` for vector images)."""
    return sitk.GetArrayFromImage(image)


def geometry(image: sitk.Image) -> dict[str, Any]:
    """Spacing (x-y-z mm), origin (LPS mm), direction (9 floats) and size (x-y-z voxels) of an image."""
    return {
        "spacing": list(image.GetSpacing()),
        "origin": list(image.GetOrigin()),
        "direction": list(image.GetDirection()),
        "size": list(image.GetSize()),
    }


def read_array(path: str | Path) -> np.ndarray:
    """Read any single image file SimpleITK supports as a z-y-x array (tests, masks)."""
    return to_array(sitk.ReadImage(str(path)))
