"""Index of a DICOM tree: header-only scan, persisted in SQLite, grouped into series.

A scan walks one or more folders (any nesting, any file names; symlinked folders are not
followed, so loops cannot hang it) and reads each file's header with pydicom
(``stop_before_pixels``). Every file ends up in the ``files`` table, either ``ok`` with its header
fields or ``skipped`` with a reason. The table is keyed on the path and remembers size and mtime,
so a re-scan of an unchanged tree reads no header again. Source files are only ever opened for
reading.

What the scan checks (cheaply, without decoding pixels):

* the header parses, holds an image pixel module and a SeriesInstanceUID, and is not a DICOMDIR or
  a non-image object (RT plan/dose/structure set, SR, segmentation, ...); else ``skipped``;
* ImageOrientationPatient is two (nearly) orthogonal unit vectors (re-orthonormalised when off by
  less than 1e-2), ImagePositionPatient and PixelSpacing are finite (spacing > 0); else ``skipped``;
* the Pixel Data element is complete: for native (uncompressed) transfer syntaxes the file holds at
  least Rows x Columns x frames x samples x BitsAllocated bits, for encapsulated ones every fragment
  is inside the file. A file that fails this is kept (``ok``, ``problem`` set) so that its series
  exists and reading it raises a :class:`~lightning_dicom.errors.SeriesError` naming the file.

Series are derived from the table: instances are grouped by SeriesInstanceUID (0020,000E); within
a UID, instances whose ImageOrientationPatient (0020,0037), Rows x Columns or SamplesPerPixel differ
(localizers, scouts) become separate sub-volumes, and each multi-frame file, and each file without
ImagePositionPatient/ImageOrientationPatient (2D images: CR, secondary captures), is its own
volume. A series' slices are ordered by ImagePositionPatient (0020,0032) projected on the slice
normal, never by file name or InstanceNumber; the frames of a multi-frame file likewise, from the
per-frame PlanePositionSequence when present.

Duplicate instances: files that hold the same instance (same SOPInstanceUID, position, size and
pixel format -- a folder copied twice, or one image saved in several transfer syntaxes) count
once. The copy kept is the first of: no pixel-data problem, uncompressed, lossless, lossy transfer
syntax, then path order; the others are listed in :attr:`SeriesRecord.duplicates` and
``report()["duplicates"]``.

Patient IDs are stored (they group the split) but never printed: reports show
:func:`patient_key`, a one-way hash.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sqlite3
import struct
import time
import warnings
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from .errors import NotDicomError
from .typing import SpacingXYZ

__all__ = ["DicomIndex", "ScanReport", "SeriesRecord", "patient_key", "read_header", "select_series"]

log = logging.getLogger(__name__)

SCHEMA_VERSION = 2

#: Header tags read during indexing (everything up to pixel data is parsed; these are kept).
_FIELDS = (
    "sop_class_uid", "sop_uid", "patient_id", "study_uid", "series_uid", "frame_uid", "modality",
    "description", "series_number", "instance_number", "rows", "cols", "n_frames", "iop", "ipp",
    "pixel_spacing", "slice_thickness", "samples_per_pixel", "photometric", "bits_stored",
    "pixel_representation", "rescale_slope", "rescale_intercept", "transfer_syntax",
    "bits_allocated", "slice_gap", "frame_ipps", "problem",
)
_COLUMNS = ("path", "size", "mtime_ns", "status", "reason", *_FIELDS)

_NON_IMAGE_HINT = ("RT Plan", "RT Structure", "RT Dose", "Structured Report", "SR Storage",
                   "Presentation State", "Raw Data", "Encapsulated", "Key Object", "Segmentation")

#: Tolerances on ImageOrientationPatient: |norm - 1| and |row . col| above these are rejected.
IOP_TOLERANCE = 1e-2
#: Largest absolute coordinate (mm) accepted in ImagePositionPatient, and largest PixelSpacing.
MAX_COORDINATE_MM = 1e7
MAX_SPACING_MM = 1e5
MIN_SPACING_MM = 1e-6

_UNCOMPRESSED = {"1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2", "1.2.840.10008.1.2.1.99"}
_LOSSLESS = {"1.2.840.10008.1.2.5", "1.2.840.10008.1.2.4.57", "1.2.840.10008.1.2.4.70",
             "1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.201",
             "1.2.840.10008.1.2.4.202"}
_DEFLATED = "1.2.840.10008.1.2.1.99"
_LONG_LENGTH_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"UC", b"UN", b"UR", b"UT"}


def patient_key(patient_id: str | None) -> str:
    """A short one-way pseudonym of a PatientID, safe to print (never log the ID itself)."""
    return hashlib.sha256((patient_id or "").encode()).hexdigest()[:10]


def _floats(value: Any, n: int) -> list[float] | None:
    """``n`` finite floats from a multi-valued element, or None when absent or malformed."""
    try:
        out = [float(x) for x in value]
    except (TypeError, ValueError):
        return None
    return out if len(out) == n and all(np.isfinite(out)) else None


def _present(ds: Any, keyword: str) -> bool:
    """The element exists and has a non-empty value."""
    try:
        v = ds.get(keyword)
    except Exception:  # a malformed raw value that pydicom cannot convert counts as present
        return True
    return v is not None and v != "" and not (hasattr(v, "__len__") and len(v) == 0)


def _checked_iop(iop: list[float] | None, path: str) -> list[float] | None:
    """Orthonormalised ImageOrientationPatient, or NotDicomError when it is not two orthogonal unit vectors."""
    if iop is None:
        return None
    row, col = np.array(iop[:3]), np.array(iop[3:])
    nr, nc = float(np.linalg.norm(row)), float(np.linalg.norm(col))
    if abs(nr - 1) > IOP_TOLERANCE or abs(nc - 1) > IOP_TOLERANCE or abs(float(row @ col)) > IOP_TOLERANCE:
        raise NotDicomError(
            "ImageOrientationPatient (0020,0037) is not two orthogonal unit vectors "
            f"(|row|={nr:.4g}, |col|={nc:.4g}, row.col={float(row @ col):.4g})", path=path)
    row = row / nr
    col = col - (col @ row) * row
    col = col / np.linalg.norm(col)
    return [float(x) for x in (*row, *col)]


def _element(ds: Any, keyword: str, n: int, path: str, *, positive: bool = False,
             limit: float = MAX_COORDINATE_MM, tag: str = "") -> list[float] | None:
    """A multi-valued numeric element: None when absent, NotDicomError when present but invalid."""
    if not _present(ds, keyword):
        return None
    try:
        raw = ds.get(keyword)
    except Exception:
        raw = None
    vals = _floats(raw, n)
    if vals is None or any(abs(v) > limit for v in vals) or (positive and any(v < MIN_SPACING_MM for v in vals)):
        what = f"{n} positive numbers" if positive else f"{n} finite numbers"
        raise NotDicomError(f"{keyword} {tag} must be {what} (got {_short(raw)})", path=path)
    return vals


def _short(value: Any) -> str:
    """A header value for an error message (geometry and pixel-module tags only: never PHI)."""
    try:
        text = repr(value) if isinstance(value, (str, bytes)) or value is None else str(value)
    except Exception:
        text = "an unreadable value"
    return text if len(text) <= 60 else text[:57] + "..."


def _functional(ds: Any, seq: str, item: str, keyword: str) -> Any:
    """``ds.<seq>[0].<item>[0].<keyword>`` or None (enhanced multi-frame functional groups)."""
    try:
        groups = ds.get(seq)
        if not groups:
            return None
        inner = groups[0].get(item)
        if not inner:
            return None
        return inner[0].get(keyword)
    except Exception:
        return None


def _per_frame(ds: Any, item: str, keyword: str) -> list[Any] | None:
    """``keyword`` of ``item`` in every PerFrameFunctionalGroupsSequence item (None where missing)."""
    try:
        groups = ds.get("PerFrameFunctionalGroupsSequence")
        if not groups:
            return None
        out = []
        for g in groups:
            inner = g.get(item)
            out.append(inner[0].get(keyword) if inner else None)
        return out
    except Exception:
        return None


def read_header(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read the fields the index keeps from one file's header (pixel data is not read).

    ``problem`` is None, or why the file's pixel data cannot be read (truncated file, pixel data
    shorter than the image it declares); such a file still belongs to its series.

    Raises:
        NotDicomError: the file is not DICOM, is empty, a DICOMDIR, not an image, or lacks the
            tags needed to place it in a series (or has invalid ones).
        OSError: the file cannot be opened.
    """
    import pydicom
    from pydicom.errors import InvalidDicomError

    path = str(path)
    with open(path, "rb") as fh:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ds = pydicom.dcmread(fh, stop_before_pixels=True)
        except InvalidDicomError:
            raise NotDicomError("not a DICOM file (no DICM preamble or valid header)", path=path) from None
        except Exception as err:  # pydicom raises many kinds on corrupt headers
            raise NotDicomError(f"unreadable DICOM header ({type(err).__name__})", path=path) from None
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                header = _header_fields(ds, path)
                header["problem"] = (_pixel_data_problem(fh, ds, header, os.fstat(fh.fileno()).st_size)
                                     or _decoder_problem(header))
        except NotDicomError:
            raise
        except Exception as err:  # a value pydicom parses lazily and cannot convert
            raise NotDicomError(f"malformed header value ({type(err).__name__})", path=path) from None
    return header


