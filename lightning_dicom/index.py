"""Index of a DICOM tree: header-only scan, persisted in SQLite, grouped into series.

A scan walks one or more folders (any nesting, any file names; symlinked folders are not
followed, so loops cannot hang it) and reads each file's header with pydicom
(``stop_before_pixels``). Every file ends up in the ``files`` table, either ``ok`` with its header
fields or ``skipped`` with a reason. The table is keyed on the path and remembers size and mtime,
so a re-scan of an unchanged tree reads no header again.

Series are derived from the table: instances are grouped by SeriesInstanceUID (0020,000E); within
a UID, instances whose ImageOrientationPatient (0020,0037) or Rows x Columns differ (localizers)
become separate sub-volumes, and each multi-frame file is its own volume. A series' files are
ordered by ImagePositionPatient (0020,0032) projected on the slice normal, never by file name or
InstanceNumber.

Patient IDs are stored (they group the split) but never printed: reports show
:func:`patient_key`, a one-way hash.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sqlite3
import time
import warnings
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import NotDicomError
from .typing import SpacingXYZ

__all__ = ["DicomIndex", "ScanReport", "SeriesRecord", "patient_key", "read_header", "select_series"]

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1

#: Header tags read during indexing (everything up to pixel data is parsed; these are kept).
_FIELDS = (
    "sop_class_uid", "sop_uid", "patient_id", "study_uid", "series_uid", "frame_uid", "modality",
    "description", "series_number", "instance_number", "rows", "cols", "n_frames", "iop", "ipp",
    "pixel_spacing", "slice_thickness", "samples_per_pixel", "photometric", "bits_stored",
    "pixel_representation", "rescale_slope", "rescale_intercept", "transfer_syntax",
)
_COLUMNS = ("path", "size", "mtime_ns", "status", "reason", *_FIELDS)

_NON_IMAGE_HINT = ("RT Plan", "RT Structure", "RT Dose", "Structured Report", "SR Storage",
                   "Presentation State", "Raw Data", "Encapsulated", "Key Object", "Segmentation")


def patient_key(patient_id: str | None) -> str:
    """A short one-way pseudonym of a PatientID, safe to print (never log the ID itself)."""
    return hashlib.sha256((patient_id or "").encode()).hexdigest()[:10]


def _floats(value: Any, n: int) -> list[float] | None:
    try:
        out = [float(x) for x in value]
    except (TypeError, ValueError):
        return None
    return out if len(out) == n and all(np.isfinite(out)) else None


def read_header(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read the fields the index keeps from one file's header (pixel data is not read).

    Raises:
        NotDicomError: the file is not DICOM, is empty, a DICOMDIR, not an image, or lacks the
            tags needed to place it in a series.
    """
    import pydicom
    from pydicom.errors import InvalidDicomError

    path = str(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(path, stop_before_pixels=True)
    except InvalidDicomError:
        raise NotDicomError("not a DICOM file (no DICM preamble or valid header)", path=path) from None
    except Exception as err:  # pydicom raises many kinds on corrupt headers
        raise NotDicomError(f"unreadable DICOM header ({type(err).__name__})", path=path) from None
    sop_class = str(ds.get("SOPClassUID", "") or ds.file_meta.get("MediaStorageSOPClassUID", ""))
    try:
        sop_name = ds.SOPClassUID.name if "SOPClassUID" in ds else ""
    except Exception:
        sop_name = ""
    if "DirectoryRecordSequence" in ds or sop_class == "1.2.840.10008.1.3.10":
        raise NotDicomError("DICOMDIR (a directory of records, not an image)", path=path)
    if "Rows" not in ds or "Columns" not in ds:
        kind = sop_name or sop_class or "unknown SOP class"
        raise NotDicomError(f"no image pixel module: Rows/Columns missing ({kind})", path=path)
    if any(h in sop_name for h in _NON_IMAGE_HINT):
        raise NotDicomError(f"not an image volume ({sop_name})", path=path)
    series_uid = str(ds.get("SeriesInstanceUID", "") or "")
    if not series_uid:
        raise NotDicomError("missing SeriesInstanceUID (0020,000E)", path=path)
    try:
        n_frames = int(ds.get("NumberOfFrames", 1) or 1)
    except (TypeError, ValueError):
        n_frames = 1
    iop = _floats(ds.get("ImageOrientationPatient"), 6)
    ipp = _floats(ds.get("ImagePositionPatient"), 3)
    spacing = _floats(ds.get("PixelSpacing"), 2)
    if iop is None or ipp is None:  # enhanced multi-frame: geometry in functional groups
        shared = ds.get("SharedFunctionalGroupsSequence")
        per = ds.get("PerFrameFunctionalGroupsSequence")
        try:
            if iop is None and shared:
                iop = _floats(shared[0].PlaneOrientationSequence[0].ImageOrientationPatient, 6)
            if ipp is None and per:
                ipp = _floats(per[0].PlanePositionSequence[0].ImagePositionPatient, 3)
            if spacing is None and shared:
                spacing = _floats(shared[0].PixelMeasuresSequence[0].PixelSpacing, 2)
        except (AttributeError, IndexError, KeyError):
            pass

    def num(tag: str, default: float | None = None) -> float | None:
        try:
            v = ds.get(tag, default)
            return default if v is None or v == "" else float(v)
        except (TypeError, ValueError):
            return default

    tsyntax = str(getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", "") or "")
    return {
        "sop_class_uid": sop_class,
        "sop_uid": str(ds.get("SOPInstanceUID", "") or ""),
        "patient_id": str(ds.get("PatientID", "") or ""),
        "study_uid": str(ds.get("StudyInstanceUID", "") or ""),
        "series_uid": series_uid,
        "frame_uid": str(ds.get("FrameOfReferenceUID", "") or ""),
        "modality": str(ds.get("Modality", "") or "").upper(),
        "description": str(ds.get("SeriesDescription", "") or ""),
        "series_number": int(num("SeriesNumber", 0) or 0),
        "instance_number": int(num("InstanceNumber", 0) or 0),
        "rows": int(ds.Rows),
        "cols": int(ds.Columns),
        "n_frames": n_frames,
        "iop": json.dumps(iop) if iop else None,
        "ipp": json.dumps(ipp) if ipp else None,
        "pixel_spacing": json.dumps(spacing) if spacing else None,
        "slice_thickness": num("SliceThickness"),
        "samples_per_pixel": int(num("SamplesPerPixel", 1) or 1),
        "photometric": str(ds.get("PhotometricInterpretation", "") or ""),
        "bits_stored": int(num("BitsStored", 16) or 16),
        "pixel_representation": int(num("PixelRepresentation", 0) or 0),
        "rescale_slope": num("RescaleSlope", 1.0),
        "rescale_intercept": num("RescaleIntercept", 0.0),
        "transfer_syntax": tsyntax,
    }


def _scan_one(item: tuple[str, int, int]) -> tuple:
    path, size, mtime = item
    if size == 0:
        return (path, size, mtime, "skipped", "empty file (0 bytes)", *([None] * len(_FIELDS)))
    try:
        h = read_header(path)
    except NotDicomError as err:
        return (path, size, mtime, "skipped", err.reason, *([None] * len(_FIELDS)))
    except OSError as err:
        return (path, size, mtime, "skipped", f"cannot open ({err.strerror or type(err).__name__})",
                *([None] * len(_FIELDS)))
    return (path, size, mtime, "ok", None, *(h[f] for f in _FIELDS))


def _scan_chunk(items: list[tuple[str, int, int]]) -> list[tuple]:
    return [_scan_one(i) for i in items]


@dataclass(frozen=True)
class SeriesRecord:
    """One volume: the files of a series (or sub-volume, or multi-frame file), in slice order.

    ``series_id`` equals ``series_uid`` unless one UID holds several volumes (localizers, other
    orientations, several multi-frame files); then it is ``"<uid>#<k>"``, k=1 for the largest.
    ``spacing`` is x-y-z in mm (z from the median gap between sorted slice positions).
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
    """ImagePositionPatient of each file, in ``files`` order (LPS, mm)."""
    value_range: tuple[float, float] = (-32768.0, 32767.0)
    """Smallest and largest modality value the headers allow (stored range x slope + intercept)."""
    integer_values: bool = True
    """True when every RescaleSlope/Intercept is integral (values are integers in modality units)."""
    fingerprint: str = ""
    """sha256 of the files' (path, size, mtime_ns): changes whenever a source file does."""

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
    """Regular files under root: (path, size, mtime_ns). Symlinked folders are not followed."""
    if root.is_file():
        st = root.stat()
        yield str(root), st.st_size, st.st_mtime_ns
        return
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False, onerror=lambda e: log.warning(
            "cannot list %s: %s", e.filename, e.strerror)):
        dirnames.sort()
        for name in sorted(filenames):
            p = os.path.join(dirpath, name)
            try:
                st = os.stat(p)
            except OSError:
                continue  # dangling symlink
            if not os.path.isfile(p):
                continue
            yield p, st.st_size, st.st_mtime_ns


class DicomIndex:
    """A persisted index of one or more DICOM folders.

    Args:
        roots: folders (or files) to scan recursively.
        db_path: SQLite file; ``None`` keeps the index in memory (nothing persisted).
    """

    def __init__(self, roots: Iterable[str | os.PathLike[str]], db_path: str | os.PathLike[str] | None = None):
        self.roots = [Path(r).resolve() for r in roots]
        self.db_path = Path(db_path) if db_path is not None else None
        if self.db_path is not None:
            self.db_path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(self.db_path) if self.db_path else ":memory:", timeout=60)
        self._db.execute("PRAGMA journal_mode=WAL" if self.db_path else "PRAGMA journal_mode=MEMORY")
        cols = ", ".join(f"{c} {'INTEGER' if c in ('size', 'mtime_ns') else ''}" for c in _COLUMNS[1:])
        self._db.execute(f"CREATE TABLE IF NOT EXISTS files (path TEXT PRIMARY KEY, {cols})")
        self._db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
        row = self._db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
        if row is None or int(row[0]) != SCHEMA_VERSION:
            self._db.execute("DELETE FROM files")
            self._db.execute("INSERT OR REPLACE INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
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

        Args:
            workers: processes reading headers (default: CPUs; 1 reads in this process).
            progress: show a tqdm progress bar on stderr.
        """
        t0 = time.perf_counter()
        known = {p: (s, m) for p, s, m in self._db.execute("SELECT path, size, mtime_ns FROM files")}
        seen: set[str] = set()
        todo: list[tuple[str, int, int]] = []
        for root in self.roots:
            for item in _walk(root):
                if item[0] in seen:
                    continue
                seen.add(item[0])
                if known.get(item[0]) != (item[1], item[2]):
                    todo.append(item)
        removed = [p for p in known if p not in seen]
        self._db.executemany("DELETE FROM files WHERE path=?", [(p,) for p in removed])
        rows = self._read_headers(todo, workers=workers, progress=progress)
        marks = ",".join("?" * len(_COLUMNS))
        self._db.executemany(f"INSERT OR REPLACE INTO files ({','.join(_COLUMNS)}) VALUES ({marks})", rows)
        self._db.commit()
        report = ScanReport(len(seen), len(todo), len(removed), time.perf_counter() - t0)
        log.info("indexed %d files (%d headers read, %d removed) in %.2f s",
                 report.n_files, report.n_read, report.n_removed, report.seconds)
        return report

    @staticmethod
    def _read_headers(todo: list[tuple[str, int, int]], *, workers: int | None, progress: bool) -> list[tuple]:
        from tqdm.auto import tqdm

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
        return [dict(zip(_COLUMNS, r)) for r in self._db.execute(q + " ORDER BY path", args)]

    def skipped(self) -> list[tuple[str, str]]:
        """(path, reason) of every file that is not part of a series."""
        return list(self._db.execute("SELECT path, reason FROM files WHERE status='skipped' ORDER BY path"))

    def series(self) -> list[SeriesRecord]:
        """Every volume in the index, ordered by (study, series number, series id)."""
        groups: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
        for f in self.files("ok"):
            iop = tuple(round(x, 3) for x in json.loads(f["iop"])) if f["iop"] else None
            key: tuple = (f["series_uid"], iop, f["rows"], f["cols"])
            if (f["n_frames"] or 1) > 1:
                key = (*key, f["path"])
            groups[key].append(f)
        by_uid: dict[str, list[list[dict[str, Any]]]] = defaultdict(list)
        for key, members in groups.items():
            by_uid[key[0]].append(members)
        out = []
        for uid, volumes in by_uid.items():
            volumes.sort(key=lambda m: (-sum(f["n_frames"] or 1 for f in m), m[0]["path"]))
            for k, members in enumerate(volumes, start=1):
                sid = uid if len(volumes) == 1 else f"{uid}#{k}"
                out.append(_make_series(sid, members))
        out.sort(key=lambda s: (s.study_uid, s.series_number, s.series_id))
        return out

    def report(self) -> dict[str, Any]:
        """PHI-free summary: series table and skipped files grouped by reason."""
        reasons: dict[str, list[str]] = defaultdict(list)
        for path, reason in self.skipped():
            reasons[reason].append(path)
        return {"series": [s.summary() for s in self.series()], "skipped": dict(reasons)}


def _make_series(series_id: str, members: list[dict[str, Any]]) -> SeriesRecord:
    first = members[0]
    iop = json.loads(first["iop"]) if first["iop"] else [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    normal = np.cross(iop[:3], iop[3:])

    def pos(f: dict[str, Any]) -> float:
        return float(np.dot(json.loads(f["ipp"]), normal)) if f["ipp"] else float(f["instance_number"] or 0)

    members = sorted(members, key=lambda f: (pos(f), f["instance_number"] or 0, f["path"]))
    ps = json.loads(first["pixel_spacing"]) if first["pixel_spacing"] else [1.0, 1.0]
    positions = np.array([pos(f) for f in members])
    if len(members) > 1:
        gaps = np.diff(positions)
        dz = float(np.median(gaps)) if np.any(gaps > 0) else float(first["slice_thickness"] or 1.0)
    else:
        dz = float(first["slice_thickness"] or 1.0)
    n_slices = sum(int(f["n_frames"] or 1) for f in members)
    lo, hi, integral = np.inf, -np.inf, True
    for f in members:
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
        n_slices=n_slices,
        rows=int(first["rows"]),
        cols=int(first["cols"]),
        spacing=(float(ps[1]), float(ps[0]), abs(dz) if dz else 1.0),
        orientation=tuple(float(x) for x in iop),
        plane=plane_of(iop),
        files=tuple(f["path"] for f in members),
        samples_per_pixel=int(first["samples_per_pixel"] or 1),
        positions=tuple(tuple(json.loads(f["ipp"])) if f["ipp"] else (0.0, 0.0, 0.0) for f in members),
        value_range=(float(lo), float(hi)),
        integer_values=integral,
        fingerprint=hashlib.sha256(
            json.dumps([(f["path"], f["size"], f["mtime_ns"]) for f in members]).encode()).hexdigest(),
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
