"""One file's header: read it (pydicom, no pixel data), check it, and turn it into an index row.

:func:`read_header` parses everything up to the Pixel Data element (``stop_before_pixels``) and
keeps the fields listed in :data:`HEADER_FIELDS`; :func:`scan_file` wraps it into one row of the
index's ``files`` table and never raises (a bad file becomes a ``skipped`` row with a reason).

Plainly well-formed Part-10 files (little endian, defined lengths or well-nested sequences, the tags
below in their dictionary VR and plain formats) are parsed by a small reader here, about 7x faster
than pydicom's ``dcmread`` and attribute access; every other file, and every file that a check
rejects, is read by pydicom, so that results and messages are pydicom's in all cases
(tests/test_header.py compares both readers).

Files without the Part-10 preamble and file meta (a raw dataset, as some older systems write
them) are read too: when pydicom finds no ``DICM`` marker, a file whose first element is in group
0002 or 0008 is parsed again with ``force=True`` (implicit/explicit VR and byte order guessed by
pydicom), and kept only when it holds a valid SOPClassUID (0008,0016); anything else (text,
random bytes, archives) is "not a DICOM file". The transfer syntax of such a file is the encoding
pydicom found (it cannot be compressed: nothing would name the codec).

Tags read (all optional unless said otherwise):

* identity: SOPClassUID (0008,0016) (else MediaStorageSOPClassUID (0002,0002)), SOPInstanceUID
  (0008,0018), PatientID (0010,0020), StudyInstanceUID (0020,000D), SeriesInstanceUID (0020,000E)
  (required), FrameOfReferenceUID (0020,0052), Modality (0008,0060), SeriesDescription
  (0008,103E), SeriesNumber (0020,0011), InstanceNumber (0020,0013), TransferSyntaxUID (0002,0010);
  DirectoryRecordSequence (0004,1220) marks a DICOMDIR;
* image pixel module: Rows (0028,0010) and Columns (0028,0011) (required, 1..65535),
  NumberOfFrames (0028,0008), SamplesPerPixel (0028,0002), PhotometricInterpretation (0028,0004),
  BitsAllocated (0028,0100) (required: 1, 8, 16, 32 or 64), BitsStored (0028,0101), HighBit
  (0028,0102) (kept, never checked), PixelRepresentation (0028,0103), RescaleSlope (0028,1053),
  RescaleIntercept (0028,1052);
* geometry: ImageOrientationPatient (0020,0037) (two orthogonal unit vectors, re-orthonormalised
  when off by less than :data:`IOP_TOLERANCE`), ImagePositionPatient (0020,0032), PixelSpacing
  (0028,0030), SliceThickness (0018,0050), SpacingBetweenSlices (0018,0088);
* enhanced multi-frame: the same geometry and rescale tags inside SharedFunctionalGroupsSequence
  (5200,9229) and PerFrameFunctionalGroupsSequence (5200,9230) items -- PlaneOrientationSequence
  (0020,9116), PlanePositionSequence (0020,9113), PixelMeasuresSequence (0028,9110),
  PixelValueTransformationSequence (0028,9145);
* acquisition attributes (``acq``, JSON): see :mod:`lightning_dicom.dicom.acquisition`;
* geometry kept elsewhere: Siemens mosaics (ImageType (0008,0008) MOSAIC, CSA header; the tiles become
  frames: :mod:`~lightning_dicom.dicom.mosaic`), NM DetectorInformationSequence (0054,0022), a signed
  SpacingBetweenSlices, NM frames that are not slices (``not_a_stack``: :mod:`~lightning_dicom.dicom.nm`);
* Pixel Data (7FE0,0010): its element header is read from the file (not its value) to check that
  the file holds Rows x Columns x frames x samples x BitsAllocated bits (native transfer syntaxes)
  or that every fragment of encapsulated data lies inside the file. A file failing this, or using
  an encoding GDCM decodes wrongly, keeps its place in its series with ``problem`` set. The file
  offset of native pixel data is kept (``pixel_offset``): the reader reads plain pixels from there.

Values that go into error messages are geometry and pixel-module tags only, never PHI.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import struct
import warnings
from typing import Any, BinaryIO

import numpy as np

from lightning_dicom.dicom import nm, uids
from lightning_dicom.dicom.acquisition import acquisition_fields
from lightning_dicom.dicom.mosaic import is_mosaic, mosaic_layout, tile_shape
from lightning_dicom.dicom.parser import CHUNK as _CHUNK  # noqa: F401 - tests size files by it
from lightning_dicom.dicom.parser import fast_dataset, fast_reader_available
from lightning_dicom.dicom.pixel_data import decoder_problem, pixel_data_problem, raw_problem
from lightning_dicom.errors import NotDicomError

__all__ = [
    "HEADER_FIELDS",
    "IOP_TOLERANCE",
    "MAX_COORDINATE_MM",
    "MAX_SPACING_MM",
    "MIN_SPACING_MM",
    "encodable_path",
    "read_header",
    "scan_file",
    "scan_files",
]

log = logging.getLogger(__name__)

#: Header fields the index keeps, in the order of the ``files`` table's columns.
HEADER_FIELDS = (
    "sop_class_uid",
    "sop_uid",
    "patient_id",
    "study_uid",
    "series_uid",
    "frame_uid",
    "modality",
    "description",
    "series_number",
    "instance_number",
    "rows",
    "cols",
    "n_frames",
    "iop",
    "ipp",
    "pixel_spacing",
    "slice_thickness",
    "samples_per_pixel",
    "photometric",
    "bits_stored",
    "pixel_representation",
    "rescale_slope",
    "rescale_intercept",
    "transfer_syntax",
    "bits_allocated",
    "slice_gap",
    "frame_ipps",
    "problem",
    "high_bit",
    "pixel_offset",
    "acq",
    # -- geometry from other places (issue 10): mosaics, NM frames --
    "mosaic_grid",
    "not_a_stack",
    # -- series rules (issue 14): ContrastBolusAgent (0018,0010) --
    "contrast_agent",
)

_NON_IMAGE_HINT = (
    "RT Plan",
    "RT Structure",
    "RT Dose",
    "Structured Report",
    "SR Storage",
    "Presentation State",
    "Raw Data",
    "Encapsulated",
    "Key Object",
    "Segmentation",
)

#: Tolerances on ImageOrientationPatient: |norm - 1| and |row . col| above these are rejected.
IOP_TOLERANCE = 1e-2
#: Largest absolute coordinate (mm) accepted in ImagePositionPatient, and largest PixelSpacing.
MAX_COORDINATE_MM = 1e7
MAX_SPACING_MM = 1e5
MIN_SPACING_MM = 1e-6

_NOT_DICOM = "not a DICOM file (no DICM preamble or valid header)"
#: Groups a raw dataset (no preamble, no file meta) may start with: file meta, or identification.
_RAW_FIRST_GROUPS = (0x0002, 0x0008)
_UID = re.compile(r"[0-9]+(\.[0-9]+)*")
#: (implicit VR, little endian) of a raw dataset -> the transfer syntax it is written in.
_RAW_SYNTAX = {
    (True, True): uids.IMPLICIT_VR_LITTLE_ENDIAN,
    (False, True): uids.EXPLICIT_VR_LITTLE_ENDIAN,
    (False, False): uids.EXPLICIT_VR_BIG_ENDIAN,
}


def _floats(value: Any, n: int) -> list[float] | None:
    """``n`` finite floats from a multi-valued element, or None when absent or malformed."""
    try:
        out = [float(x) for x in value]
    except (TypeError, ValueError):
        return None
    return out if len(out) == n and all(math.isfinite(x) for x in out) else None


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
            f"(|row|={nr:.4g}, |col|={nc:.4g}, row.col={float(row @ col):.4g})",
            path=path,
        )
    row = row / nr
    col = col - (col @ row) * row
    col = col / np.linalg.norm(col)
    return [float(x) for x in (*row, *col)]


def _element(
    ds: Any,
    keyword: str,
    n: int,
    path: str,
    *,
    positive: bool = False,
    limit: float = MAX_COORDINATE_MM,
    tag: str = "",
) -> list[float] | None:
    """A multi-valued numeric element: None when absent, NotDicomError when present but invalid."""
    if not _present(ds, keyword):
        return None
    try:
        raw = ds.get(keyword)
    except Exception:
        raw = None
    vals = _floats(raw, n)
    if (
        vals is None
        or any(abs(v) > limit for v in vals)
        or (positive and any(v < MIN_SPACING_MM for v in vals))
    ):
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
    shorter than the image it declares); such a file still belongs to its series. A raw dataset
    (no preamble nor file meta) is read when it starts like one and holds a valid SOPClassUID.
    ``pixel_offset`` is the byte offset of the value of native (uncompressed) Pixel Data, None for
    encapsulated or deflated data or when ``problem`` is set.

    Well-formed Part-10 files are parsed by a small reader of their own (:func:`_fast_dataset`);
    anything it does not accept goes through pydicom, with identical results.

    Raises:
        NotDicomError: the file is not DICOM, is empty, a DICOMDIR, not an image, or lacks the
            tags needed to place it in a series (or has invalid ones).
        OSError: the file cannot be opened.
    """
    path = str(path)
    with open(path, "rb") as fh:
        header = _fast_header(fh, path) if _FAST else None
        if header is None:
            fh.seek(0)
            header = _pydicom_header(fh, path)
    return header