def _header_fields(ds: Any, path: str) -> dict[str, Any]:  # noqa: C901 - a flat list of tag checks
    try:
        sop_class = str(ds.get("SOPClassUID", "") or ds.file_meta.get("MediaStorageSOPClassUID", ""))
    except Exception:
        sop_class = ""
    try:
        sop_name = ds.SOPClassUID.name if "SOPClassUID" in ds else ""
    except Exception:
        sop_name = ""
    if "DirectoryRecordSequence" in ds or sop_class == "1.2.840.10008.1.3.10":
        raise NotDicomError("DICOMDIR (a directory of records, not an image)", path=path)
    if not _present(ds, "Rows") or not _present(ds, "Columns"):
        kind = sop_name or sop_class or "unknown SOP class"
        raise NotDicomError(f"no image pixel module: Rows/Columns missing ({kind})", path=path)
    if any(h in sop_name for h in _NON_IMAGE_HINT):
        raise NotDicomError(f"not an image volume ({sop_name})", path=path)
    series_uid = str(ds.get("SeriesInstanceUID", "") or "")
    if not series_uid:
        raise NotDicomError("missing SeriesInstanceUID (0020,000E)", path=path)

    def integer(keyword: str, default: int | None, lo: int, hi: int) -> int:
        v = ds.get(keyword)
        if v is None or v == "":
            if default is None:
                raise NotDicomError(f"missing {keyword}", path=path)
            return default
        try:
            out = int(v)
        except (TypeError, ValueError):
            raise NotDicomError(f"{keyword} is not an integer (got {_short(v)})", path=path) from None
        if not lo <= out <= hi:
            raise NotDicomError(f"{keyword} must be in {lo}..{hi} (got {out})", path=path)
        return out

    rows = integer("Rows", None, 1, 65535)
    cols = integer("Columns", None, 1, 65535)
    n_frames = integer("NumberOfFrames", 1, 1, 2**31 - 1)
    samples = integer("SamplesPerPixel", 1, 1, 4)
    bits_allocated = integer("BitsAllocated", None, 1, 64)
    if bits_allocated not in (1, 8, 16, 32, 64):
        raise NotDicomError(f"BitsAllocated must be 1, 8, 16, 32 or 64 (got {bits_allocated})", path=path)
    bits_stored = integer("BitsStored", bits_allocated, 1, bits_allocated)
    pixel_rep = integer("PixelRepresentation", 0, 0, 1)

    iop = _element(ds, "ImageOrientationPatient", 6, path, limit=1.5, tag="(0020,0037)")
    ipp = _element(ds, "ImagePositionPatient", 3, path, tag="(0020,0032)")
    spacing = _element(ds, "PixelSpacing", 2, path, positive=True, limit=MAX_SPACING_MM, tag="(0028,0030)")

    def num(value: Any, *, positive: bool = False) -> float | None:
        try:
            out = float(value)
        except (TypeError, ValueError):
            return None
        if not np.isfinite(out) or (positive and out <= 0):
            return None
        return out

    thickness = num(ds.get("SliceThickness"), positive=True)
    gap = num(ds.get("SpacingBetweenSlices"), positive=True)
    slope_raw, icpt_raw = ds.get("RescaleSlope"), ds.get("RescaleIntercept")
    frame_ipps = None
    problem = None
    if "SharedFunctionalGroupsSequence" in ds or "PerFrameFunctionalGroupsSequence" in ds:
        iop_f = _functional(ds, "SharedFunctionalGroupsSequence", "PlaneOrientationSequence",
                            "ImageOrientationPatient")
        per_iop = _per_frame(ds, "PlaneOrientationSequence", "ImageOrientationPatient")
        if iop is None and iop_f is None and per_iop and per_iop[0] is not None:
            iop_f = per_iop[0]
            if any(_floats(v, 6) != _floats(per_iop[0], 6) for v in per_iop):
                problem = "frames have different ImageOrientationPatient (not one volume)"
        if iop is None and iop_f is not None:
            iop = _floats(iop_f, 6)
            if iop is None or any(abs(v) > 1.5 for v in iop):
                raise NotDicomError("ImageOrientationPatient (0020,0037) in PlaneOrientationSequence "
                                    f"must be 6 finite numbers (got {_short(iop_f)})", path=path)
        for seq in ("SharedFunctionalGroupsSequence", "PerFrameFunctionalGroupsSequence"):
            if spacing is None:
                ps = _functional(ds, seq, "PixelMeasuresSequence", "PixelSpacing")
                if ps is not None:
                    spacing = _floats(ps, 2)
                    if spacing is None or min(spacing) < MIN_SPACING_MM or max(spacing) > MAX_SPACING_MM:
                        raise NotDicomError(f"PixelSpacing (0028,0030) in PixelMeasuresSequence must be 2 "
                                            f"positive numbers (got {_short(ps)})", path=path)
            thickness = thickness or num(_functional(ds, seq, "PixelMeasuresSequence", "SliceThickness"),
                                         positive=True)
            gap = gap or num(_functional(ds, seq, "PixelMeasuresSequence", "SpacingBetweenSlices"), positive=True)
            if slope_raw is None:
                slope_raw = _functional(ds, seq, "PixelValueTransformationSequence", "RescaleSlope")
                icpt_raw = _functional(ds, seq, "PixelValueTransformationSequence", "RescaleIntercept")
        per_slope = _per_frame(ds, "PixelValueTransformationSequence", "RescaleSlope")
        per_icpt = _per_frame(ds, "PixelValueTransformationSequence", "RescaleIntercept")
        if per_slope and (len({str(v) for v in per_slope}) > 1 or len({str(v) for v in per_icpt or []}) > 1):
            problem = problem or "RescaleSlope/Intercept differ between frames (not supported)"
        positions = _per_frame(ds, "PlanePositionSequence", "ImagePositionPatient")
        if positions and any(p is not None for p in positions):
            parsed = [_floats(p, 3) for p in positions]
            if any(p is None or max(abs(v) for v in p) > MAX_COORDINATE_MM for p in parsed):
                raise NotDicomError("ImagePositionPatient (0020,0032) missing or invalid in the "
                                    "PlanePositionSequence of some frames", path=path)
            if len(parsed) != n_frames:
                problem = problem or (f"{len(parsed)} per-frame positions for NumberOfFrames {n_frames}")
            else:
                frame_ipps = parsed
                ipp = ipp or parsed[0]
    iop = _checked_iop(iop, path)
    slope = num(slope_raw)
    icpt = num(icpt_raw)
    if slope_raw not in (None, "") and (slope is None or slope == 0 or abs(slope) > 1e12):
        raise NotDicomError(f"RescaleSlope (0028,1053) must be a finite non-zero number (got {_short(slope_raw)})",
                            path=path)
    if icpt_raw not in (None, "") and (icpt is None or abs(icpt) > 1e12):
        raise NotDicomError(f"RescaleIntercept (0028,1052) must be a finite number (got {_short(icpt_raw)})",
                            path=path)

    def opt_int(keyword: str) -> int:
        try:
            v = ds.get(keyword)
            return int(float(v)) if v not in (None, "") else 0
        except (TypeError, ValueError, OverflowError):
            return 0

    try:
        tsyntax = str(ds.file_meta.get("TransferSyntaxUID", "") or "")
    except Exception:
        tsyntax = ""
    return {
        "sop_class_uid": sop_class,
        "sop_uid": str(ds.get("SOPInstanceUID", "") or ""),
        "patient_id": str(ds.get("PatientID", "") or ""),
        "study_uid": str(ds.get("StudyInstanceUID", "") or ""),
        "series_uid": series_uid,
        "frame_uid": str(ds.get("FrameOfReferenceUID", "") or ""),
        "modality": str(ds.get("Modality", "") or "").upper(),
        "description": str(ds.get("SeriesDescription", "") or ""),
        "series_number": opt_int("SeriesNumber"),
        "instance_number": opt_int("InstanceNumber"),
        "rows": rows,
        "cols": cols,
        "n_frames": n_frames,
        "iop": json.dumps(iop) if iop else None,
        "ipp": json.dumps(ipp) if ipp else None,
        "pixel_spacing": json.dumps(spacing) if spacing else None,
        "slice_thickness": thickness,
        "samples_per_pixel": samples,
        "photometric": str(ds.get("PhotometricInterpretation", "") or "").strip().upper(),
        "bits_stored": bits_stored,
        "pixel_representation": pixel_rep,
        "rescale_slope": slope if slope is not None else 1.0,
        "rescale_intercept": icpt if icpt is not None else 0.0,
        "transfer_syntax": tsyntax,
        "bits_allocated": bits_allocated,
        "slice_gap": gap,
        "frame_ipps": json.dumps(frame_ipps) if frame_ipps else None,
        "problem": problem,
    }


