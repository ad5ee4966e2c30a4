"""Index of a DICOM tree: header-only scan, persisted in SQLite, grouped into series.

A scan walks one or more folders (any nesting, any file names; symlinked folders are not
followed, so loops cannot hang it) and reads each file's header with pydicom
(``stop_before_pixels``; :mod:`lightning_dicom.dicom.header` lists the tags read and checked). Every
file ends up in the ``files`` table, either ``ok`` with its header fields or ``skipped`` with a
reason. The table is keyed on the path and remembers size and mtime, so a re-scan of an unchanged
tree reads no header again. Source files are only ever opened for reading.

What the scan checks (cheaply, without decoding pixels):

* the header parses (a raw dataset without the Part-10 preamble and file meta too), holds an
  image pixel module and a SeriesInstanceUID, and is not a DICOMDIR or a non-image object (RT
  plan/dose/structure set, SR, segmentation, ...); else ``skipped``;
* ImageOrientationPatient is two (nearly) orthogonal unit vectors (re-orthonormalised when off by
  less than 1e-2), ImagePositionPatient and PixelSpacing are finite (spacing > 0); else ``skipped``;
* the Pixel Data element is complete: for native (uncompressed) transfer syntaxes the file holds at
  least Rows x Columns x frames x samples x BitsAllocated bits, for encapsulated ones every fragment
  is inside the file. A file that fails this is kept (``ok``, ``problem`` set) so that its series
  exists and reading it raises a :class:`~lightning_dicom.errors.SeriesError` naming the file.

Series are derived from the table: instances are grouped by SeriesInstanceUID (0020,000E); within
a UID, instances whose ImageOrientationPatient (0020,0037), Rows x Columns or SamplesPerPixel differ
(localizers, scouts) become separate sub-volumes, and each multi-frame file (a Siemens mosaic is
one: its tiles are frames), and each 2D image without ImagePositionPatient/ImageOrientationPatient
(CR, secondary captures), is its own volume. Slices of a CT/MR/PT series that lack position or
orientation stay one volume, which the reader refuses naming the missing tag
(:mod:`~lightning_dicom.dicom.stack_geometry`). A series' slices are ordered by ImagePositionPatient (0020,0032) projected on the slice
normal, never by file name or InstanceNumber; the frames of a multi-frame file likewise, from the
per-frame PlanePositionSequence when present.

Duplicate instances: files that hold the same instance (same SOPInstanceUID, position, size and
pixel format -- a folder copied twice, or one image saved in several transfer syntaxes) count
once. The copy kept is the first of: no pixel-data problem, uncompressed, lossless, lossy transfer
syntax, then path order; the others are listed in :attr:`SeriesRecord.duplicates` and
``report()["duplicates"]``.

PatientID (0010,0020) is never stored: the index keeps its keyed pseudonym
(:func:`~lightning_dicom.dicom.pseudonym.pseudonym`, HMAC-SHA256 with the project's key in
``<work_dir>/pseudonym.key``), which groups the split and is what reports show. The index file is
created readable by its owner only.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import secrets
import sqlite3
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lightning_dicom.dicom import uids
from lightning_dicom.dicom.header import HEADER_FIELDS, encodable_path, read_header, scan_file, scan_files
from lightning_dicom.dicom.pseudonym import private_dir, private_file, project_key, pseudonym
from lightning_dicom.dicom.stack_geometry import missing_geometry, slice_of_stack
from lightning_dicom.typing import SpacingXYZ

__all__ = ["DicomIndex", "ScanReport", "SeriesRecord", "patient_key", "read_header", "select_series"]

log = logging.getLogger(__name__)

SCHEMA_VERSION = (
    5  # 3: high_bit, pixel_offset; 4: mosaic_grid, not_a_stack; 5: patient_id is the keyed pseudonym
)

_COLUMNS = ("path", "size", "mtime_ns", "status", "reason", *HEADER_FIELDS)
_UNCOMPRESSED = uids.UNCOMPRESSED_SYNTAXES
#: Native little-endian transfer syntaxes: pixel data lies in the file as it is read (implicit, explicit VR).
_NATIVE_LITTLE_ENDIAN = uids.NATIVE_LITTLE_ENDIAN
_LOSSLESS = uids.LOSSLESS_SYNTAXES


def patient_key(patient_id: str | None, key: bytes) -> str:
    """The keyed pseudonym of a PatientID under a project's key (:func:`.pseudonym.pseudonym`), safe to
    print; '' when there is no ID."""
    return pseudonym(patient_id, key)


def _db_key(path: str) -> str:
    """The path as stored in SQLite (undecodable bytes of a file name are escaped)."""
    if encodable_path(path):
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
    """Keyed pseudonym of PatientID (0010,0020) (:func:`patient_key`), '' without an ID: never the ID."""
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
    raw_pixels: tuple[tuple[int, int, int, int, float, float], ...] = field(default=(), repr=False)
    """(Pixel Data value offset, BitsAllocated, BitsStored, PixelRepresentation, RescaleSlope,
    RescaleIntercept) of each file, in ``files`` order, when every file is a single-frame MONOCHROME2
    image with native little-endian pixel data the index found complete (then the reader reads the
    pixels straight from the files); empty otherwise."""
    # -- geometry from other places (issue 10; lightning_dicom.dicom.mosaic, .nm, .stack_geometry) --
    mosaic_grid: int = 0
    """Siemens mosaic: tiles per side of the stored image (its ``n_slices`` tiles of ``rows x cols``
    are unpacked by the reader); 0 otherwise."""
    geometry_problem: str = ""
    """Why the files cannot be placed as one 3D volume (missing ImagePositionPatient or orientation in
    a stack, NM frames that are not slices); the reader refuses the volume with this reason."""

    @property
    def patient_key(self) -> str | None:
        """The patient pseudonym for reports; None when the series has no PatientID."""
        return self.patient_id or None

    def summary(self) -> dict[str, Any]:
        """A PHI-free description (for reports, split files and batch metadata)."""
        return {
            "series_id": self.series_id,
            "series_uid": self.series_uid,
            "study_uid": self.study_uid,
            "patient_key": self.patient_key,
            "modality": self.modality,
            "description": self.description,
            "n_instances": self.n_instances,
            "n_slices": self.n_slices,
            "rows": self.rows,
            "cols": self.cols,
            "spacing": list(self.spacing),
            "plane": self.plane,
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
    for dirpath, dirnames, filenames in os.walk(
        root, followlinks=False, onerror=lambda e: log.warning("cannot list %s: %s", e.filename, e.strerror)
    ):
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
        pseudonym_key: key of the PatientID pseudonyms; default the work dir's (``<db_path's
            folder>/pseudonym.key``, created once), or random for an index in memory.
    """

    def __init__(
        self,
        roots: Iterable[str | os.PathLike[str]],
        db_path: str | os.PathLike[str] | None = None,
        pseudonym_key: bytes | None = None,
    ):
        if isinstance(roots, (str, os.PathLike)):
            roots = [roots]
        self.roots = [_resolved(Path(r)) for r in roots]
        self.db_path = Path(db_path) if db_path is not None else None
        if self.db_path is not None:
            private_dir(self.db_path.parent)
        #: key of the PatientID pseudonyms: the work dir's (stable within a project), random in memory
        self.pseudonym_key = pseudonym_key or (
            project_key(self.db_path.parent) if self.db_path is not None else secrets.token_bytes(32)
        )
        self._db = sqlite3.connect(str(self.db_path) if self.db_path else ":memory:", timeout=60)
        if self.db_path is not None:
            private_file(self.db_path)  # SQLite gives its -wal/-shm files the database's permissions
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
        pid = _COLUMNS.index("patient_id")
        rows = [
            (_db_key(r[0]), *r[1:pid], pseudonym(r[pid], self.pseudonym_key), *r[pid + 1 :])
            for r in self._read_headers(todo, workers=workers, progress=progress)
        ]
        marks = ",".join("?" * len(_COLUMNS))
        self._db.executemany(f"INSERT OR REPLACE INTO files ({','.join(_COLUMNS)}) VALUES ({marks})", rows)
        self._db.commit()
        report = ScanReport(len(seen), len(todo), len(removed), time.perf_counter() - t0)
        log.info(
            "indexed %d files (%d headers read, %d removed) in %.2f s",
            report.n_files,
            report.n_read,
            report.n_removed,
            report.seconds,
        )
        return report

    @staticmethod
    def _read_headers(
        todo: list[tuple[str, int, int]], *, workers: int | None, progress: bool
    ) -> list[tuple]:
        from tqdm import tqdm

        workers = workers or os.cpu_count() or 1
        bar = tqdm(total=len(todo), desc="indexing", unit="file", disable=not progress or not todo)
        out: list[tuple] = []
        if workers <= 1 or len(todo) < 256:
            for item in todo:
                out.append(scan_file(item))
                bar.update()
        else:
            chunk = max(16, min(512, len(todo) // (workers * 8)))
            chunks = [todo[i : i + chunk] for i in range(0, len(todo), chunk)]
            with ProcessPoolExecutor(workers) as pool:
                for res in pool.map(scan_files, chunks):
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
            if (f["n_frames"] or 1) > 1 or not slice_of_stack(f):
                key: tuple = (uid, f["path"])  # 2D image or multi-frame file: a volume of its own
            else:  # a slice (without position or orientation too: refused as one volume, never split)
                key = (
                    uid,
                    _cluster(iop_reps[uid], json.loads(f["iop"])) if f["iop"] else -1,
                    f["rows"],
                    f["cols"],
                    f["samples_per_pixel"],
                )
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
        return {
            "series": [s.summary() for s in self.series()],
            "skipped": dict(reasons),
            "duplicates": self.duplicates(),
            "problems": dict(problems),
        }


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
        key = (
            f["series_uid"],
            f["sop_uid"],
            f["rows"],
            f["cols"],
            f["n_frames"],
            f["samples_per_pixel"],
            f["bits_allocated"],
            f["bits_stored"],
            f["pixel_representation"],
            f["ipp"],
            f["iop"],
            f["frame_ipps"],
        )
        by_instance[key].append(f)
    dropped: dict[str, list[str]] = {}
    for copies in by_instance.values():
        copies.sort(key=lambda f: (f["problem"] is not None, _syntax_rank(f["transfer_syntax"]), f["path"]))
        kept.append(copies[0])
        if len(copies) > 1:
            dropped[copies[0]["path"]] = [f["path"] for f in copies[1:]]
    kept.sort(key=lambda f: f["path"])
    return kept, dropped


def _raw_pixel_layout(f: dict[str, Any]) -> tuple[int, int, int, int, float, float] | None:
    """A file's entry of :attr:`SeriesRecord.raw_pixels`, or None when its pixels must be decoded by GDCM:
    anything but one frame of one sample (MONOCHROME2) of 8 or 16 bits (8 stored of 8 allocated, HighBit
    = BitsStored - 1), native little endian, with complete pixel data."""
    bits, stored = f["bits_allocated"], f["bits_stored"]
    if (
        f["pixel_offset"] is None
        or f["problem"]
        or f["transfer_syntax"] not in _NATIVE_LITTLE_ENDIAN
        or (f["n_frames"] or 1) != 1
        or f["samples_per_pixel"] != 1
        or f["photometric"] != "MONOCHROME2"
        or bits not in (8, 16)
        or (bits == 8 and stored != 8)
        or f["high_bit"] != stored - 1
    ):
        return None
    slope = 1.0 if f["rescale_slope"] is None else float(f["rescale_slope"])
    icpt = 0.0 if f["rescale_intercept"] is None else float(f["rescale_intercept"])
    return int(f["pixel_offset"]), int(bits), int(stored), int(f["pixel_representation"] or 0), slope, icpt


def _make_series(
    series_id: str, members: list[dict[str, Any]], dropped: dict[str, list[str]]
) -> SeriesRecord:
    first = members[0]
    has_geometry = bool(first["iop"]) and bool(first["ipp"])
    iop = json.loads(first["iop"]) if first["iop"] else [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    normal = np.cross(iop[:3], iop[3:])
    n_frames = int(first["n_frames"] or 1)
    if n_frames > 1:
        fallback_dz = float(first["slice_gap"] or first["slice_thickness"] or 1.0)
        fallback_dz = fallback_dz if has_geometry else abs(fallback_dz)  # no position: origin 0, file order
    else:
        fallback_dz = float(first["slice_thickness"] or first["slice_gap"] or 1.0)
    frame_order: tuple[int, ...] = ()
    if n_frames > 1:  # one multi-frame file
        if first["frame_ipps"]:
            pts = np.asarray(json.loads(first["frame_ipps"]), dtype=float)
        else:  # classic multi-frame: frames contiguous along the normal in file order, by the signed
            # SpacingBetweenSlices (negative in NM: frame k at IPP - k |gap| normal, as GDCM reads it)
            origin = np.asarray(json.loads(first["ipp"]), dtype=float) if first["ipp"] else np.zeros(3)
            pts = origin + np.outer(np.arange(n_frames) * fallback_dz, normal)
        order = np.argsort(pts @ normal, kind="stable")
        pts = pts[order]
        if not np.array_equal(order, np.arange(n_frames)):
            frame_order = tuple(int(i) for i in order)
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
        encodings.add(
            (f["rescale_slope"], f["rescale_intercept"], f["bits_stored"], f["pixel_representation"])
        )
        bits = int(f["bits_stored"] or 16)
        smin, smax = (
            (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if f["pixel_representation"] else (0, 2**bits - 1)
        )
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
        positions=tuple((p[0], p[1], p[2]) for p in positions),
        value_range=(float(lo), float(hi)),
        integer_values=integral,
        fingerprint=hashlib.sha256(
            json.dumps([(f["path"], f["size"], f["mtime_ns"]) for f in members]).encode()
        ).hexdigest(),
        file_stats=tuple((int(f["size"]), int(f["mtime_ns"])) for f in members),
        frame_order=frame_order,
        problems=tuple((f["path"], f["problem"]) for f in members if f["problem"]),
        duplicates=tuple(d for f in members for d in dropped.get(f["path"], ())),
        has_geometry=has_geometry,
        photometric=first["photometric"] or "",
        uniform_rescale=len(encodings) == 1,
        raw_pixels=_raw_pixels(members) if n_frames == 1 else (),
        mosaic_grid=int(first["mosaic_grid"] or 0),
        geometry_problem=(first["not_a_stack"] or "") if n_frames > 1 else missing_geometry(members),
    )


def _raw_pixels(members: list[dict[str, Any]]) -> tuple[tuple[int, int, int, int, float, float], ...]:
    layouts = [_raw_pixel_layout(f) for f in members]
    return tuple(layouts) if all(lay is not None for lay in layouts) else ()  # type: ignore[arg-type]


def select_series(
    series: Sequence[SeriesRecord], rules: Any
) -> tuple[list[SeriesRecord], list[tuple[str, str]]]:
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
