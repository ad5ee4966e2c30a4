"""The SimpleITK boundary: DICOM series in, ``SimpleITK.Image`` (LPS, mm, modality units) out.

This is the only module that calls SimpleITK's readers and the only place where axis order is
converted: :func:`to_array` gives z-y-x numpy arrays of an x-y-z SimpleITK image.

Geometry is DICOM's, computed from the index, never guessed by the reader: origin =
ImagePositionPatient (0020,0032) of the first slice along the normal, direction from
ImageOrientationPatient (0020,0037) (columns: row direction, column direction, normal), spacing =
PixelSpacing (0028,0030) reversed to x-y, and the slice gap measured between sorted positions (see
:class:`~lightning_dicom.index.SeriesRecord` for the fallbacks). Multi-frame files are volumes
too: their frames are put in slice order using the per-frame PlanePositionSequence when present.
A single 2D image is a volume of one slice. Values are modality units: stored x RescaleSlope
(0028,1053) + RescaleIntercept (0028,1052) (HU for CT), read as int16 when the headers guarantee
integers that fit (GDCM would otherwise promote int16 CT to int32). MONOCHROME1 images are not
inverted (GDCM inverts them; that is undone): values stay modality values, and
``SeriesRecord.photometric`` tells the display polarity. Colour images (RGB, YBR, PALETTE COLOR)
come back as vector images of 8-bit RGB (or the stored depth).

Before decoding, the reader checks that every file is the one that was indexed (same size and
mtime; else re-index) and that the index found nothing wrong with its pixel data (truncated
files, pixel data shorter than Rows x Columns declare, and encodings GDCM is known to decode
wrongly: RLE colour above 8 bits, 32-bit big endian). Every failure is a
:class:`~lightning_dicom.errors.SeriesError` naming the file at fault.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

from .errors import SeriesError
from .index import DicomIndex, SeriesRecord

__all__ = ["check_files", "check_geometry", "geometry", "read_series", "to_array"]

SeriesSource = SeriesRecord | str | os.PathLike | Sequence[str | os.PathLike]

#: Largest relative deviation of a slice gap from the median before a series is rejected.
GAP_TOLERANCE = 0.05
#: Largest distance (mm) of a slice position from the line along the normal (gantry tilt).
SHEAR_TOLERANCE_MM = 0.05
_COLOUR = ("RGB", "YBR", "PALETTE")


def _is_colour(rec: SeriesRecord) -> bool:
    return rec.samples_per_pixel > 1 or rec.photometric.startswith(_COLOUR)


def _pixel_type(rec: SeriesRecord) -> int:
    lo, hi = rec.value_range
    if _is_colour(rec):
        return sitk.sitkUnknown
    if rec.integer_values and lo >= -32768 and hi <= 32767:
        return sitk.sitkInt16
    if rec.integer_values and lo >= -(2**31) and hi <= 2**31 - 1:
        return sitk.sitkInt32
    return sitk.sitkFloat32


def check_files(rec: SeriesRecord) -> None:
    """Refuse files that are gone, changed since they were indexed, or have unreadable pixel data.

    Raises:
        SeriesError: naming the first such file.
    """
    for path, reason in rec.problems:
        raise SeriesError(f"unreadable pixel data: {reason}", series_uid=rec.series_uid, path=path)
    for k, path in enumerate(rec.files):
        try:
            st = os.stat(path)
        except OSError as err:
            raise SeriesError(f"file is gone or unreadable since it was indexed ({err.strerror}); re-index "
                              "(DicomIndex.scan)", series_uid=rec.series_uid, path=path) from None
        if k < len(rec.file_stats) and (st.st_size, st.st_mtime_ns) != tuple(rec.file_stats[k]):
            size, mtime = rec.file_stats[k]
            what = f"size {size} -> {st.st_size} bytes" if size != st.st_size else "modification time"
            raise SeriesError(f"file changed since it was indexed ({what}); re-index (DicomIndex.scan) "
                              "before reading", series_uid=rec.series_uid, path=path)


def check_geometry(rec: SeriesRecord) -> None:
    """Reject stacks that a plain series reader would misplace.

    Raises:
        SeriesError: duplicate slice positions, missing/non-uniform slices or a sheared
            (gantry-tilted) stack.
    """
    if len(rec.positions) < 2 or not rec.has_geometry:
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
    if not paths:
        raise SeriesError("no files given")
    with DicomIndex(paths) as idx:
        idx.scan(workers=1)
        series = idx.series()
        skipped = idx.skipped()
    if series_uid is not None:
        series = [s for s in series if series_uid in (s.series_id, s.series_uid)]
    if not series:
        what = f"series {series_uid}" if series_uid else "readable image series"
        if skipped and series_uid is None:  # say why: the (first) file's skip reason
            path, reason = skipped[0]
            more = f" ({len(skipped) - 1} more files skipped)" if len(skipped) > 1 else ""
            raise SeriesError(f"no {what} found: {reason}{more}", path=path)
        raise SeriesError(f"no {what} found", path=str(paths[0]))
    if len(series) > 1:
        ids = ", ".join(s.series_id for s in series[:10])
        raise SeriesError(f"{len(series)} volumes found; pass series_uid= one of: {ids}", path=str(paths[0]))
    return series[0]


def _decode(rec: SeriesRecord, ptype: int) -> sitk.Image:
    if len(rec.files) == 1:
        return sitk.ReadImage(rec.files[0], ptype)
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(list(rec.files))
    reader.SetOutputPixelType(ptype)
    reader.MetaDataDictionaryArrayUpdateOff()
    reader.LoadPrivateTagsOff()
    return reader.Execute()


def _culprit(rec: SeriesRecord) -> tuple[str, str]:
    """After a failed series read: the first file that fails alone, and GDCM's complaint."""
    for path in rec.files:
        try:
            sitk.ReadImage(path)
        except RuntimeError as err:
            return path, _last_line(err)
    return rec.files[0], ""


