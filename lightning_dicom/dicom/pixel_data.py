"""Checks of a file's pixel data before anything decodes it: truncation, length, and decoder traps.

The index records the problem found here for each file (``problem`` column), and the series reader
refuses a series naming the file at fault. Checked: PixelData (7FE0,0010) present and complete
(native: Rows x Columns x SamplesPerPixel x BitsAllocated/8 x NumberOfFrames bytes, PS3.5 8.1.1;
encapsulated: a Basic Offset Table item and fragments that fit in the file, PS3.5 A.4), and encodings
GDCM is known to decode wrongly (RLE colour above 8 bits; 32-bit big endian).
"""

from __future__ import annotations

import os
import struct
from typing import Any, BinaryIO

from lightning_dicom.dicom import uids

__all__ = ["decoder_problem", "pixel_data_problem", "raw_problem"]

_LONG_LENGTH_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"UC", b"UN", b"UR", b"UT"}


def pixel_data_problem(
    fh: BinaryIO, implicit: bool, little: bool, h: dict[str, Any], size: int, *, raw: bool = False
) -> tuple[str | None, int | None]:
    """Why the Pixel Data element (where ``fh`` stands) cannot hold the declared image, or None; and
    the file offset of its value when it is native (uncompressed), else None.

    pydicom's ``stop_before_pixels`` leaves the file positioned on the pixel data element's tag.
    ``raw``: the file has no file meta (so no transfer syntax could name a compression codec).
    """
    if h["problem"]:
        return h["problem"], None
    if h["transfer_syntax"] == uids.DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN:
        return None, None  # the dataset was inflated in memory: no file offsets to check
    element = _pixel_element(fh, implicit, little)
    if isinstance(element, str):
        return element, None
    length, end = element
    if length != 0xFFFFFFFF:
        offset = fh.tell()
        return _native_problem(h, length, size - offset), offset
    if raw:
        return (
            "encapsulated (compressed) Pixel Data in a file without file meta: no transfer syntax "
            "names its codec"
        ), None
    return _encapsulated_problem(fh, end, size), None


def _native_problem(h: dict[str, Any], length: int, available: int) -> str | None:
    """Native pixel data of value ``length`` with ``available`` bytes left in the file: too short for
    Rows x Columns x frames x samples x BitsAllocated, or cut by the end of the file?"""
    bits = h["rows"] * h["cols"] * h["n_frames"] * h["samples_per_pixel"] * h["bits_allocated"]
    if h["photometric"] == "YBR_FULL_422" and h["samples_per_pixel"] == 3:
        bits = bits * 2 // 3  # native 4:2:2 stores two chroma samples per pair of pixels
    expected = (bits + 7) // 8
    if length < expected:
        return (
            f"Pixel Data holds {length} bytes but Rows x Columns x frames x samples x BitsAllocated "
            f"need {expected}"
        )
    if available < expected:
        return f"file truncated: Pixel Data needs {expected} bytes, the file ends {expected - available} bytes short"
    return None


def _pixel_element(fh: BinaryIO, implicit: bool, little: bool) -> tuple[int, str] | str:
    """(value length, struct byte order) of the Pixel Data element header at ``fh``, or a problem;
    ``fh`` is left on the value."""
    end = "<" if little else ">"
    head = fh.read(8)
    if len(head) < 8:
        return "no Pixel Data (7FE0,0010) element (file ends after the header)"
    group, elem = struct.unpack(end + "HH", head[:4])
    if (group, elem) != (0x7FE0, 0x0010):
        if group == 0x7FE0 and elem in (0x0008, 0x0009):
            return "Float/Double Float Pixel Data is not supported"
        return f"no Pixel Data (7FE0,0010) element (found ({group:04X},{elem:04X}) where it should be)"
    vr = head[4:6]
    if implicit or not (vr.isalpha() and vr.isupper()):  # some files say explicit but are implicit
        return struct.unpack(end + "I", head[4:8])[0], end
    if vr in _LONG_LENGTH_VRS:
        more = fh.read(4)
        if len(more) < 4:
            return "file truncated inside the Pixel Data element header"
        return struct.unpack(end + "I", more)[0], end
    return struct.unpack(end + "H", head[6:8])[0], end


def decoder_problem(h: dict[str, Any]) -> str | None:
    """Pixel encodings that SimpleITK's GDCM (2.x) decodes to wrong values without an error."""
    ts, bits = h["transfer_syntax"], h["bits_allocated"]
    if ts == uids.RLE_LOSSLESS and h["samples_per_pixel"] > 1 and bits > 8:
        return (
            f"RLE Lossless colour with {bits} bits per sample: GDCM decodes it to wrong values; "
            "convert the file (e.g. dcmdrle)"
        )
    if ts == uids.EXPLICIT_VR_BIG_ENDIAN and bits == 32:
        return (
            "32-bit Explicit VR Big Endian pixel data: GDCM decodes it to wrong values; convert the file "
            "to little endian (e.g. dcmconv +te)"
        )
    return None


def raw_problem(h: dict[str, Any]) -> str | None:
    """Raw datasets (no file meta) that GDCM cannot read at all."""
    if h["transfer_syntax"] == uids.EXPLICIT_VR_BIG_ENDIAN:
        return (
            "Explicit VR Big Endian dataset without file meta: GDCM cannot read it; convert it to a "
            "Part-10 little endian file (e.g. dcmconv +te)"
        )
    return None


def _encapsulated_problem(fh: BinaryIO, end: str, size: int) -> str | None:
    """Walk the items of encapsulated pixel data; report a fragment that runs past the end of the file."""
    n_items = 0
    while True:
        head = fh.read(8)
        if len(head) < 8:
            return (
                f"file truncated: encapsulated Pixel Data ends after {n_items} fragments without a delimiter"
            )
        group, elem, length = struct.unpack(end + "HHI", head)
        if (group, elem) == (0xFFFE, 0xE0DD):
            return None if n_items >= 2 else "encapsulated Pixel Data holds no frame"
        if (group, elem) != (0xFFFE, 0xE000) or length == 0xFFFFFFFF:
            return f"corrupt encapsulated Pixel Data (item {n_items} has tag ({group:04X},{elem:04X}))"
        if fh.tell() + length > size:
            return (
                f"file truncated: fragment {n_items} of the encapsulated Pixel Data needs {length} bytes, "
                f"the file holds {size - fh.tell()}"
            )
        fh.seek(length, os.SEEK_CUR)
        n_items += 1
