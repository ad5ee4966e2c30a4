"""The SimpleITK boundary: DICOM series in, ``SimpleITK.Image`` (LPS, mm, modality units) out.

This is the only module that calls SimpleITK's readers and the only place where axis order is
converted: :func:`to_array` gives z-y-x numpy arrays of an x-y-z SimpleITK image.

Geometry is DICOM's, computed from the index, never guessed by the reader: origin =
ImagePositionPatient (0020,0032) of the first slice along the normal, direction from
ImageOrientationPatient (0020,0037) (columns: row direction, column direction, normal), spacing =
PixelSpacing (0028,0030) reversed to x-y, and the slice gap measured between sorted positions (see
:class:`~lightning_dicom.dicom.index.SeriesRecord` for the fallbacks). Multi-frame files are volumes
too: their frames are put in slice order using the per-frame PlanePositionSequence when present.
A single 2D image is a volume of one slice. A Siemens mosaic (one stored image holding a grid of
slices) is unpacked into its slices at the positions the index computed
(:mod:`lightning_dicom.dicom.mosaic`). Values are modality units: stored x RescaleSlope
(0028,1053) + RescaleIntercept (0028,1052) (HU for CT), read as int16 when the headers guarantee
integers that fit (GDCM would otherwise promote int16 CT to int32). MONOCHROME1 images are not
inverted (GDCM inverts them; that is undone): values stay modality values, and
``SeriesRecord.photometric`` tells the display polarity. Colour images (RGB, YBR, PALETTE COLOR)
come back as vector images of 8-bit RGB (or the stored depth).

Plain series of several files -- single-frame MONOCHROME2 images of 8 or 16 bits with native
little-endian pixel data (:attr:`~lightning_dicom.dicom.index.SeriesRecord.raw_pixels`) -- are read without GDCM: each file's pixel
bytes are read at the offset the index recorded, and turned into the values GDCM gives (the low
BitsStored bits, sign-extended when PixelRepresentation is 1, times the file's RescaleSlope plus its
RescaleIntercept, computed in double precision and cast to the output type). Everything else goes
through SimpleITK/GDCM. tests/test_io.py checks that both give identical volumes.

Before decoding, the reader checks that every file is the one that was indexed (same size and
mtime; else re-index) and that the index found nothing wrong with its pixel data (truncated
files, pixel data shorter than Rows x Columns declare, and encodings GDCM is known to decode
wrongly: RLE colour above 8 bits, 32-bit big endian). Every failure is a
:class:`~lightning_dicom.errors.SeriesError` naming the file at fault.

Irregular stacks -- missing slices, non-uniform slice spacing (a gap further than ``gap_tolerance``
x median from the median gap) and sheared stacks (slice origins that drift within the slice plane in
proportion to depth -- gantry tilt -- or scatter beyond rounding noise; the least-squares rule and its
tolerance are :mod:`lightning_dicom.dicom.stack_geometry`'s) -- are rejected by default
(``irregular="reject"``). With ``irregular="resample"`` they are read at their true positions and
resampled onto an orthogonal uniform grid: direction (row, column, normal) from
ImageOrientationPatient, in-plane spacing unchanged, slice spacing = the median gap between
acquired slices (what :attr:`SeriesRecord.spacing` says), origin = the first slice's
ImagePositionPatient, and as many slices as fit between the first and the last acquired position
(the last output slice is less than one gap before the last acquired one; nothing is
extrapolated). Each acquired slice is first shifted by its in-plane offset onto the first slice's
pixel grid (separable linear interpolation; pixels whose source falls outside the acquired slice,
by ITK's half-pixel convention, are outside the field of view), then every output slice is the
linear interpolation along the normal of the two acquired slices that bracket it (a missing slice
is the mean of its neighbours; output slices that coincide with acquired ones are copies of them).
Voxels outside the acquired field of view get the smallest value of the acquired volume. The
result is float32 and a warning is logged (series UID only). Duplicate positions are refused in
both modes, and so are holes wider than :data:`MAX_GAP_RATIO` median gaps and colour stacks. Regular
stacks take the normal path in both modes: the same image to the byte.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import SimpleITK as sitk

from lightning_dicom import io
from lightning_dicom.dicom.frames import decode_volume
from lightning_dicom.dicom.index import DicomIndex, SeriesRecord
from lightning_dicom.dicom.mosaic import unpack_mosaic
from lightning_dicom.dicom.stack_geometry import (  # noqa: F401 - MAX_GAP_RATIO, SHEAR_TOLERANCE_MM re-exported
    GAP_TOLERANCE,
    MAX_GAP_RATIO,
    SHEAR_TOLERANCE_MM,
    plan,
)
from lightning_dicom.dicom.stack_geometry import Resampling as _Resampling
from lightning_dicom.dicom.stack_geometry import check_mode as _check_mode
from lightning_dicom.errors import SeriesError, warn

__all__ = ["check_files", "check_geometry", "planned_geometry", "read_series"]

log = logging.getLogger(__name__)

SeriesSource = SeriesRecord | str | os.PathLike | Sequence[str | os.PathLike]
IrregularMode = Literal["reject", "resample"]

#: Two positions along the normal closer than this (mm) are the same slice position.
_SAME_POSITION_MM = 1e-4
_COLOUR = ("RGB", "YBR", "PALETTE")
#: Switch for tests: True decodes every series with SimpleITK/GDCM (no raw pixel reading).
_FORCE_GDCM = False
_NUMPY_TYPE = {sitk.sitkInt16: np.int16, sitk.sitkInt32: np.int32, sitk.sitkFloat32: np.float32}


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
            raise SeriesError(
                f"file is gone or unreadable since it was indexed ({err.strerror}); re-index "
                "(DicomIndex.scan)",
                series_uid=rec.series_uid,
                path=path,
            ) from None
        if k < len(rec.file_stats) and (st.st_size, st.st_mtime_ns) != tuple(rec.file_stats[k]):
            size, mtime = rec.file_stats[k]
            what = f"size {size} -> {st.st_size} bytes" if size != st.st_size else "modification time"
            raise SeriesError(
                f"file changed since it was indexed ({what}); re-index (DicomIndex.scan) before reading",
                series_uid=rec.series_uid,
                path=path,
            )


def _plan(rec: SeriesRecord, irregular: str, gap_tolerance: float) -> _Resampling | None:
    """None for a regular stack; else how to resample it (``irregular="resample"``) or SeriesError."""
    return plan(rec, irregular, gap_tolerance, colour=_is_colour(rec))


def check_geometry(
    rec: SeriesRecord, *, irregular: IrregularMode = "reject", gap_tolerance: float = GAP_TOLERANCE
) -> None:
    """Reject stacks that a plain series reader would misplace (see :func:`read_series`).

    Args:
        rec: the series.
        irregular: ``"reject"`` refuses missing/non-uniform slices and sheared stacks;
            ``"resample"`` accepts those that :func:`read_series` can resample.
        gap_tolerance: largest relative deviation of a slice gap from the median gap.

    Raises:
        SeriesError: duplicate slice positions; with ``"reject"``, missing/non-uniform slices or a
            sheared (gantry-tilted) stack; with ``"resample"``, a hole wider than
            :data:`MAX_GAP_RATIO` median gaps or an irregular colour stack.
        ValueError: ``irregular`` or ``gap_tolerance`` is not valid.
    """
    _plan(rec, irregular, gap_tolerance)


def planned_geometry(
    rec: SeriesRecord, *, irregular: IrregularMode = "reject", gap_tolerance: float = GAP_TOLERANCE
) -> dict[str, Any]:
    """The grid :func:`read_series` gives for ``rec`` with these options, from the record alone (no
    pixel data): the keys of :func:`geometry` (spacing, origin, direction, size). For an irregular stack
    read with ``irregular="resample"``, ``size[2]`` is the number of resampled slices.

    Raises:
        SeriesError: as :func:`check_geometry`.
    """
    plan = _plan(rec, irregular, gap_tolerance)
    iop = np.asarray(rec.orientation, dtype=float)
    normal = np.cross(iop[:3], iop[3:])
    spacing = [float(s) for s in rec.spacing]
    size = [int(rec.cols), int(rec.rows), int(rec.n_slices)]
    if plan is not None:
        spacing[2], size[2] = plan.spacing, plan.n_out
    return {
        "spacing": spacing,
        "origin": [float(x) for x in rec.positions[0]] if rec.positions else [0.0, 0.0, 0.0],
        "direction": np.column_stack([iop[:3], iop[3:], normal]).ravel().tolist(),
        "size": size,
    }


def _lerp_axis(a: np.ndarray, t: float, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """``a`` (float64, 2D) sampled at index - t along ``axis`` (linear), and which output indices have
    their source inside the image (ITK's continuous-index convention: -0.5 .. n - 0.5, values clamped
    at the edge pixel in the border half-pixel)."""
    n = a.shape[axis]
    x = np.arange(n, dtype=np.float64) - t
    inside = (x >= -0.5 - 1e-9) & (x <= n - 0.5 + 1e-9)
    if n == 1:
        return a, inside
    xc = np.clip(x, 0.0, n - 1.0)
    i0 = np.minimum(np.floor(xc).astype(np.intp), n - 2)
    f = xc - i0
    lo, hi = np.take(a, i0, axis=axis), np.take(a, i0 + 1, axis=axis)
    f = f[None, :] if axis == 1 else f[:, None]
    return lo + (hi - lo) * f, inside


def _shifted_slice(plane: np.ndarray, shift_px: tuple[float, float]) -> tuple[np.ndarray, np.ndarray | None]:
    """A slice moved onto the first slice's pixel grid: output pixel (y, x) takes the value at
    (y - shift_y, x - shift_x) of ``plane``. Returns float32 values and the in-field mask (None: all)."""
    tx, ty = shift_px
    if abs(tx) < 1e-6 and abs(ty) < 1e-6:
        return plane.astype(np.float32), None
    work = plane.astype(np.float64)
    mask = np.ones(plane.shape, dtype=bool)
    if abs(tx) >= 1e-6:
        work, inside = _lerp_axis(work, tx, axis=1)
        mask &= inside[None, :]
    if abs(ty) >= 1e-6:
        work, inside = _lerp_axis(work, ty, axis=0)
        mask &= inside[:, None]
    return work.astype(np.float32), mask


def _resample_stack(arr: np.ndarray, plan: _Resampling, pixel_spacing: tuple[float, float]) -> np.ndarray:
    """The acquired slices ``arr`` (z-y-x, slice order) on the uniform orthogonal grid of ``plan`` (float32)."""
    fill = np.float32(arr.min()) if arr.size else np.float32(0)
    sx, sy = pixel_spacing
    cache: dict[int, tuple[np.ndarray, np.ndarray | None]] = {}

    def acquired(k: int) -> tuple[np.ndarray, np.ndarray | None]:
        if k not in cache:
            cache[k] = _shifted_slice(arr[k], (plan.shift[k, 0] / sx, plan.shift[k, 1] / sy))
        return cache[k]

    depth, n = plan.depth, len(plan.depth)
    out = np.empty((plan.n_out, *arr.shape[1:]), dtype=np.float32)
    for m in range(plan.n_out):
        z = min(m * plan.spacing, float(depth[-1]))
        k = min(max(int(np.searchsorted(depth, z, side="right")) - 1, 0), n - 2)
        if z - depth[k] <= _SAME_POSITION_MM:
            value, mask = acquired(k)
        elif depth[k + 1] - z <= _SAME_POSITION_MM:
            value, mask = acquired(k + 1)
        else:
            w = (z - depth[k]) / (depth[k + 1] - depth[k])
            (a, mask_a), (b, mask_b) = acquired(k), acquired(k + 1)
            value = (a.astype(np.float64) * (1.0 - w) + b.astype(np.float64) * w).astype(np.float32)
            mask = mask_a if mask_b is None else mask_b if mask_a is None else mask_a & mask_b
        out[m] = value
        if mask is not None:
            out[m][~mask] = fill
        for old in [j for j in cache if j < k]:  # slices are visited in order: drop those left behind
            del cache[old]
    return out


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
    # A single file keeps GDCM's path: SimpleITK's file reader also attaches its tags as image metadata.
    raw = _read_raw(rec, ptype) if len(rec.files) > 1 else None
    if raw is not None:
        return raw
    if len(rec.files) == 1:
        return io.read_image(rec.files[0], ptype)
    return io.read_dicom_files(rec.files, ptype)


def _read_raw(rec: SeriesRecord, ptype: int) -> sitk.Image | None:
    """The volume read straight from the files' native pixel data (z-y-x, no geometry set), with the
    values GDCM would give, or None when the series does not qualify (GDCM decodes it then)."""
    layouts = rec.raw_pixels
    if (
        _FORCE_GDCM
        or not layouts
        or len(layouts) != len(rec.files)
        or ptype not in _NUMPY_TYPE
        or len({lay[1] for lay in layouts}) != 1
    ):
        return None
    bits = layouts[0][1]
    groups: dict[tuple[int, int, float, float], list[int]] = {}
    for k, lay in enumerate(layouts):
        groups.setdefault(lay[2:], []).append(k)
    if any(_gdcm_refuses(bits, *key) for key in groups):
        return None  # GDCM says why
    shape = (len(rec.files), rec.rows, rec.cols)
    stored = np.empty(shape, dtype="<u2" if bits == 16 else np.uint8)
    planes = stored.reshape(shape[0], -1)
    for k, (path, lay) in enumerate(zip(rec.files, layouts, strict=True)):
        buf = memoryview(planes[k]).cast("B")
        with open(path, "rb", buffering=0) as fh:
            fh.seek(lay[0])
            if fh.readinto(buf) != len(buf):  # changed since the stat check: let GDCM report it
                return None
    parts = []  # (slice indices or None for all, stored values, slope, intercept)
    for (bits_stored, signed, slope, icpt), ks in groups.items():
        sel = None if len(ks) == len(layouts) else np.asarray(ks)
        parts.append(
            (
                sel,
                _stored_values(stored if sel is None else stored[sel], bits, bits_stored, signed),
                slope,
                icpt,
            )
        )
    dtype = _NUMPY_TYPE[ptype]
    if dtype != np.float32 and not all(s.is_integer() and c.is_integer() for _, _, s, c in parts):
        return None  # (cannot happen: integer types are chosen for integral rescales only)
    if ptype == sitk.sitkInt32:  # as the GDCM path: int16 when the values fit
        ends = [float(end) * s + c for _, v, s, c in parts for end in (v.min(), v.max())]
        if min(ends) >= -32768 and max(ends) <= 32767:
            dtype = np.int16
    if len(parts) == 1:
        out = _rescale(parts[0][1], parts[0][2], parts[0][3], dtype)
    else:
        out = np.empty(shape, dtype=dtype)
        for sel, values, slope, icpt in parts:
            out[sel] = _rescale(values, slope, icpt, dtype)
    return io.from_array(out)


def _gdcm_refuses(bits: int, bits_stored: int, signed: int, slope: float, icpt: float) -> bool:
    """ITK's GDCM reader refuses an integral rescale whose smallest fitting type (gdcm::Rescaler's best
    fit over the stored range) ranks below the stored pixel type ("Pixel type larger than output type")."""
    if (slope == 1 and icpt == 0) or not (slope.is_integer() and icpt.is_integer()):
        return False
    lo, hi = (-(2 ** (bits_stored - 1)), 2 ** (bits_stored - 1) - 1) if signed else (0, 2**bits_stored - 1)
    a, b = sorted((slope * lo + icpt, slope * hi + icpt))
    if a >= 0:  # ranks: UINT8 0, INT8 1, UINT16 4, INT16 5, UINT32 6, INT32 7
        fit = 0 if b <= 255 else 4 if b <= 65535 else 6
    else:
        fit = 1 if a >= -128 and b <= 127 else 5 if a >= -32768 and b <= 32767 else 7
    return fit < (signed if bits == 8 else 4 + signed)


def _stored_values(raw: np.ndarray, bits: int, bits_stored: int, signed: int) -> np.ndarray:
    """Stored pixel values as GDCM reads them: the low ``bits_stored`` bits, sign-extended when
    ``signed`` (whatever the unused high bits hold). Works in place on ``raw``."""
    if bits_stored < bits:
        np.bitwise_and(raw, np.array((1 << bits_stored) - 1, dtype=raw.dtype), out=raw)
    if not signed:
        return raw
    values: np.ndarray[Any, np.dtype[np.signedinteger[Any]]] = raw.view(np.int16 if bits == 16 else np.int8)
    if bits_stored < bits:
        sign = 1 << (bits_stored - 1)
        values ^= sign
        values -= sign
    return values


def _wrapped(value: float, dtype: type) -> Any:
    """An integer as ``dtype`` modulo 2**bits (two's complement)."""
    bits = np.dtype(dtype).itemsize * 8
    v = int(value) % (1 << bits)
    return dtype(v - (1 << bits) if v >= 1 << (bits - 1) else v)


def _rescale(values: np.ndarray, slope: float, icpt: float, dtype: type) -> np.ndarray:
    """``values * slope + icpt`` in ``dtype``, as GDCM computes it (in double, then cast to the output
    type). Integer outputs hold exact results (the caller made sure they fit), so they are computed in
    integers: modulo 2**16 for int16 (exact for results that fit), in int32 or int64 otherwise.
    ``values`` may be reused as the output."""
    if np.dtype(dtype).kind == "i":
        if values.dtype.itemsize == np.dtype(dtype).itemsize:
            out: np.ndarray = values.view(dtype)
        else:
            big = (int(np.iinfo(values.dtype).max) + 1) * abs(int(slope)) + abs(int(icpt))
            work = dtype if dtype == np.int16 or big < 2**31 else np.int64
            out = values.astype(work)
        if slope != 1:
            np.multiply(out, _wrapped(slope, out.dtype.type), out=out)
        if icpt != 0:
            np.add(out, _wrapped(icpt, out.dtype.type), out=out)
        return out.astype(dtype, copy=False)
    out = np.empty(values.shape, dtype=dtype)
    for z in range(len(values)):  # a slice at a time: the float64 intermediate stays small
        np.add(
            np.multiply(values[z], slope, dtype=np.float64),
            icpt,
            out=out[z],
            dtype=np.float64,
            casting="unsafe",
        )
    return out


def _culprit(rec: SeriesRecord) -> tuple[str, str]:
    """After a failed series read: the first file that fails alone, and GDCM's complaint."""
    for path in rec.files:
        try:
            io.read_image(path)
        except RuntimeError as err:
            return path, _last_line(err)
    return rec.files[0], ""


def _last_line(err: Exception) -> str:
    text = str(err).strip()
    return text.splitlines()[-1][:200] if text else type(err).__name__


def read_series(
    source: SeriesSource,
    *,
    series_uid: str | None = None,
    irregular: IrregularMode = "reject",
    gap_tolerance: float = GAP_TOLERANCE,
) -> sitk.Image:
    """Read one DICOM series (or multi-frame file, or 2D image) as a 3D SimpleITK image.

    Args:
        source: a :class:`SeriesRecord` from an index, a folder, a file, or a list of files.
        series_uid: which series when ``source`` holds several (SeriesInstanceUID or series id).
        irregular: what to do with stacks that have missing slices, non-uniform slice spacing or
            gantry tilt (shear): ``"reject"`` (SeriesError) or ``"resample"`` onto an orthogonal
            uniform grid (linear interpolation, float32; the slice spacing is the median gap; see
            the module docstring). Regular stacks are read the same way in both modes.
        gap_tolerance: largest relative deviation of a slice gap from the median gap before the stack
            is irregular.

    Returns:
        A 3D image: LPS geometry in mm, values in modality units (HU for CT), int16 when the
        headers guarantee it, else int32/float32 (float32 for a resampled stack). Colour data is a
        vector image (RGB).

    Raises:
        SeriesError: the series is ambiguous or missing, a file changed since it was indexed or is
            truncated, the pixel data cannot be decoded, or the geometry is bad (see
            :func:`check_geometry`).
        ValueError: ``irregular`` or ``gap_tolerance`` is not valid.
    """
    _check_mode(irregular, gap_tolerance)
    rec = _resolve(source, series_uid)
    check_files(rec)
    plan = _plan(rec, irregular, gap_tolerance)
    ptype = _pixel_type(rec)
    try:
        img = decode_volume(rec, ptype, _decode)  # multi-frame: decoded once, this volume's frames
    except RuntimeError as err:
        path, why = _culprit(rec) if len(rec.files) > 1 else (rec.files[0], _last_line(err))
        raise SeriesError(
            f"SimpleITK/GDCM cannot decode this file: {why or _last_line(err)}",
            series_uid=rec.series_uid,
            path=path,
        ) from None
    if img.GetDimension() == 2:
        img = sitk.JoinSeries(img)
    if rec.mosaic_grid:  # Siemens mosaic: the grid of tiles in the one stored image -> slices
        img = unpack_mosaic(img, rec)
        if rec.frame_order:  # tiles not stored in slice order (descending acquisitions)
            img = io.from_array(io.to_array(img)[list(rec.frame_order)])
    size = img.GetSize()
    if (size[0], size[1], size[2]) != (rec.cols, rec.rows, rec.n_slices):
        raise SeriesError(
            f"decoded {size[0]}x{size[1]}x{size[2]} voxels (x-y-z) but the headers say "
            f"{rec.cols}x{rec.rows}x{rec.n_slices}",
            series_uid=rec.series_uid,
            path=rec.files[0],
        )
    if rec.photometric == "MONOCHROME1":
        img = _undo_monochrome1(img, rec)
    if plan is not None:
        img = _resampled(img, rec, plan)
    iop = np.asarray(rec.orientation, dtype=float)
    normal = np.cross(iop[:3], iop[3:])
    img.SetDirection(tuple(np.column_stack([iop[:3], iop[3:], normal]).ravel().tolist()))
    img.SetOrigin(tuple(float(x) for x in rec.positions[0]) if rec.positions else (0.0, 0.0, 0.0))
    spacing = [float(s) for s in rec.spacing]
    if plan is not None:
        spacing[2] = plan.spacing
    img.SetSpacing(tuple(spacing))
    if img.GetPixelID() == sitk.sitkInt32:  # (the raw pixel reader already gives int16 when it can)
        arr = io.array_view(img)
        if arr.size and arr.min() >= -32768 and arr.max() <= 32767:
            img = sitk.Cast(img, sitk.sitkInt16)
    return img


def _resampled(img: sitk.Image, rec: SeriesRecord, plan: _Resampling) -> sitk.Image:
    """The decoded irregular stack (slice order, no geometry yet) on its uniform grid (float32)."""
    arr = io.array_view(img)
    out = io.from_array(_resample_stack(arr, plan, (float(rec.spacing[0]), float(rec.spacing[1]))))
    for key in img.GetMetaDataKeys():
        out.SetMetaData(key, img.GetMetaData(key))
    done = []
    if plan.missing:
        done.append(
            f"{plan.missing} missing slice{'s' if plan.missing > 1 else ''} filled by linear interpolation"
        )
    if plan.tilt_deg:
        done.append(f"a {plan.tilt_deg:.1f} degree shear (gantry tilt) undone")
    warn(
        f"series {rec.series_uid}: irregular stack ({plan.reason}) resampled onto a uniform grid of "
        f"{plan.n_out} slices at {plan.spacing:.4g} mm ({rec.n_slices} acquired)"
        + ("; " + ", ".join(done) if done else "")
    )
    return out


def _undo_monochrome1(img: sitk.Image, rec: SeriesRecord) -> sitk.Image:
    """GDCM inverts MONOCHROME1 stored values (2^BitsStored - 1 - v, or -1 - v when signed) before the
    rescale; that is a reflection about the middle of the modality range, undone here so that values
    stay stored x slope + intercept whatever the display polarity."""
    if not rec.uniform_rescale:
        raise SeriesError(
            "MONOCHROME1 series whose files differ in rescale or bit depth are not supported",
            series_uid=rec.series_uid,
            path=rec.files[0],
        )
    lo, hi = rec.value_range
    arr = io.to_array(img)
    work = arr.astype(np.float64) if arr.dtype.kind == "f" else arr.astype(np.int64)
    flipped = ((lo + hi) - work).astype(arr.dtype)
    return io.from_array(flipped, is_vector=img.GetNumberOfComponentsPerPixel() > 1)