def _last_line(err: Exception) -> str:
    text = str(err).strip()
    return text.splitlines()[-1][:200] if text else type(err).__name__


def read_series(source: SeriesSource, *, series_uid: str | None = None) -> sitk.Image:
    """Read one DICOM series (or multi-frame file, or 2D image) as a 3D SimpleITK image.

    Args:
        source: a :class:`SeriesRecord` from an index, a folder, a file, or a list of files.
        series_uid: which series when ``source`` holds several (SeriesInstanceUID or series id).

    Returns:
        A 3D image: LPS geometry in mm, values in modality units (HU for CT), int16 when the
        headers guarantee it, else int32/float32. Colour data is a vector image (RGB).

    Raises:
        SeriesError: the series is ambiguous or missing, a file changed since it was indexed or is
            truncated, the pixel data cannot be decoded, or the geometry is bad.
    """
    rec = _resolve(source, series_uid)
    check_files(rec)
    check_geometry(rec)
    ptype = _pixel_type(rec)
    try:
        img = _decode(rec, ptype)
    except RuntimeError as err:
        path, why = _culprit(rec) if len(rec.files) > 1 else (rec.files[0], _last_line(err))
        raise SeriesError(f"SimpleITK/GDCM cannot decode this file: {why or _last_line(err)}",
                          series_uid=rec.series_uid, path=path) from None
    if img.GetDimension() == 2:
        img = sitk.JoinSeries(img)
    size = img.GetSize()
    if (size[0], size[1], size[2]) != (rec.cols, rec.rows, rec.n_slices):
        raise SeriesError(f"decoded {size[0]}x{size[1]}x{size[2]} voxels (x-y-z) but the headers say "
                          f"{rec.cols}x{rec.rows}x{rec.n_slices}", series_uid=rec.series_uid, path=rec.files[0])
    if rec.photometric == "MONOCHROME1":
        img = _undo_monochrome1(img, rec)
    if rec.frame_order:  # multi-frame file whose frames are not stored in slice order
        arr = sitk.GetArrayFromImage(img)[list(rec.frame_order)]
        img = sitk.GetImageFromArray(arr, isVector=img.GetNumberOfComponentsPerPixel() > 1)
    iop = np.asarray(rec.orientation, dtype=float)
    normal = np.cross(iop[:3], iop[3:])
    img.SetDirection(tuple(np.column_stack([iop[:3], iop[3:], normal]).ravel().tolist()))
    img.SetOrigin(tuple(float(x) for x in rec.positions[0]) if rec.positions else (0.0, 0.0, 0.0))
    img.SetSpacing(tuple(float(s) for s in rec.spacing))
    if ptype == sitk.sitkInt32:
        arr = sitk.GetArrayViewFromImage(img)
        if arr.size and arr.min() >= -32768 and arr.max() <= 32767:
            img = sitk.Cast(img, sitk.sitkInt16)
    return img


def _undo_monochrome1(img: sitk.Image, rec: SeriesRecord) -> sitk.Image:
    """GDCM inverts MONOCHROME1 stored values (2^BitsStored - 1 - v, or -1 - v when signed) before the
    rescale; that is a reflection about the middle of the modality range, undone here so that values
    stay stored x slope + intercept whatever the display polarity."""
    if not rec.uniform_rescale:
        raise SeriesError("MONOCHROME1 series whose files differ in rescale or bit depth are not supported",
                          series_uid=rec.series_uid, path=rec.files[0])
    lo, hi = rec.value_range
    arr = sitk.GetArrayFromImage(img)
    work = arr.astype(np.float64) if arr.dtype.kind == "f" else arr.astype(np.int64)
    flipped = ((lo + hi) - work).astype(arr.dtype)
    return sitk.GetImageFromArray(flipped, isVector=img.GetNumberOfComponentsPerPixel() > 1)


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
