"""Frames of a multi-frame file: decode the file once, give each volume its frames, rescaled per frame.

An enhanced multi-frame file may hold several volumes (time points, b-values, magnitude and field
map, ...: :mod:`lightning_dicom.dicom.volumes`). Each volume's record lists its frames
(:attr:`~lightning_dicom.dicom.index.SeriesRecord.frame_order`, in slice order). The file is decoded
by SimpleITK/GDCM once and the decoded frames are kept for the next volume of the same file (one file
per process, keyed on path, size, mtime and pixel type): reading the 4 volumes of a file decodes it once.

GDCM applies one RescaleSlope/Intercept to every frame (the shared one, else the first frame's). When
a volume's frames carry others in their PixelValueTransformationSequence (0028,9145)
(:attr:`~lightning_dicom.dicom.index.SeriesRecord.frame_rescale`), the stored values are recovered
(``round((v - intercept0) / slope0)``: stored values are integers) and rescaled with the frame's own
slope and intercept, in float32. Siemens mosaics (one stored image) are left to the reader, which
unpacks their tiles (:mod:`lightning_dicom.dicom.mosaic`).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import SimpleITK as sitk

from lightning_dicom import io
from lightning_dicom.dicom.record import SeriesRecord
from lightning_dicom.errors import SeriesError

__all__ = ["decode_volume"]

_LAST: tuple[tuple, np.ndarray, bool] | None = None


def _file_key(rec: SeriesRecord, ptype: int) -> tuple:
    stats = rec.file_stats[0] if rec.file_stats else (0, 0)
    return (rec.files[0], *stats, ptype)


def decode_volume(
    rec: SeriesRecord, ptype: int, decode: Callable[[SeriesRecord, int], sitk.Image]
) -> sitk.Image:
    """The volume of ``rec`` decoded (``decode`` reads the files), its slices in slice order.

    Raises:
        SeriesError: the file decodes to another number of frames than its NumberOfFrames (0028,0008).
        RuntimeError: from ``decode`` (GDCM cannot decode the file).
    """
    global _LAST
    if rec.mosaic_grid or not rec.file_frames or (not rec.frame_order and not rec.frame_rescale):
        return decode(rec, ptype)
    key = _file_key(rec, ptype)
    if _LAST is not None and _LAST[0] == key:
        arr, vector = _LAST[1], _LAST[2]
    else:
        img = decode(rec, ptype)
        if img.GetDimension() == 2:
            img = sitk.JoinSeries(img)
        if img.GetSize()[2] != rec.file_frames:
            raise SeriesError(
                f"decoded {img.GetSize()[2]} frames but NumberOfFrames (0028,0008) is {rec.file_frames}",
                series_uid=rec.series_uid,
                path=rec.files[0],
            )
        arr, vector = io.to_array(img), img.GetNumberOfComponentsPerPixel() > 1
        _LAST = (key, arr, vector)
    order = list(rec.frame_order) if rec.frame_order else list(range(rec.file_frames))
    out = arr[order]
    if rec.frame_rescale:
        out = out.astype(np.float32)
        base_slope, base_icpt = _base_rescale(rec)
        for z, (slope, icpt) in enumerate(rec.frame_rescale):
            stored = np.rint((out[z].astype(np.float64) - base_icpt) / base_slope)
            out[z] = stored * slope + icpt
    return io.from_array(out, is_vector=vector)


def _base_rescale(rec: SeriesRecord) -> tuple[float, float]:
    """The RescaleSlope/Intercept GDCM applied to every frame (the file's, as the index read it)."""
    return float(rec.base_rescale[0]), float(rec.base_rescale[1])
