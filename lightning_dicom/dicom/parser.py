"""The fast Part-10 header parser: a plainly well-formed file's header elements, ten times faster than pydicom.

A Part-10 file that is plainly well-formed (explicit or implicit VR little endian dataset, defined
lengths or well-nested undefined-length sequences, every element read here having the VR the
dictionary gives it and a value in a plain format) is parsed here. Anything else raises
:class:`Fallback` and :mod:`lightning_dicom.dicom.header` reads the file with pydicom, so that results
and messages are pydicom's in every case. Values are decoded exactly as pydicom decodes them
(tests/test_header.py compares both readers on pydicom's test files and on mutated files).

The elements decoded are :data:`FAST_TAGS` (tag -> keyword, VR; PS3.6 data dictionary). Elements
that need pydicom (functional group sequences of enhanced files, DICOMDIR records) are
:data:`SLOW_TAGS`: the fast dataset reports them as absent only after checking that they are.
"""

from __future__ import annotations

import functools
import os
import re
import struct
from typing import Any, BinaryIO

from lightning_dicom.dicom.acquisition import PRIVATE_GROUPS, private_wanted
from lightning_dicom.dicom.uids import DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN, EXPLICIT_VR_BIG_ENDIAN

__all__ = ["CHUNK", "FAST_TAGS", "Fallback", "SLOW_TAGS", "fast_dataset", "fast_reader_available"]

CHUNK = 16384
_EXPLICIT = struct.Struct("<HH2sH")
_IMPLICIT = struct.Struct("<HHI")
_UINT32 = struct.Struct("<I")
_ITEM, _ITEM_END, _SEQUENCE_END = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD
_PIXEL_TAGS = frozenset({0x7FE00010, 0x7FE00009, 0x7FE00008})
#: Elements decoded by the fast reader: tag -> (keyword, VR).
FAST_TAGS = {
    0x00080005: ("SpecificCharacterSet", "CS"),
    0x00080008: ("ImageType", "CS"),  # multi-valued: decoded to a list of str (see _IMAGE_TYPE)
    0x00080016: ("SOPClassUID", "UI"),
    0x00080018: ("SOPInstanceUID", "UI"),
    0x00080060: ("Modality", "CS"),
    0x00080070: ("Manufacturer", "LO"),
    0x0008103E: ("SeriesDescription", "LO"),
    0x00180010: ("ContrastBolusAgent", "LO"),
    0x00100020: ("PatientID", "LO"),
    0x00180050: ("SliceThickness", "DS"),
    0x00180081: ("EchoTime", "DS"),
    0x00180086: ("EchoNumbers", "IS"),
    0x00180088: ("SpacingBetweenSlices", "DS"),
    0x00181060: ("TriggerTime", "DS"),
    0x00189087: ("DiffusionBValue", "FD"),
    0x00189089: ("DiffusionGradientOrientation", "FD"),
    0x0020000D: ("StudyInstanceUID", "UI"),
    0x0020000E: ("SeriesInstanceUID", "UI"),
    0x00200011: ("SeriesNumber", "IS"),
    0x00200012: ("AcquisitionNumber", "IS"),
    0x00200013: ("InstanceNumber", "IS"),
    0x00200032: ("ImagePositionPatient", "DS"),
    0x00200037: ("ImageOrientationPatient", "DS"),
    0x00200052: ("FrameOfReferenceUID", "UI"),
    0x00200100: ("TemporalPositionIdentifier", "IS"),
    0x00280002: ("SamplesPerPixel", "US"),
    0x00280004: ("PhotometricInterpretation", "CS"),
    0x00280008: ("NumberOfFrames", "IS"),
    0x00280010: ("Rows", "US"),
    0x00280011: ("Columns", "US"),
    0x00280030: ("PixelSpacing", "DS"),
    0x00280100: ("BitsAllocated", "US"),
    0x00280101: ("BitsStored", "US"),
    0x00280102: ("HighBit", "US"),
    0x00280103: ("PixelRepresentation", "US"),
    0x00281052: ("RescaleIntercept", "DS"),
    0x00281053: ("RescaleSlope", "DS"),
}
_FAST_EXPECTED_VR = {tag: vr.encode() for tag, (_, vr) in FAST_TAGS.items()}
_FAST_KEYWORDS = frozenset(kw for kw, _ in FAST_TAGS.values())
_META_TAGS = {0x00020002: "MediaStorageSOPClassUID", 0x00020010: "TransferSyntaxUID"}
#: Elements that send a file to pydicom (DICOMDIR, enhanced multi-frame functional groups): the
#: fast dataset answers ``keyword in ds`` with False for these, having checked that they are absent.
SLOW_TAGS = {
    0x00041220: "DirectoryRecordSequence",
    0x52009229: "SharedFunctionalGroupsSequence",
    0x52009230: "PerFrameFunctionalGroupsSequence",
    0x00540022: "DetectorInformationSequence",  # NM position/orientation (dicom/nm.py)
}
_SLOW_KEYWORDS = frozenset(SLOW_TAGS.values())
_DS_ITEM = re.compile(r" *[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)? *")
_IS_ITEM = re.compile(r" *[+-]?[0-9]{1,10} *")
#: ImageType (0008,0008): its values are what the header uses (a list of str; pydicom gives a MultiValue).
_IMAGE_TYPE = 0x00080008
_NOT_FAST_SYNTAXES = {EXPLICIT_VR_BIG_ENDIAN, DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN}