def _pixel_data_problem(fh: BinaryIO, ds: Any, h: dict[str, Any], size: int) -> str | None:
    """Why the Pixel Data element (where ``fh`` stands) cannot hold the declared image, or None.

    pydicom's ``stop_before_pixels`` leaves the file positioned on the pixel data element's tag.
    """
    if h["problem"]:
        return h["problem"]
    if h["transfer_syntax"] == _DEFLATED:
        return None  # the dataset was inflated in memory: no file offsets to check
    element = _pixel_element(fh, ds)
    if isinstance(element, str):
        return element
    length, end = element
    if length == 0xFFFFFFFF:
        return _encapsulated_problem(fh, end, size)
    bits = h["rows"] * h["cols"] * h["n_frames"] * h["samples_per_pixel"] * h["bits_allocated"]
    if h["photometric"] == "YBR_FULL_422" and h["samples_per_pixel"] == 3:
        bits = bits * 2 // 3  # native 4:2:2 stores two chroma samples per pair of pixels
    expected = (bits + 7) // 8
    if length < expected:
        return (f"Pixel Data holds {length} bytes but Rows x Columns x frames x samples x BitsAllocated "
                f"need {expected}")
    available = size - fh.tell()
    if available < expected:
        return f"file truncated: Pixel Data needs {expected} bytes, the file ends {expected - available} bytes short"
    return None


