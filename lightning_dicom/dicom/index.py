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
a UID, instances whose SeriesNumber (0020,0011), ImageOrientationPatient (0020,0037), Rows x Columns
or SamplesPerPixel differ (localizers, scouts, a second series number under one UID) form separate
stacks, and each multi-frame file (a Siemens mosaic is one: its tiles are frames), and each 2D image
without ImagePositionPatient/ImageOrientationPatient (CR, secondary captures), is its own stack. Slices
of a CT/MR/PT series that lack position or orientation stay one volume, which the reader refuses naming
the missing tag (:mod:`~lightning_dicom.dicom.stack_geometry`). A stack holding several volumes -- time points,
echoes, b-values, image types, repeated acquisitions, or the frames of an enhanced file -- is split
into volumes by :mod:`lightning_dicom.dicom.volumes` (the rule and its sources are there). A series'
slices are ordered by ImagePositionPatient (0020,0032) projected on the slice normal, never by file
name or InstanceNumber; the frames of a multi-frame file likewise, from the per-frame
PlanePositionSequence when present.

Series ids: a UID that yields one volume keeps the plain UID; otherwise its volumes are
``"<uid>#<k>"``, k = 1, 2, ... over its stacks (the stack with the most slices first, then by first
path) and, within a stack, in the order of dcm2niix's 4th dimension (so ``#1`` is the first time point
of the main stack; several multi-frame files of one stack are ordered the same way).
:attr:`SeriesRecord.temporal_index` is the 0-based index along that dimension among the volumes of the
same echo and image type.

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

import json
import logging
import os
import secrets
import sqlite3
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lightning_dicom.dicom import uids
from lightning_dicom.dicom.header import HEADER_FIELDS, encodable_path, read_header, scan_file, scan_files
from lightning_dicom.dicom.pseudonym import private_dir, private_file, project_key, pseudonym
from lightning_dicom.dicom.record import SeriesRecord, make_series, patient_key, split_rows
from lightning_dicom.dicom.stack_geometry import slice_of_stack
from lightning_dicom.dicom.volumes import Volume

__all__ = ["DicomIndex", "ScanReport", "SeriesRecord", "patient_key", "read_header", "select_series"]

log = logging.getLogger(__name__)

SCHEMA_VERSION = 7  # 3: high_bit, pixel_offset; 4: mosaic_grid, not_a_stack; 5: acq; 6: contrast_agent; 7: keyed patient pseudonym

_COLUMNS = ("path", "size", "mtime_ns", "status", "reason", *HEADER_FIELDS)
_UNCOMPRESSED = uids.UNCOMPRESSED_SYNTAXES
#: Native little-endian transfer syntaxes: pixel data lies in the file as it is read (implicit, explicit VR).
_NATIVE_LITTLE_ENDIAN = uids.NATIVE_LITTLE_ENDIAN
_LOSSLESS = uids.LOSSLESS_SYNTAXES