class Fallback(Exception):
    """The fast reader declines a file (pydicom reads it)."""


def _vrs(names: Any) -> frozenset[bytes]:
    return frozenset(str(v).encode() for v in names)


_AVAILABLE = True

try:
    from pydicom.valuerep import EXPLICIT_VR_LENGTH_16 as _L16
    from pydicom.valuerep import EXPLICIT_VR_LENGTH_32 as _L32

    _VR16, _VR32 = _vrs(_L16), _vrs(_L32)
except ImportError:  # pragma: no cover - older pydicom: no fast reader
    _VR16, _VR32, _AVAILABLE = frozenset(), frozenset(), False


@functools.lru_cache(maxsize=256)
def _uid(value: str) -> Any:
    from pydicom.uid import UID

    return UID(value)


@functools.lru_cache(maxsize=1)
def _charsets() -> frozenset[str]:
    from pydicom.charset import python_encoding

    return frozenset(python_encoding)


class _FastDataset(dict):
    """Decoded elements (keyword -> value as pydicom decodes it) answering :func:`_header_fields`
    like a pydicom Dataset. ``unknown`` records questions about elements the fast reader does not
    decode (the answers are then meaningless and pydicom reads the file)."""

    def __init__(self, file_meta: dict[str, Any]):
        super().__init__()
        self.file_meta = file_meta
        self.unknown: set[str] = set()
        #: Vendor private elements kept raw (see :func:`lightning_dicom.dicom.acquisition.private_wanted`).
        self.private: dict[int, bytes] = {}

    def get(self, keyword: str, default: Any = None) -> Any:  # type: ignore[override]
        if keyword not in _FAST_KEYWORDS:
            self.unknown.add(keyword)
        return dict.get(self, keyword, default)

    def __contains__(self, keyword: object) -> bool:
        if keyword in _SLOW_KEYWORDS:  # checked absent by the reader
            return False
        if keyword not in _FAST_KEYWORDS:
            self.unknown.add(str(keyword))
        return dict.__contains__(self, keyword)

    @property
    def SOPClassUID(self) -> Any:  # noqa: N802 - the DICOM keyword
        return _uid(dict.__getitem__(self, "SOPClassUID"))


def _decode(vr: str, raw: bytes, *, multi: bool = False) -> Any:
    """An element value as pydicom decodes it, for plain values of the VRs read here; Fallback otherwise."""
    if vr == "FD" or multi:
        return _decode_fd_or_multi(vr, raw)
    return _decode_plain(vr, raw)


def _decode_fd_or_multi(vr: str, raw: bytes) -> Any:
    """FD (binary doubles) or a multi-valued CS, as pydicom decodes them."""
    if vr == "FD":
        if not raw:
            return None
        if len(raw) % 8:
            raise Fallback
        values = list(struct.unpack(f"<{len(raw) // 8}d", raw))
        return values[0] if len(values) == 1 else values
    if not raw.isascii():  # CS with several values: the values as strings (pydicom's MultiValue)
        raise Fallback
    items = [v.strip(" \0") for v in raw.decode("latin-1").rstrip(" \0").split("\\")]
    return items[0] if len(items) == 1 else items