def _pixel_element(fh: BinaryIO, ds: Any) -> tuple[int, str] | str:
    """(value length, struct byte order) of the Pixel Data element header at ``fh``, or a problem."""
    try:
        implicit, little = ds.original_encoding
    except (AttributeError, TypeError):
        implicit, little = bool(getattr(ds, "is_implicit_VR", False)), bool(getattr(ds, "is_little_endian", True))
    end = ">" if little is False else "<"
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


def _decoder_problem(h: dict[str, Any]) -> str | None:
    """Pixel encodings that SimpleITK's GDCM (2.x) decodes to wrong values without an error."""
    ts, bits = h["transfer_syntax"], h["bits_allocated"]
    if ts == "1.2.840.10008.1.2.5" and h["samples_per_pixel"] > 1 and bits > 8:
        return (f"RLE Lossless colour with {bits} bits per sample: GDCM decodes it to wrong values; "
                "convert the file (e.g. dcmdrle)")
    if ts == "1.2.840.10008.1.2.2" and bits == 32:
        return ("32-bit Explicit VR Big Endian pixel data: GDCM decodes it to wrong values; convert the file "
                "to little endian (e.g. dcmconv +te)")
    return None


def _encapsulated_problem(fh: BinaryIO, end: str, size: int) -> str | None:
    """Walk the items of encapsulated pixel data; report a fragment that runs past the end of the file."""
    n_items = 0
    while True:
        head = fh.read(8)
        if len(head) < 8:
            return f"file truncated: encapsulated Pixel Data ends after {n_items} fragments without a delimiter"
        group, elem, length = struct.unpack(end + "HHI", head)
        if (group, elem) == (0xFFFE, 0xE0DD):
            return None if n_items >= 2 else "encapsulated Pixel Data holds no frame"
        if (group, elem) != (0xFFFE, 0xE000) or length == 0xFFFFFFFF:
            return f"corrupt encapsulated Pixel Data (item {n_items} has tag ({group:04X},{elem:04X}))"
        if fh.tell() + length > size:
            return (f"file truncated: fragment {n_items} of the encapsulated Pixel Data needs {length} bytes, "
                    f"the file holds {size - fh.tell()}")
        fh.seek(length, os.SEEK_CUR)
        n_items += 1


