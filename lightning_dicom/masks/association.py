"""Link DICOM SEG and RTSTRUCT objects to the image series they annotate.

The index skips SEG and RT Structure Set files (they are not image volumes); this module reads
their references -- ReferencedSeriesSequence (0008,1115) for SEG, the RTReferencedSeries chain
of ReferencedFrameOfReferenceSequence (3006,0010) for RTSTRUCT -- and their
FrameOfReferenceUID, and matches them to indexed series: by SeriesInstanceUID first, else by a
Frame of Reference shared with exactly one series. Headers are read once and remembered in a
table of the index's SQLite file, keyed on path, size and mtime.
"""

from __future__ import annotations

import json
import os
import sqlite3
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from lightning_dicom.config import MaskConfig
from lightning_dicom.dicom.index import DicomIndex, SeriesRecord
from lightning_dicom.dicom.uids import mask_kind

__all__ = ["MaskObject", "find_mask_objects", "link_masks", "mask_sources", "read_mask_csv"]

_HINTS = ("Segmentation", "RT Structure")


@dataclass(frozen=True)
class MaskObject:
    """A SEG or RTSTRUCT file and what it references."""

    path: str
    kind: str  # 'seg' or 'rtstruct'
    series_uids: tuple[str, ...]
    frame_uid: str


def _read(path: str) -> MaskObject | None:
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                ds = pydicom.dcmread(path, stop_before_pixels=True)
            except InvalidDicomError:  # a raw dataset without the Part-10 header (the index accepted it)
                ds = pydicom.dcmread(path, stop_before_pixels=True, force=True)
    except Exception:
        return None
    sop = str(ds.get("SOPClassUID", ""))
    uids: list[str] = []
    frame = str(ds.get("FrameOfReferenceUID", "") or "")
    kind = mask_kind(sop)
    if kind == "seg":
        for item in ds.get("ReferencedSeriesSequence", []) or []:
            uids.append(str(item.get("SeriesInstanceUID", "")))
    elif kind == "rtstruct":
        for ref in ds.get("ReferencedFrameOfReferenceSequence", []) or []:
            frame = frame or str(ref.get("FrameOfReferenceUID", "") or "")
            for study in ref.get("RTReferencedStudySequence", []) or []:
                for series in study.get("RTReferencedSeriesSequence", []) or []:
                    uids.append(str(series.get("SeriesInstanceUID", "")))
    else:
        return None
    return MaskObject(path, kind, tuple(u for u in uids if u), frame)


def find_mask_objects(index: DicomIndex) -> list[MaskObject]:
    """Every SEG/RTSTRUCT file of the index, with its references (headers cached in the index file)."""
    candidates = [p for p, reason in index.skipped() if reason and any(h in reason for h in _HINTS)]
    db = sqlite3.connect(str(index.db_path)) if index.db_path is not None else sqlite3.connect(":memory:")
    try:
        db.execute(
            "CREATE TABLE IF NOT EXISTS mask_objects (path TEXT PRIMARY KEY, size INTEGER, "
            "mtime_ns INTEGER, kind TEXT, series_uids TEXT, frame_uid TEXT)"
        )
        known = {r[0]: r[1:] for r in db.execute("SELECT * FROM mask_objects")}
        out, rows = [], []
        for p in candidates:
            try:
                st = os.stat(p)
            except OSError:
                continue
            row = known.get(p)
            if row is not None and tuple(row[:2]) == (st.st_size, st.st_mtime_ns):
                if row[2]:
                    out.append(MaskObject(p, row[2], tuple(json.loads(row[3])), row[4]))
                continue
            obj = _read(p)
            rows.append(
                (
                    p,
                    st.st_size,
                    st.st_mtime_ns,
                    obj.kind if obj else None,
                    json.dumps(list(obj.series_uids)) if obj else "[]",
                    obj.frame_uid if obj else "",
                )
            )
            if obj is not None:
                out.append(obj)
        db.executemany("INSERT OR REPLACE INTO mask_objects VALUES (?,?,?,?,?,?)", rows)
        db.commit()
    finally:
        db.close()
    return sorted(out, key=lambda o: o.path)


def link_masks(
    series: Sequence[SeriesRecord], objects: Sequence[MaskObject]
) -> tuple[dict[str, list[str]], list[str]]:
    """Map series ids to the mask files that reference them; also return files that match no series.

    A SEG/RTSTRUCT referencing a SeriesInstanceUID that holds several volumes (``uid#k``) goes to
    ``#1`` (the first volume, in dcm2niix's 4th-dimension order, of the stack with the most slices) or
    the plain UID.
    """
    by_uid: dict[str, SeriesRecord] = {}
    for s in series:
        if s.series_uid not in by_uid or s.series_id == s.series_uid or s.series_id.endswith("#1"):
            by_uid[s.series_uid] = s
    by_frame: dict[str, list[SeriesRecord]] = {}
    for s in by_uid.values():
        if s.frame_uid:
            by_frame.setdefault(s.frame_uid, []).append(s)
    linked: dict[str, list[str]] = {}
    orphans = []
    for obj in objects:
        targets = [by_uid[u] for u in obj.series_uids if u in by_uid]
        if not targets and len(by_frame.get(obj.frame_uid, [])) == 1:
            targets = by_frame[obj.frame_uid]
        if not targets:
            orphans.append(obj.path)
        for t in targets:
            linked.setdefault(t.series_id, []).append(obj.path)
    return linked, orphans


def read_mask_csv(path: str | Path) -> dict[str, list[str]]:
    """``SeriesInstanceUID,mask`` CSV -> series UID -> mask file paths (relative paths from the CSV's folder)."""
    import csv

    from lightning_dicom.errors import LabelError

    path = Path(path)
    out: dict[str, list[str]] = {}
    with open(path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        fields = [f.strip() for f in (reader.fieldnames or [])]
        if "SeriesInstanceUID" not in fields or "mask" not in fields:
            raise LabelError(
                f"a masks CSV needs SeriesInstanceUID and mask columns, found {fields}", path=path
            )
        for row in reader:
            row = {k.strip(): (v or "").strip() for k, v in row.items() if k}
            if row.get("SeriesInstanceUID") and row.get("mask"):
                p = Path(row["mask"])
                out.setdefault(row["SeriesInstanceUID"], []).append(
                    str(p if p.is_absolute() else path.parent / p)
                )
    return out


def mask_sources(
    index: DicomIndex, selected: Sequence[SeriesRecord], cfg: MaskConfig
) -> tuple[dict[str, list[str]], list[str]]:
    """Mask files per series id (the CSV's NIfTI/NRRD paths + linked SEG/RTSTRUCT, per ``cfg.sources``)
    and the SEG/RTSTRUCT files that link to none of ``selected``."""
    kinds = set(cfg.sources)
    linked, orphans = link_masks(selected, [o for o in find_mask_objects(index) if o.kind in kinds])
    if cfg.csv is not None and "csv" in kinds:
        by_uid: dict[str, str] = {}
        for s in selected:
            by_uid.setdefault(s.series_uid, s.series_id)
        for uid, paths in read_mask_csv(cfg.csv).items():
            if uid in by_uid:
                linked.setdefault(by_uid[uid], []).extend(paths)
    return {k: sorted(v) for k, v in linked.items()}, orphans