def _decode_plain(vr: str, raw: bytes) -> Any:
    if vr == "US":
        if len(raw) == 2:
            return raw[0] | raw[1] << 8
        if not raw:
            return None
        raise Fallback
    if not raw:
        return None if vr in ("DS", "IS") else ""
    text = raw.decode("latin-1")
    if vr == "LO":  # text VR: decoded with the character set; plain ASCII decodes alike in all of them
        if not raw.isascii() or b"\x1b" in raw or "\\" in text:
            raise Fallback
        return text.rstrip("\0 ")
    if vr == "DS":
        text = text.strip()
    text = text.rstrip(" \0")
    if vr in ("UI", "CS"):
        if "\\" in text:
            raise Fallback
        return text.strip() if vr == "UI" else text  # pydicom's UID strips
    items = text.split("\\")
    pattern = _DS_ITEM if vr == "DS" else _IS_ITEM
    if len(items) == 1 and not items[0]:
        return ""
    if not all(pattern.fullmatch(v) for v in items):
        raise Fallback
    out = [float(v) for v in items] if vr == "DS" else [int(v) for v in items]
    return out[0] if len(out) == 1 else out


class _Reader:
    """Bytes of a file by absolute position, read in chunks on demand."""

    __slots__ = ("base", "data", "fh", "size")

    def __init__(self, fh: BinaryIO):
        self.fh = fh
        self.size = os.fstat(fh.fileno()).st_size
        self.base = 0
        self.data = fh.read(CHUNK)

    def at(self, pos: int, n: int) -> int:
        """Offset in ``data`` of the file's bytes [pos, pos + n); Fallback past the end of the file."""
        off = pos - self.base
        if off >= 0 and off + n <= len(self.data):
            return off
        if pos + n > self.size:
            raise Fallback
        self.fh.seek(pos)
        self.data = self.fh.read(max(n, CHUNK))
        self.base = pos
        if len(self.data) < n:
            raise Fallback
        return 0

    def element(self, pos: int, implicit: bool) -> tuple[int, bytes | None, int, int]:
        """(tag, VR or None, value length, value position) of the element header at ``pos``."""
        off = self.at(pos, 8)
        if implicit:
            group, elem, length = _IMPLICIT.unpack_from(self.data, off)
            return group << 16 | elem, None, length, pos + 8
        group, elem, vr, length = _EXPLICIT.unpack_from(self.data, off)
        if group == 0xFFFE:  # items and delimiters have no VR
            return group << 16 | elem, None, _IMPLICIT.unpack_from(self.data, off)[2], pos + 8
        if vr in _VR16:
            return group << 16 | elem, vr, length, pos + 8
        if vr in _VR32:
            off = self.at(pos + 8, 4)
            return group << 16 | elem, vr, _UINT32.unpack_from(self.data, off)[0], pos + 12
        raise Fallback

    def value(self, pos: int, length: int) -> bytes:
        off = self.at(pos, length)
        return self.data[off : off + length]

    def undefined(self, tag: int, vr: bytes | None, pos: int, implicit: bool) -> int:
        """Position after the undefined-length element whose value starts at ``pos`` (a sequence)."""
        if implicit:
            try:
                from pydicom.datadict import dictionary_VR

                is_sq = dictionary_VR(tag) == "SQ"
            except KeyError:  # private or unknown: a sequence when items follow (as pydicom decides)
                off = self.at(pos, 4)
                is_sq = _IMPLICIT.unpack_from(self.data + bytes(4), off)[:2] == (0xFFFE, 0xE000)
        else:
            is_sq = vr == b"SQ"
        if not is_sq:
            raise Fallback
        return self.sequence(pos, implicit)

    def sequence(self, pos: int, implicit: bool) -> int:
        """Position after the sequence delimiter of an undefined-length sequence starting at ``pos``."""
        while True:
            off = self.at(pos, 8)
            group, elem, length = _IMPLICIT.unpack_from(self.data, off)
            tag = group << 16 | elem
            pos += 8
            if tag == _SEQUENCE_END:
                return pos
            if tag != _ITEM:
                raise Fallback
            pos = self.item(pos, implicit, None if length == 0xFFFFFFFF else pos + length)

    def item(self, pos: int, implicit: bool, end: int | None) -> int:
        """Position after a sequence item's elements (``end`` None: up to its item delimiter)."""
        while end is None or pos < end:
            tag, vr, length, vpos = self.element(pos, implicit)
            if tag == _ITEM_END and end is None:
                return vpos
            if tag >> 16 == 0xFFFE:
                raise Fallback
            if length == 0xFFFFFFFF:
                pos = self.undefined(tag, vr, vpos, implicit)
            else:
                pos = vpos + length
                if pos > (self.size if end is None else end):
                    raise Fallback
        if pos != end:
            raise Fallback
        return pos