def _skipped_row(path: str, size: int, mtime: int, reason: str) -> tuple:
    return (path, size, mtime, "skipped", reason, *([None] * len(_FIELDS)))


def _scan_one(item: tuple[str, int, int]) -> tuple:
    """One row of the files table; never raises (an unexpected error becomes a skip reason)."""
    path, size, mtime = item
    if size < 0:
        return _skipped_row(path, size, mtime, "cannot stat (broken symlink or symlink loop)")
    if size == 0:
        return _skipped_row(path, size, mtime, "empty file (0 bytes)")
    if not _encodable(path):
        return _skipped_row(path, size, mtime, "file name is not valid UTF-8 (rename the file)")
    try:
        h = read_header(path)
    except NotDicomError as err:
        return _skipped_row(path, size, mtime, err.reason)
    except OSError as err:
        return _skipped_row(path, size, mtime, f"cannot open ({err.strerror or type(err).__name__})")
    except Exception as err:  # never let one odd file stop a scan of a million
        log.debug("unexpected error reading %s", path, exc_info=True)
        return _skipped_row(path, size, mtime, f"unexpected error reading the header ({type(err).__name__})")
    return (path, size, mtime, "ok", None, *(h[f] for f in _FIELDS))


def _scan_chunk(items: list[tuple[str, int, int]]) -> list[tuple]:
    return [_scan_one(i) for i in items]


def _encodable(path: str) -> bool:
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _db_key(path: str) -> str:
    """The path as stored in SQLite (undecodable bytes of a file name are escaped)."""
    if _encodable(path):
        return path
    return path.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


@dataclass(frozen=True)
class SeriesRecord:
    """One volume: the files of a series (or sub-volume, or multi-frame file), in slice order.

    ``series_id`` equals ``series_uid`` unless one UID holds several volumes (localizers, other
    orientations, several multi-frame files or 2D images); then it is ``"<uid>#<k>"``, k=1 for the
    largest. ``spacing`` is x-y-z in mm: PixelSpacing reversed (1 when absent), and z the median gap
    between sorted slice positions; without two positions, SliceThickness then SpacingBetweenSlices
    (single slice) or SpacingBetweenSlices then SliceThickness (multi-frame file without per-frame
    positions, whose frames are taken as contiguous along the normal), else 1. Without
    ImagePositionPatient/ImageOrientationPatient (``has_geometry`` False) the origin is 0 and the
    direction the identity.
    """

    series_id: str
    series_uid: str
    study_uid: str
    patient_id: str = field(repr=False)
    frame_uid: str
    modality: str
    description: str
    series_number: int
    n_instances: int
    n_slices: int
    rows: int
    cols: int
    spacing: SpacingXYZ
    orientation: tuple[float, ...]
    plane: str
    files: tuple[str, ...] = field(repr=False)
    samples_per_pixel: int = 1
    positions: tuple[tuple[float, float, float], ...] = field(default=(), repr=False)
    """ImagePositionPatient of each slice in slice order (LPS, mm): one per file, or one per frame of
    a multi-frame file."""
    value_range: tuple[float, float] = (-32768.0, 32767.0)
    """Smallest and largest modality value the headers allow (stored range x slope + intercept)."""
    integer_values: bool = True
    """True when every RescaleSlope/Intercept is integral (values are integers in modality units)."""
    fingerprint: str = ""
    """sha256 of the files' (path, size, mtime_ns): changes whenever a source file does."""
    file_stats: tuple[tuple[int, int], ...] = field(default=(), repr=False)
    """(size, mtime_ns) of each file when it was indexed; the reader refuses files that changed."""
    frame_order: tuple[int, ...] = field(default=(), repr=False)
    """Multi-frame file: the frame index (in file order) of each slice, in slice order. Empty when
    the frames are already in slice order."""
    problems: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    """(path, reason) of files whose pixel data the index found unreadable (truncated, ...)."""
    duplicates: tuple[str, ...] = field(default=(), repr=False)
    """Files left out because they repeat an instance in ``files`` (same SOPInstanceUID and position)."""
    has_geometry: bool = True
    """False when the headers carry no ImagePositionPatient/ImageOrientationPatient (2D images):
    the volume then gets origin 0 and identity direction."""
    photometric: str = ""
    """PhotometricInterpretation (0028,0004) of the first file."""
    uniform_rescale: bool = True
    """True when every file has the same RescaleSlope/Intercept, BitsStored and PixelRepresentation."""

    @property
    def patient_key(self) -> str:
        return patient_key(self.patient_id)

    def summary(self) -> dict[str, Any]:
        """A PHI-free description (for reports, split files and batch metadata)."""
        return {
            "series_id": self.series_id, "series_uid": self.series_uid, "study_uid": self.study_uid,
            "patient_key": self.patient_key, "modality": self.modality, "description": self.description,
            "n_instances": self.n_instances, "n_slices": self.n_slices, "rows": self.rows, "cols": self.cols,
            "spacing": list(self.spacing), "plane": self.plane,
        }