def _pydicom_header(fh: BinaryIO, path: str) -> dict[str, Any]:
    """:func:`read_header` through pydicom (any file pydicom reads, with or without file meta)."""
    ds, raw = _read_dataset(fh, path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            header = _header_fields(ds, path)
            if raw and not header["transfer_syntax"]:
                header["transfer_syntax"] = _raw_syntax(ds)
            try:
                implicit, little = ds.original_encoding
            except (AttributeError, TypeError):
                implicit, little = (
                    bool(getattr(ds, "is_implicit_VR", False)),
                    bool(getattr(ds, "is_little_endian", True)),
                )
            _finish(fh, header, implicit, little is not False, raw=raw)
    except NotDicomError:
        raise
    except Exception as err:  # a value pydicom parses lazily and cannot convert
        raise NotDicomError(f"malformed header value ({type(err).__name__})", path=path) from None
    return header


def _finish(fh: BinaryIO, header: dict[str, Any], implicit: bool, little: bool, *, raw: bool) -> None:
    """Set ``problem`` and ``pixel_offset`` of a header, ``fh`` standing on the Pixel Data tag."""
    size = os.fstat(fh.fileno()).st_size
    problem, offset = pixel_data_problem(fh, implicit, little, header, size, raw=raw)
    header["problem"] = problem or decoder_problem(header) or (raw_problem(header) if raw else None)
    header["pixel_offset"] = offset if header["problem"] is None else None
    tile_shape(header)  # a mosaic's Rows/Columns/frames become its tiles' (after checking the stored size)


def _read_dataset(fh: BinaryIO, path: str) -> tuple[Any, bool]:
    """The dataset up to Pixel Data, with ``fh`` left on the Pixel Data tag; and whether it is raw
    (read with ``force=True`` because the file has no DICM preamble)."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return pydicom.dcmread(fh, stop_before_pixels=True), False
    except InvalidDicomError:
        pass
    except Exception as err:  # pydicom raises many kinds on corrupt headers
        raise NotDicomError(f"unreadable DICOM header ({type(err).__name__})", path=path) from None
    fh.seek(0)
    if not _starts_like_dataset(fh.read(4)):
        raise NotDicomError(_NOT_DICOM, path=path)
    fh.seek(0)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(fh, stop_before_pixels=True, force=True)
            sop_class = str(ds.get("SOPClassUID", "") or "")
    except Exception:  # whatever pydicom makes of bytes that only start like a dataset
        raise NotDicomError(_NOT_DICOM, path=path) from None
    if len(sop_class) > 64 or not _UID.fullmatch(sop_class):
        raise NotDicomError(_NOT_DICOM, path=path)
    return ds, True


def _starts_like_dataset(head: bytes) -> bool:
    """The first tag of a raw dataset (either byte order) is in a group it can start with; this
    keeps a forced parse off text, archives and random bytes (and off reading a large one)."""
    if len(head) < 4:
        return False
    return any(struct.unpack(order + "H", head[:2])[0] in _RAW_FIRST_GROUPS for order in "<>")


def _raw_syntax(ds: Any) -> str:
    """The transfer syntax of the encoding pydicom found for a raw dataset ("" when unknown)."""
    try:
        return _RAW_SYNTAX.get(tuple(ds.original_encoding), "")
    except (AttributeError, TypeError, ValueError):
        return ""


def _header_fields(ds: Any, path: str) -> dict[str, Any]:  # noqa: C901 - a flat list of tag checks
    try:
        sop_class = str(ds.get("SOPClassUID", "") or ds.file_meta.get("MediaStorageSOPClassUID", ""))
    except Exception:
        sop_class = ""
    try:
        sop_name = ds.SOPClassUID.name if "SOPClassUID" in ds else ""
    except Exception:
        sop_name = ""
    if "DirectoryRecordSequence" in ds or sop_class == uids.MEDIA_STORAGE_DIRECTORY:
        raise NotDicomError("DICOMDIR (a directory of records, not an image)", path=path)
    if not _present(ds, "Rows") or not _present(ds, "Columns"):
        kind = sop_name or sop_class or "unknown SOP class"
        raise NotDicomError(f"no image pixel module: Rows/Columns missing ({kind})", path=path)
    if uids.mask_kind(sop_class):  # SEG of any kind, RTSTRUCT: linked to their series by masks.association
        raise NotDicomError(f"not an image volume ({uids.NAMES[sop_class]})", path=path)
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
    if (iop is None or ipp is None) and "DetectorInformationSequence" in ds:  # NM (0054,0022): dicom/nm.py
        det, where = nm.detector_item(ds), "in DetectorInformationSequence (0054,0022)"
        iop = iop or _element(det, "ImageOrientationPatient", 6, path, limit=1.5, tag=f"(0020,0037) {where}")
        ipp = ipp or _element(det, "ImagePositionPatient", 3, path, tag=f"(0020,0032) {where}")
    spacing = _element(ds, "PixelSpacing", 2, path, positive=True, limit=MAX_SPACING_MM, tag="(0028,0030)")

    def num(value: Any, *, positive: bool = False) -> float | None:
        try:
            out = float(value)
        except (TypeError, ValueError):
            return None
        if not math.isfinite(out) or (positive and out <= 0):
            return None
        return out

    thickness = num(ds.get("SliceThickness"), positive=True)
    gap = num(ds.get("SpacingBetweenSlices")) or None  # signed: NM frames may run against the normal
    slope_raw, icpt_raw = ds.get("RescaleSlope"), ds.get("RescaleIntercept")
    frame_ipps = None
    problem = None
    if "SharedFunctionalGroupsSequence" in ds or "PerFrameFunctionalGroupsSequence" in ds:
        iop_f = _functional(
            ds, "SharedFunctionalGroupsSequence", "PlaneOrientationSequence", "ImageOrientationPatient"
        )
        per_iop = _per_frame(ds, "PlaneOrientationSequence", "ImageOrientationPatient")
        if iop is None and iop_f is None and per_iop and per_iop[0] is not None:
            iop_f = per_iop[0]
            if any(_floats(v, 6) != _floats(per_iop[0], 6) for v in per_iop):
                problem = "frames have different ImageOrientationPatient (not one volume)"
        if iop is None and iop_f is not None:
            iop = _floats(iop_f, 6)
            if iop is None or any(abs(v) > 1.5 for v in iop):
                raise NotDicomError(
                    "ImageOrientationPatient (0020,0037) in PlaneOrientationSequence "
                    f"must be 6 finite numbers (got {_short(iop_f)})",
                    path=path,
                )
        for seq in ("SharedFunctionalGroupsSequence", "PerFrameFunctionalGroupsSequence"):
            if spacing is None:
                ps = _functional(ds, seq, "PixelMeasuresSequence", "PixelSpacing")
                if ps is not None:
                    spacing = _floats(ps, 2)
                    if spacing is None or min(spacing) < MIN_SPACING_MM or max(spacing) > MAX_SPACING_MM:
                        raise NotDicomError(
                            f"PixelSpacing (0028,0030) in PixelMeasuresSequence must be 2 "
                            f"positive numbers (got {_short(ps)})",
                            path=path,
                        )
            thickness = thickness or num(
                _functional(ds, seq, "PixelMeasuresSequence", "SliceThickness"), positive=True
            )
            gap = gap or num(
                _functional(ds, seq, "PixelMeasuresSequence", "SpacingBetweenSlices"), positive=True
            )
            if slope_raw is None:
                slope_raw = _functional(ds, seq, "PixelValueTransformationSequence", "RescaleSlope")
                icpt_raw = _functional(ds, seq, "PixelValueTransformationSequence", "RescaleIntercept")
        # per-frame RescaleSlope/Intercept are kept in ``acq`` (frames): each volume is rescaled by its own
        positions = _per_frame(ds, "PlanePositionSequence", "ImagePositionPatient")
        if positions and any(p is not None for p in positions):
            parsed = [_floats(p, 3) for p in positions]
            if any(p is None or max(abs(v) for v in p) > MAX_COORDINATE_MM for p in parsed):
                raise NotDicomError(
                    "ImagePositionPatient (0020,0032) missing or invalid in the "
                    "PlanePositionSequence of some frames",
                    path=path,
                )
            if len(parsed) != n_frames:
                problem = problem or (f"{len(parsed)} per-frame positions for NumberOfFrames {n_frames}")
            else:
                frame_ipps = parsed
                ipp = ipp or parsed[0]
        shared = _floats(
            _functional(
                ds, "SharedFunctionalGroupsSequence", "PlanePositionSequence", "ImagePositionPatient"
            ),
            3,
        )
        if frame_ipps is None and shared and n_frames > 1:  # one shared position: every frame there (2D+t)
            frame_ipps, ipp = [shared] * n_frames, ipp or shared
    iop = _checked_iop(iop, path)
    slope = num(slope_raw)
    icpt = num(icpt_raw)
    if slope_raw not in (None, "") and (slope is None or slope == 0 or abs(slope) > 1e12):
        raise NotDicomError(
            f"RescaleSlope (0028,1053) must be a finite non-zero number (got {_short(slope_raw)})", path=path
        )
    if icpt_raw not in (None, "") and (icpt is None or abs(icpt) > 1e12):
        raise NotDicomError(
            f"RescaleIntercept (0028,1052) must be a finite number (got {_short(icpt_raw)})", path=path
        )

    mosaic: dict[str, Any] = {}
    if is_mosaic(ds):  # Siemens mosaic: a grid of tiles -> slices (dicom/mosaic.py)
        stored: dict[str, Any] = {"rows": rows, "cols": cols, "n_frames": n_frames, "iop": iop, "ipp": ipp}
        stored.update(pixel_spacing=spacing, slice_gap=gap, slice_thickness=thickness)
        mosaic = mosaic_layout(ds, stored, path)
        ipp, frame_ipps, gap = mosaic.get("ipp", ipp), mosaic.get("frame_ipps"), mosaic.get("slice_gap", gap)

    def opt_int(keyword: str) -> int:
        try:
            v = ds.get(keyword)
            return int(float(v)) if v not in (None, "") else 0
        except (TypeError, ValueError, OverflowError):
            return 0

    def lenient_int(keyword: str) -> int | None:
        try:
            v = ds.get(keyword)
            return int(v) if v not in (None, "") else None
        except Exception:  # informative only (the raw pixel reader's eligibility): never a reason to skip
            return None

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
        "contrast_agent": str(ds.get("ContrastBolusAgent", "") or "").strip(),
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
        "high_bit": lenient_int("HighBit"),
        "pixel_offset": None,
        "acq": json.dumps(acquisition_fields(ds), separators=(",", ":")),
        "mosaic_grid": mosaic.get("mosaic_grid"),
        "_mosaic_tiles": mosaic.get("_mosaic_tiles"),
        "not_a_stack": nm.frames_problem(ds, n_frames),
    }


# -- the fast reader (lightning_dicom.dicom.parser) --------------------------------------------------
#: Switch for tests: False sends every file through pydicom.
_FAST = fast_reader_available()


def _fast_header(fh: BinaryIO, path: str) -> dict[str, Any] | None:
    """:func:`read_header` by the fast reader, or None when pydicom has to read the file."""
    from pydicom import config

    if (
        config.settings.reading_validation_mode == config.RAISE
        or config.use_DS_numpy
        or config.use_IS_numpy
        or config.use_none_as_empty_text_VR_value
    ):
        return None
    try:
        ds, implicit, pixel_pos = fast_dataset(fh)
        header = _header_fields(ds, path)
        if ds.unknown:
            return None
        fh.seek(pixel_pos)
        _finish(fh, header, implicit, True, raw=False)
    except Exception:  # _Fallback, a check that rejects the file, or anything unexpected: pydicom decides
        return None
    return header


def _skipped_row(path: str, size: int, mtime: int, reason: str) -> tuple:
    return (path, size, mtime, "skipped", reason, *([None] * len(HEADER_FIELDS)))


def scan_file(item: tuple[str, int, int]) -> tuple:
    """One row of the index's files table for ``(path, size, mtime_ns)``: ``(path, size, mtime, status,
    reason, *HEADER_FIELDS)``. Never raises (an unexpected error becomes a skip reason)."""
    path, size, mtime = item
    if size < 0:
        return _skipped_row(path, size, mtime, "cannot stat (broken symlink or symlink loop)")
    if size == 0:
        return _skipped_row(path, size, mtime, "empty file (0 bytes)")
    if not encodable_path(path):
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
    return (path, size, mtime, "ok", None, *(h[f] for f in HEADER_FIELDS))


def scan_files(items: list[tuple[str, int, int]]) -> list[tuple]:
    """:func:`scan_file` of each item (one task of a process pool)."""
    return [scan_file(i) for i in items]


def encodable_path(path: str) -> bool:
    """The file name can be stored as UTF-8 (no undecodable bytes)."""
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