def _db_key(path: str) -> str:
    """The path as stored in SQLite (undecodable bytes of a file name are escaped)."""
    if encodable_path(path):
        return path
    return path.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


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
        """Every volume in the index, ordered by (study, series number, series id). Instances of a
        series that share slice positions are split into volumes by :mod:`lightning_dicom.dicom.volumes`."""
        kept, dropped = _dedupe(self.files("ok"))
        iop_reps: dict[str, list[tuple[float, ...]]] = defaultdict(list)
        groups: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
        for f in kept:
            uid = f["series_uid"]
            n_frames = f["n_frames"] or 1
            if (n_frames == 1 and not slice_of_stack(f)) or (n_frames > 1 and not (f["iop"] and f["ipp"])):
                key: tuple = (uid, f["path"])  # 2D image, or multi-frame file without geometry: its own
            else:  # a slice (without position or orientation too: refused as one volume, never split)
                key = (
                    uid,
                    f["series_number"],
                    _cluster(iop_reps[uid], json.loads(f["iop"])) if f["iop"] else -1,
                    f["rows"],
                    f["cols"],
                    f["samples_per_pixel"],
                )
                if (f["n_frames"] or 1) > 1:  # a multi-frame file is split on its own
                    key = (*key, "frames", f["path"])
            groups[key].append(f)
        clusters: dict[tuple, list[Volume]] = defaultdict(list)
        for key, members in groups.items():
            clusters[key[:6] if len(key) > 6 else key].extend(split_rows(members))
        by_uid: dict[str, list[list[Volume]]] = defaultdict(list)
        for key, vols in clusters.items():
            vols.sort(key=lambda v: v.order)
            if len(vols) > 1 and not any(v.split_by for v in vols):  # several multi-frame files
                for v in vols:
                    v.split_by = _file_split(vols)
            by_uid[key[0]].append(vols)
        out = []
        for uid, cl in by_uid.items():
            cl.sort(key=lambda vs: (-sum(len(v.frames) for v in vs), vs[0].frames[0].row["path"]))
            n = sum(len(vs) for vs in cl)
            k = 0
            for vs in cl:
                index_of: dict[tuple, int] = defaultdict(int)
                for v in vs:
                    k += 1
                    kind = (v.attrs.get("echo_number"), v.attrs.get("echo_time"), v.attrs.get("image_type"))
                    out.append(
                        make_series(uid if n == 1 else f"{uid}#{k}", v, dropped, len(vs), index_of[kind])
                    )
                    index_of[kind] += 1
        out.sort(key=lambda s: (s.study_uid, s.series_number, s.series_id))
        return out

    def duplicates(self) -> dict[str, str]:
        """{path left out: path kept} for files that repeat an instance held by another file."""
        _, dropped = _dedupe(self.files("ok"))
        return {d: k for k, ds in dropped.items() for d in ds}

    def report(self) -> dict[str, Any]:
        """PHI-free summary: series table, skipped files grouped by reason, duplicate files and files
        whose pixel data is unreadable (``problems``: reason -> paths), and stacks whose slices share
        positions with nothing to separate them into volumes (``refusals``: series id, file, reason), and
        stacks the reader refuses by default (``irregular``: series id, reason, and whether
        ``irregular_stacks: resample`` reads them), judged from the headers as the reader judges them."""
        from lightning_dicom.dicom.series import check_geometry
        from lightning_dicom.errors import SeriesError

        reasons: dict[str, list[str]] = defaultdict(list)
        for path, reason in self.skipped():
            reasons[reason].append(path)
        problems: dict[str, list[str]] = defaultdict(list)
        for f in self.files("ok"):
            if f["problem"]:
                problems[f["problem"]].append(f["path"])
        series = self.series()
        return {
            "series": [s.summary() for s in series],
            "refusals": [
                {"series_id": s.series_id, "path": s.refusal[0], "reason": s.refusal[1]}
                for s in series
                if s.refusal[1]
            ],
            "irregular": [
                {"series_id": s.series_id, "reason": reason, "resample": resample}
                for s in series
                if not s.refusal[1]
                for reason, resample in [_irregular(s, check_geometry, SeriesError)]
                if reason
            ],
            "skipped": dict(reasons),
            "duplicates": self.duplicates(),
            "problems": dict(problems),
        }


def _irregular(rec: SeriesRecord, check: Any, error: type[Exception]) -> tuple[str, bool]:
    """(why the reader refuses ``rec`` by default or "", whether ``irregular_stacks: resample`` reads it)."""
    try:
        check(rec)
        return "", True
    except error as err:
        reason = getattr(err, "reason", str(err))
    except Exception:  # a header the planner cannot judge: the reader will say why
        return "", True
    try:
        check(rec, irregular="resample")
        return reason, True
    except Exception:
        return reason, False


def _file_split(vols: list[Volume]) -> str:
    """What orders the volumes of several files of one stack (each file one volume)."""
    for name, key in (
        ("TemporalPositionIndex", "temporal_position"),
        ("AcquisitionNumber", "acquisition_number"),
    ):
        if len({v.attrs.get(key) for v in vols}) == len(vols):
            return name
    return "InstanceNumber order"


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
        elif getattr(rules, "colour", "keep") == "drop" and s.samples_per_pixel > 1:
            reason = (
                f"colour image ({s.samples_per_pixel} samples per pixel; selection.colour: keep reads it)"
            )
        elif s.n_slices < rules.min_slices:
            reason = f"{s.n_slices} slices < min_slices {rules.min_slices}"
        elif keep_desc is not None and not keep_desc.search(s.description):
            reason = "description does not match"
        elif drop_desc is not None and drop_desc.search(s.description):
            reason = "description excluded"
        elif rules.orientations and s.plane not in rules.orientations:
            reason = f"plane {s.plane} not in {rules.orientations}"
        else:
            reason = _acquisition_rule(s, rules)
        if reason:
            dropped.append((s.series_id, reason))
        else:
            kept.append(s)
    return kept, dropped


def _acquisition_rule(s: SeriesRecord, rules: Any) -> str | None:
    """Why the acquisition rules of a SelectionConfig drop this volume (None: kept)."""
    import re

    b_values = getattr(rules, "b_value", None)
    if b_values is not None and (s.b_value is None or not any(abs(s.b_value - b) < 0.5 for b in b_values)):
        return f"b-value {s.b_value} not in {b_values}"
    echoes = getattr(rules, "echo_number", None)
    if echoes is not None and (s.echo_number or 1) not in echoes:
        return f"echo number {s.echo_number or 1} not in {echoes}"
    times = getattr(rules, "temporal_index", None)
    if times is not None and s.temporal_index not in times:
        return f"temporal index {s.temporal_index} not in {times}"
    kind = getattr(rules, "image_type", None)
    if kind and not re.search(kind, s.image_type or "", re.IGNORECASE):
        return f"image type {s.image_type!r} does not match"
    return None