@dataclass
class ScanReport:
    """What a scan did: files seen, headers read (new or changed), removed, and how long it took."""

    n_files: int = 0
    n_read: int = 0
    n_removed: int = 0
    seconds: float = 0.0

    @property
    def files_per_second(self) -> float:
        return self.n_files / self.seconds if self.seconds > 0 else float("inf")


def plane_of(iop: Sequence[float]) -> str:
    """'axial', 'sagittal', 'coronal' or 'oblique' from ImageOrientationPatient (LPS)."""
    normal = np.cross(iop[:3], iop[3:])
    k = int(np.argmax(np.abs(normal)))
    if abs(normal[k]) < 0.98:
        return "oblique"
    return ("sagittal", "coronal", "axial")[k]


def _walk(root: Path) -> Iterator[tuple[str, int, int]]:
    """Files under root: (path, size, mtime_ns). Symlinked folders are not followed; a file that
    cannot be stat'ed (broken link, link loop) comes with size -1."""
    if root.is_file():
        st = root.stat()
        yield str(root), st.st_size, st.st_mtime_ns
        return
    if not root.exists():
        log.warning("index root %s does not exist", root)
        return
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False, onerror=lambda e: log.warning(
            "cannot list %s: %s", e.filename, e.strerror)):
        dirnames.sort()
        for name in sorted(filenames):
            p = os.path.join(dirpath, name)
            try:
                st = os.stat(p)
            except OSError:
                yield p, -1, -1
                continue
            if not os.path.isfile(p):
                continue  # a FIFO, socket or device: never open it
            yield p, st.st_size, st.st_mtime_ns


def _resolved(path: Path) -> Path:
    try:
        return path.resolve()
    except (OSError, RuntimeError):  # a symlink loop as a root: scanned as nothing
        return path.absolute()