def fast_dataset(fh: BinaryIO) -> tuple[_FastDataset, bool, int]:
    """(decoded elements, implicit VR, position of the Pixel Data tag) of a well-formed Part-10 file.

    Raises:
        Fallback: anything this reader does not handle exactly as pydicom does.
    """
    r = _Reader(fh)
    if r.value(128, 4) != b"DICM":
        raise Fallback
    meta, pos = _fast_meta(r)
    syntax = meta.get("TransferSyntaxUID")
    if not syntax or syntax in _NOT_FAST_SYNTAXES:
        raise Fallback
    from pydicom.uid import PrivateTransferSyntaxes

    if syntax in PrivateTransferSyntaxes:
        raise Fallback
    implicit = syntax == "1.2.840.10008.1.2"
    off = r.at(pos, 6)
    if r.data[off] == 0 and r.data[off + 1] == 0:  # command set elements (group 0000)
        raise Fallback
    if implicit and all(0x40 < b < 0x5B for b in r.data[off + 4 : off + 6]):
        raise Fallback  # pydicom switches to explicit VR when the first element looks explicit
    raw, private, pos = _fast_elements(r, pos, implicit)
    charset = raw.get(0x00080005)
    if charset and not all(c in _charsets() for c in charset.decode("latin-1").rstrip(" \0").split("\\")):
        raise Fallback
    ds = _FastDataset(meta)
    ds.private = private
    for tag, value in raw.items():
        keyword, vr_name = FAST_TAGS[tag]
        if tag == _IMAGE_TYPE:
            ds[keyword] = [v.strip() for v in value.decode("latin-1").rstrip(" \0").split("\\")]
        else:
            ds[keyword] = _decode(vr_name, value)
    return ds, implicit, pos


def _fast_meta(r: _Reader) -> tuple[dict[str, Any], int]:
    """File meta elements read here (keyword -> value) and the position of the dataset after them."""
    pos = 132
    meta: dict[str, Any] = {}
    while True:  # explicit VR little endian, group 0002
        off = r.at(pos, 8)
        if r.data[off] | r.data[off + 1] << 8 != 0x0002:
            return meta, pos
        tag, vr, length, vpos = r.element(pos, False)
        if vr is None or length == 0xFFFFFFFF:
            raise Fallback
        if tag in _META_TAGS:
            if vr != b"UI":
                raise Fallback
            meta[_META_TAGS[tag]] = _decode("UI", r.value(vpos, length))
        pos = vpos + length


def _fast_elements(  # noqa: C901
    r: _Reader, pos: int, implicit: bool
) -> tuple[dict[int, bytes], dict[int, bytes], int]:
    """Raw values of the top-level elements in :data:`FAST_TAGS`, of the vendor private elements
    :func:`~lightning_dicom.dicom.acquisition.private_wanted` keeps, and the position of the Pixel Data
    tag (the end of the file when there is none). One loop over element headers, inlined for speed."""
    raw: dict[int, bytes] = {}
    private: dict[int, bytes] = {}
    data, base, size = r.data, r.base, r.size
    while True:
        off = pos - base
        if 0 <= off <= len(data) - 12:  # the usual case, inlined: an element header in the buffer
            if implicit:
                group, elem, length = _IMPLICIT.unpack_from(data, off)
                tag, vr, vpos = group << 16 | elem, None, pos + 8
            else:
                group, elem, vr, length = _EXPLICIT.unpack_from(data, off)
                tag, vpos = group << 16 | elem, pos + 8
                if vr not in _VR16:
                    if vr not in _VR32 or group == 0xFFFE:
                        tag, vr, length, vpos = r.element(pos, implicit)
                    else:
                        length, vpos = _UINT32.unpack_from(data, off + 8)[0], pos + 12
        elif pos + 8 > size:  # no Pixel Data: pydicom reads to the end of the file too
            return raw, private, pos
        else:
            tag, vr, length, vpos = r.element(pos, implicit)
        if tag in _PIXEL_TAGS:
            return raw, private, pos
        if tag >> 16 == 0xFFFE or tag in SLOW_TAGS:
            raise Fallback
        if length == 0xFFFFFFFF:
            pos = r.undefined(tag, vr, vpos, implicit)
        elif tag in FAST_TAGS:
            if vr is not None and vr != _FAST_EXPECTED_VR[tag]:
                raise Fallback
            raw[tag] = r.value(vpos, length)
            pos = vpos + length
        elif vpos + length > size:
            raise Fallback
        else:
            if tag >> 16 in PRIVATE_GROUPS and private_wanted(tag):
                private[tag] = r.value(vpos, length)
            pos = vpos + length
        data, base = r.data, r.base


def fast_reader_available() -> bool:
    """Whether this pydicom exposes the VR length tables the fast reader needs (pydicom >= 2.4)."""
    return _AVAILABLE
