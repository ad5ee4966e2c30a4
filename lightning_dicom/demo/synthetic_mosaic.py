"""Synthetic Siemens mosaics: one MR file holding a volume's slices as a grid of tiles, with the private
elements a Siemens scanner writes (a real-format CSA image header and (0019,xx0A)).

The file is what :mod:`lightning_dicom.dicom.mosaic` reads: ImageType ``ORIGINAL\\PRIMARY\\M\\ND\\MOSAIC``,
Rows x Columns = ``g r x g c`` (``g = ceil(sqrt(n))``), tile ``k`` at grid row ``k // g``, column ``k % g``,
ImagePositionPatient (0020,0032) written as Siemens does (the corner of the whole mosaic, not of tile
0), and in the private block "SIEMENS CSA HEADER" the CSA2 ("SV10") image header (0029,xx10) with
NumberOfImagesInMosaic, SliceNormalVector, AcquisitionMatrixText and MosaicRefAcqTimes (the slice
acquisition times: ascending, descending or interleaved). The CSA layout is the one nibabel's
``nicom.csareader`` and dcm2niix parse (tests/test_mosaic.py reads it back with nibabel).
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom.uid import MRImageStorage, generate_uid

from lightning_dicom.demo.synthetic import (
    _UID_NAMESPACE,
    IDENTITY_DIRECTION,
    _direction_matrix,
    _ds,
    new_dataset,
)

__all__ = ["SyntheticMosaic", "acquisition_times", "csa2_header", "write_mosaic"]

ORDERS = ("ascending", "descending", "interleaved")


@dataclass(frozen=True)
class SyntheticMosaic:
    """A mosaic written by :func:`write_mosaic`. ``volume`` ([n, r, c], stored values = modality values)
    holds the slices in tile order; ``positions[k]`` is the centre of the first voxel of tile ``k`` (LPS
    mm): ``positions[0] + k * gap * slice_normal``. ``corner_ipp`` is the ImagePositionPatient written."""

    path: Path
    volume: np.ndarray
    positions: tuple[tuple[float, float, float], ...]
    row: tuple[float, float, float]
    col: tuple[float, float, float]
    slice_normal: tuple[float, float, float]
    pixel_spacing: tuple[float, float]  # x (along a row), y (down a column), mm
    gap: float
    corner_ipp: tuple[float, float, float]
    series_uid: str


def csa2_header(tags: Sequence[tuple[str, str, Sequence[str]]]) -> bytes:
    """A Siemens CSA2 header ("SV10"): for each (name, VR, values) a 64-byte name, VM, VR, SyngoDT,
    item count and 77, then each value as an item (4 x int32 lengths/77, NUL-terminated text padded
    to 4 bytes), all little endian."""
    out = bytearray(b"SV10\x04\x03\x02\x01")
    out += struct.pack("<2I", len(tags), 77)
    for name, vr, values in tags:
        out += struct.pack("<64si4s3i", name.encode(), len(values), vr.encode(), 3, len(values), 77)
        for value in values:
            data = value.encode() + b"\0"
            out += struct.pack("<4i", len(data), len(data), 77, len(data))
            out += data + b"\0" * (-len(data) % 4)
    return bytes(out)


def acquisition_times(n: int, order: str, tr_ms: float = 2000.0) -> list[float]:
    """MosaicRefAcqTimes (ms) of slices 0..n-1 (tile order) for an ascending, descending or interleaved
    (even slices first, then odd: Siemens' interleave for an odd count) acquisition."""
    if order not in ORDERS:
        raise ValueError(f"order must be one of {ORDERS}, got {order!r}")
    seq = {
        "ascending": list(range(n)),
        "descending": list(range(n))[::-1],
        "interleaved": list(range(0, n, 2)) + list(range(1, n, 2)),
    }[order]
    times = [0.0] * n
    for rank, k in enumerate(seq):
        times[k] = rank * tr_ms / n
    return times


def write_mosaic(
    path: Path | str,
    volume: np.ndarray,
    *,
    direction: Sequence[float] = IDENTITY_DIRECTION,
    origin: Sequence[float] = (-108.0, -108.0, 16.0),
    pixel_spacing: Sequence[float] = (3.0, 3.0),
    gap: float = 12.0,
    normal_sign: int = 1,
    order: str = "interleaved",
    csa: bool = True,
    private_count: bool = True,
    series_uid: str | None = None,
    instance_number: int = 1,
) -> SyntheticMosaic:
    """Write ``volume`` ([n, r, c] values 0..65535, tile order) as one Siemens mosaic file at ``path``.

    Args:
        direction: 3x3 row-major, columns = row cosine, column cosine, row x column (right-handed).
        origin: centre of the first voxel of tile 0 (LPS mm).
        pixel_spacing: x (column spacing) and y (row spacing), mm.
        gap: SpacingBetweenSlices (mm); SliceThickness is written as ``gap / 4``.
        normal_sign: +1: tiles step along row x column; -1: against it (CSA SliceNormalVector sign).
        order: slice acquisition order (only MosaicRefAcqTimes changes: tiles stay in space order).
        csa: write the CSA image header; ``private_count``: write (0019,xx0A).
    """
    vol = np.asarray(volume)
    if vol.ndim != 3 or 0 in vol.shape:
        raise ValueError(f"volume must be a non-empty [n, r, c] array, got shape {vol.shape}")
    if normal_sign not in (1, -1):
        raise ValueError(f"normal_sign must be 1 or -1, got {normal_sign}")
    n, r, c = vol.shape
    g = math.ceil(math.sqrt(n))
    mosaic = np.zeros((g * r, g * c), dtype=np.uint16)
    for k in range(n):
        mosaic[(k // g) * r : (k // g + 1) * r, (k % g) * c : (k % g + 1) * c] = vol[k]
    mat = _direction_matrix(direction)
    row, col = mat[:, 0], mat[:, 1]
    normal = normal_sign * mat[:, 2]
    sx, sy = (float(v) for v in pixel_spacing)
    p0 = np.asarray(origin, dtype=np.float64)
    corner = p0 - col * sy * (g * r - r) / 2 - row * sx * (g * c - c) / 2
    corner_ds = [_ds(v) for v in corner]
    uid = series_uid or generate_uid()
    sop_uid = generate_uid()
    ds = new_dataset(MRImageStorage, sop_uid)
    ds.ImageType = ["ORIGINAL", "PRIMARY", "M", "ND", "MOSAIC"]
    ds.SOPClassUID, ds.SOPInstanceUID = MRImageStorage, sop_uid
    ds.Modality, ds.Manufacturer = "MR", "SIEMENS"
    ds.SeriesDescription = f"synthetic mosaic {order}"
    ds.PatientName, ds.PatientID = "SYN^MOSAIC", "SYNMOSAIC"
    ds.StudyInstanceUID = generate_uid(entropy_srcs=[_UID_NAMESPACE, uid, "study"])
    ds.SeriesInstanceUID = uid
    ds.FrameOfReferenceUID = generate_uid(entropy_srcs=[_UID_NAMESPACE, uid, "for"])
    ds.SeriesNumber, ds.InstanceNumber, ds.AcquisitionNumber = 1, instance_number, instance_number
    ds.SliceThickness, ds.SpacingBetweenSlices = _ds(gap / 4), _ds(gap)
    ds.ImagePositionPatient = corner_ds
    ds.ImageOrientationPatient = [_ds(v) for v in (*row, *col)]
    ds.PixelSpacing = [_ds(sy), _ds(sx)]
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.Rows, ds.Columns = g * r, g * c
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    if private_count:
        ds.private_block(0x0019, "SIEMENS MR HEADER", create=True).add_new(0x0A, "US", n)
    if csa:
        header = csa2_header(
            [
                ("NumberOfImagesInMosaic", "US", [str(n)]),
                ("SliceNormalVector", "FD", [f"{v:.8f}" for v in normal]),
                ("AcquisitionMatrixText", "SH", [f"{r}*{c}"]),
                ("MosaicRefAcqTimes", "FD", [f"{t:.8f}" for t in acquisition_times(n, order)]),
            ]
        )
        ds.private_block(0x0029, "SIEMENS CSA HEADER", create=True).add_new(0x10, "OB", header)
    ds.PixelData = mosaic.astype("<u2").tobytes()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(out, enforce_file_format=True)
    written = np.asarray([float(v) for v in corner_ds]) - corner + p0  # p0 as the rounded IPP places it
    positions = tuple(tuple(float(v) for v in written + k * gap * normal) for k in range(n))
    return SyntheticMosaic(
        path=out,
        volume=vol.copy(),
        positions=positions,  # type: ignore[arg-type]
        row=tuple(float(v) for v in row),  # type: ignore[arg-type]
        col=tuple(float(v) for v in col),  # type: ignore[arg-type]
        slice_normal=tuple(float(v) for v in normal),  # type: ignore[arg-type]
        pixel_spacing=(sx, sy),
        gap=float(gap),
        corner_ipp=tuple(float(v) for v in corner_ds),  # type: ignore[arg-type]
        series_uid=uid,
    )