class DicomIndex:
    """A persisted index of one or more DICOM folders.

    Args:
        roots: folders (or files) to scan recursively.
        db_path: SQLite file; ``None`` keeps the index in memory (nothing persisted).
    """

    def __init__(self, roots: Iterable[str | os.PathLike[str]], db_path: str | os.PathLike[str] | None = None):
        if isinstance(roots, (str, os.PathLike)):
            roots = [roots]
        self.roots = [_resolved(Path(r)) for r in roots]
        self.db_path = Path(db_path) if db_path is not None else None
        if self.db_path is not None:
            self.db_path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(self.db_path) if self.db_path else ":memory:", timeout=60)
        self._db.execute("PRAGMA journal_mode=WAL" if self.db_path else "PRAGMA journal_mode=MEMORY")
        self._db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
        row = self._db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
        if row is None or int(row[0]) != SCHEMA_VERSION:
            self._db.execute("DROP TABLE IF EXISTS files")
            self._db.execute("INSERT OR REPLACE INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
        cols = ", ".join(f"{c} {'INTEGER' if c in ('size', 'mtime_ns') else ''}" for c in _COLUMNS[1:])
        self._db.execute(f"CREATE TABLE IF NOT EXISTS files (path TEXT PRIMARY KEY, {cols})")
        self._db.commit()

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> DicomIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- scanning ---------------------------------------------------------------------------------
    def scan(self, *, workers: int | None = None, progress: bool = False) -> ScanReport:
        """Bring the index up to date with the folders: read new/changed headers, drop removed files.

        A file is re-read when its size or mtime changed. Never raises for a bad file: it is
        recorded as skipped with a reason (see :meth:`skipped`).

        Args:
            workers: processes reading headers (default: CPUs; 1 reads in this process).
            progress: show a tqdm progress bar on stderr.
        """
        t0 = time.perf_counter()
        known = {p: (s, m) for p, s, m in self._db.execute("SELECT path, size, mtime_ns FROM files")}
        seen: set[str] = set()
        todo: list[tuple[str, int, int]] = []
        for root in self.roots:
            for path, size, mtime in _walk(root):
                key = _db_key(path)
                if key in seen:
                    continue
                seen.add(key)
                if known.get(key) != (size, mtime):
                    todo.append((path, size, mtime))
        removed = [p for p in known if p not in seen]
        self._db.executemany("DELETE FROM files WHERE path=?", [(p,) for p in removed])
        rows = [(_db_key(r[0]), *r[1:]) for r in self._read_headers(todo, workers=workers, progress=progress)]
        marks = ",".join("?" * len(_COLUMNS))
        self._db.executemany(f"INSERT OR REPLACE INTO files ({','.join(_COLUMNS)}) VALUES ({marks})", rows)
        self._db.commit()
        report = ScanReport(len(seen), len(todo), len(removed), time.perf_counter() - t0)
        log.info("indexed %d files (%d headers read, %d removed) in %.2f s",
                 report.n_files, report.n_read, report.n_removed, report.seconds)
        return report

    @staticmethod
    def _read_headers(todo: list[tuple[str, int, int]], *, workers: int | None, progress: bool) -> list[tuple]:
        from tqdm import tqdm

        workers = workers or os.cpu_count() or 1
        bar = tqdm(total=len(todo), desc="indexing", unit="file", disable=not progress or not todo)
        out: list[tuple] = []
        if workers <= 1 or len(todo) < 256:
            for item in todo:
                out.append(_scan_one(item))
                bar.update()
        else:
            chunk = max(16, min(512, len(todo) // (workers * 8)))
            chunks = [todo[i:i + chunk] for i in range(0, len(todo), chunk)]
            with ProcessPoolExecutor(workers) as pool:
                for res in pool.map(_scan_chunk, chunks):
                    out.extend(res)
                    bar.update(len(res))
        bar.close()
        return out

    # -- queries ----------------------------------------------------------------------------------
    def files(self, status: str | None = None) -> list[dict[str, Any]]:
        """Rows of the files table (``status`` = 'ok' or 'skipped' to filter)."""
        q = f"SELECT {','.join(_COLUMNS)} FROM files"
        args: tuple = ()
        if status:
            q += " WHERE status=?"
            args = (status,)
        return [dict(zip(_COLUMNS, r, strict=True)) for r in self._db.execute(q + " ORDER BY path", args)]

    def skipped(self) -> list[tuple[str, str]]:
        """(path, reason) of every file that is not part of a series."""
        return list(self._db.execute("SELECT path, reason FROM files WHERE status='skipped' ORDER BY path"))

    def series(self) -> list[SeriesRecord]:
        """Every volume in the index, ordered by (study, series number, series id)."""
        kept, dropped = _dedupe(self.files("ok"))
        iop_reps: dict[str, list[tuple[float, ...]]] = defaultdict(list)
        groups: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
        for f in kept:
            uid = f["series_uid"]
            if f["iop"] is None or f["ipp"] is None or (f["n_frames"] or 1) > 1:
                key: tuple = (uid, f["path"])  # 2D image or multi-frame file: a volume of its own
            else:
                key = (uid, _cluster(iop_reps[uid], json.loads(f["iop"])), f["rows"], f["cols"],
                       f["samples_per_pixel"])
            groups[key].append(f)
        by_uid: dict[str, list[list[dict[str, Any]]]] = defaultdict(list)
        for key, members in groups.items():
            by_uid[key[0]].append(members)
        out = []
        for uid, volumes in by_uid.items():
            volumes.sort(key=lambda m: (-sum(f["n_frames"] or 1 for f in m), m[0]["path"]))
            for k, members in enumerate(volumes, start=1):
                sid = uid if len(volumes) == 1 else f"{uid}#{k}"
                out.append(_make_series(sid, members, dropped))
        out.sort(key=lambda s: (s.study_uid, s.series_number, s.series_id))
        return out

    def duplicates(self) -> dict[str, str]:
        """{path left out: path kept} for files that repeat an instance held by another file."""
        _, dropped = _dedupe(self.files("ok"))
        return {d: k for k, ds in dropped.items() for d in ds}

    def report(self) -> dict[str, Any]:
        """PHI-free summary: series table, skipped files grouped by reason, duplicate files and files
        whose pixel data is unreadable (``problems``: reason -> paths)."""
        reasons: dict[str, list[str]] = defaultdict(list)
        for path, reason in self.skipped():
            reasons[reason].append(path)
        problems: dict[str, list[str]] = defaultdict(list)
        for f in self.files("ok"):
            if f["problem"]:
                problems[f["problem"]].append(f["path"])
        return {"series": [s.summary() for s in self.series()], "skipped": dict(reasons),
                "duplicates": self.duplicates(), "problems": dict(problems)}


def _cluster(reps: list[tuple[float, ...]], iop: list[float], tol: float = 1e-3) -> int:
    """Index of the orientation in ``reps`` within ``tol`` of ``iop`` (appended when new)."""
    for i, r in enumerate(reps):
        if max(abs(a - b) for a, b in zip(r, iop, strict=True)) <= tol:
            return i
    reps.append(tuple(iop))
    return len(reps) - 1


def _syntax_rank(ts: str | None) -> int:
    return 0 if not ts or ts in _UNCOMPRESSED else 1 if ts in _LOSSLESS else 2


def _dedupe(rows: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], dict[str, list[str]]]:
    """Keep one file per instance (see the module docstring); returns (kept, {kept path: dropped paths})."""
    by_instance: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    kept: list[dict[str, Any]] = []
    for f in rows:
        if not f["sop_uid"]:
            kept.append(f)
            continue
        key = (f["series_uid"], f["sop_uid"], f["rows"], f["cols"], f["n_frames"], f["samples_per_pixel"],
               f["bits_allocated"], f["bits_stored"], f["pixel_representation"], f["ipp"], f["iop"], f["frame_ipps"])
        by_instance[key].append(f)
    dropped: dict[str, list[str]] = {}
    for copies in by_instance.values():
        copies.sort(key=lambda f: (f["problem"] is not None, _syntax_rank(f["transfer_syntax"]), f["path"]))
        kept.append(copies[0])
        if len(copies) > 1:
            dropped[copies[0]["path"]] = [f["path"] for f in copies[1:]]
    kept.sort(key=lambda f: f["path"])
    return kept, dropped


def _make_series(series_id: str, members: list[dict[str, Any]], dropped: dict[str, list[str]]) -> SeriesRecord:
    first = members[0]
    has_geometry = bool(first["iop"]) and bool(first["ipp"])
    iop = json.loads(first["iop"]) if first["iop"] else [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    normal = np.cross(iop[:3], iop[3:])
    n_frames = int(first["n_frames"] or 1)
    if n_frames > 1:
        fallback_dz = float(first["slice_gap"] or first["slice_thickness"] or 1.0)
    else:
        fallback_dz = float(first["slice_thickness"] or first["slice_gap"] or 1.0)
    frame_order: tuple[int, ...] = ()
    if n_frames > 1:  # one multi-frame file
        if first["frame_ipps"]:
            pts = np.asarray(json.loads(first["frame_ipps"]), dtype=float)
            order = np.argsort(pts @ normal, kind="stable")
            pts = pts[order]
            if not np.array_equal(order, np.arange(n_frames)):
                frame_order = tuple(int(i) for i in order)
        else:  # classic multi-frame: frames assumed contiguous along the normal, in file order
            origin = np.asarray(json.loads(first["ipp"]), dtype=float) if first["ipp"] else np.zeros(3)
            pts = origin + np.outer(np.arange(n_frames) * fallback_dz, normal)
        positions = [tuple(float(v) for v in p) for p in pts]
    else:
        def pos(f: dict[str, Any]) -> float:
            return float(np.dot(json.loads(f["ipp"]), normal)) if f["ipp"] else 0.0

        members = sorted(members, key=lambda f: (pos(f), f["instance_number"] or 0, f["path"]))
        positions = [tuple(json.loads(f["ipp"])) if f["ipp"] else (0.0, 0.0, 0.0) for f in members]
    proj = np.asarray(positions, dtype=float) @ normal
    gaps = np.diff(proj)
    dz = float(np.median(gaps)) if len(gaps) and np.any(gaps > 0) else fallback_dz
    ps = json.loads(first["pixel_spacing"]) if first["pixel_spacing"] else [1.0, 1.0]
    lo, hi, integral = np.inf, -np.inf, True
    encodings = set()
    for f in members:
        encodings.add((f["rescale_slope"], f["rescale_intercept"], f["bits_stored"], f["pixel_representation"]))
        bits = int(f["bits_stored"] or 16)
        smin, smax = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if f["pixel_representation"] else (0, 2**bits - 1)
        slope = 1.0 if f["rescale_slope"] is None else float(f["rescale_slope"])
        icpt = 0.0 if f["rescale_intercept"] is None else float(f["rescale_intercept"])
        a, b = sorted((smin * slope + icpt, smax * slope + icpt))
        lo, hi = min(lo, a), max(hi, b)
        integral = integral and float(slope).is_integer() and float(icpt).is_integer()
    return SeriesRecord(
        series_id=series_id,
        series_uid=first["series_uid"],
        study_uid=first["study_uid"] or "",
        patient_id=first["patient_id"] or "",
        frame_uid=first["frame_uid"] or "",
        modality=first["modality"] or "",
        description=first["description"] or "",
        series_number=int(first["series_number"] or 0),
        n_instances=len(members),
        n_slices=sum(int(f["n_frames"] or 1) for f in members),
        rows=int(first["rows"]),
        cols=int(first["cols"]),
        spacing=(float(ps[1]), float(ps[0]), abs(dz) if dz else 1.0),
        orientation=tuple(float(x) for x in iop),
        plane=plane_of(iop),
        files=tuple(f["path"] for f in members),
        samples_per_pixel=int(first["samples_per_pixel"] or 1),
        positions=tuple(positions),
        value_range=(float(lo), float(hi)),
        integer_values=integral,
        fingerprint=hashlib.sha256(
            json.dumps([(f["path"], f["size"], f["mtime_ns"]) for f in members]).encode()).hexdigest(),
        file_stats=tuple((int(f["size"]), int(f["mtime_ns"])) for f in members),
        frame_order=frame_order,
        problems=tuple((f["path"], f["problem"]) for f in members if f["problem"]),
        duplicates=tuple(d for f in members for d in dropped.get(f["path"], ())),
        has_geometry=has_geometry,
        photometric=first["photometric"] or "",
        uniform_rescale=len(encodings) == 1,
    )


def select_series(series: Sequence[SeriesRecord], rules: Any) -> tuple[list[SeriesRecord], list[tuple[str, str]]]:
    """Apply a :class:`~lightning_dicom.config.SelectionConfig`.

    Returns ``(kept, dropped)`` where ``dropped`` is ``(series_id, reason)``.
    """
    import re

    keep_desc = re.compile(rules.description, re.IGNORECASE) if rules.description else None
    drop_desc = re.compile(rules.exclude_description, re.IGNORECASE) if rules.exclude_description else None
    modalities = {m.upper() for m in rules.modalities} if rules.modalities else None
    kept, dropped = [], []
    for s in series:
        reason = None
        if modalities is not None and s.modality not in modalities:
            reason = f"modality {s.modality or '?'} not in {sorted(modalities)}"
        elif s.n_slices < rules.min_slices:
            reason = f"{s.n_slices} slices < min_slices {rules.min_slices}"
        elif keep_desc is not None and not keep_desc.search(s.description):
            reason = "description does not match"
        elif drop_desc is not None and drop_desc.search(s.description):
            reason = "description excluded"
        elif rules.orientations and s.plane not in rules.orientations:
            reason = f"plane {s.plane} not in {rules.orientations}"
        if reason:
            dropped.append((s.series_id, reason))
        else:
            kept.append(s)
    return kept, dropped
