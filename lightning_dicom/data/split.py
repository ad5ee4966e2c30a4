"""Deterministic train/val/test split by series, grouped by patient, study or series.

Each group gets a position ``h = sha256(seed, group key)``; groups are ordered by ``h`` and cut at
``round(n x fractions)``. So a split depends only on the seed and the set of groups (not on file
or scan order), fractions hold within rounding, and adding k new groups moves at most about k
existing groups across a boundary.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lightning_dicom.config import SplitConfig
from lightning_dicom.dicom.index import SeriesRecord

__all__ = ["Split", "save_split", "split_groups", "split_series"]

Split = dict[str, list[str]]
"""``{"train": [series_id, ...], "val": [...], "test": [...]}``."""


def _group(rec: SeriesRecord, by: str) -> str:
    """Group key; an empty PatientID (anonymised data) falls back to the study, then the series,
    so that unrelated series without an ID do not all land in one part."""
    if by == "patient" and rec.patient_id.strip():
        return "P" + rec.patient_id  # the index's keyed pseudonym, never the ID
    if by in ("patient", "study") and rec.study_uid:
        return "S" + rec.study_uid
    return "R" + rec.series_id


def split_groups(series: Sequence[SeriesRecord], by: str) -> dict[str, int]:
    """How many series were grouped by what: ``{"patient": n, "study": n, "series": n}``. With
    ``group_by: patient``, series without a PatientID fall back to their study, then to themselves: the
    counts say how many did (split reports show it, so a fallback is never silent)."""
    out = {"patient": 0, "study": 0, "series": 0}
    for rec in series:
        out[{"P": "patient", "S": "study", "R": "series"}[_group(rec, by)[0]]] += 1
    return out


def split_series(series: Sequence[SeriesRecord], cfg: SplitConfig) -> Split:
    """Assign every series to exactly one of train/val/test."""
    groups: dict[str, list[str]] = {}
    for rec in series:
        groups.setdefault(_group(rec, cfg.group_by), []).append(rec.series_id)
    order = sorted(groups, key=lambda g: hashlib.sha256(f"{cfg.seed}:{g}".encode()).hexdigest())
    n = len(order)
    n_test = min(round(n * cfg.test), max(0, n - 1))  # always leave a training group
    n_val = round(n * cfg.val)
    if n >= 2 and cfg.val > 0 and n_val == 0:
        n_val = 1
    n_val = min(n_val, max(0, n - n_test - 1))
    out: Split = {"train": [], "val": [], "test": []}
    for i, g in enumerate(order):
        part = "test" if i < n_test else "val" if i < n_test + n_val else "train"
        out[part].extend(groups[g])
    for v in out.values():
        v.sort()
    return out


def save_split(split: Split, path: str | Path, series: Sequence[SeriesRecord], cfg: SplitConfig) -> None:
    """Write the split as JSON (series ids, PHI-free counts), atomically."""
    by_id = {s.series_id: s for s in series}
    doc: dict[str, Any] = {
        "config": cfg.model_dump(),
        "counts": {k: len(v) for k, v in split.items()},
        "patients": {
            k: len({by_id[i].patient_key for i in v if i in by_id and by_id[i].patient_key})
            for k, v in split.items()
        },
        "grouped_by": split_groups(list(by_id.values()), cfg.group_by),
        "modalities": {
            k: dict(Counter(by_id[i].modality for i in v if i in by_id)) for k, v in split.items()
        },
        **split,
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_CREAT | os.O_TRUNC | os.O_WRONLY, 0o600)  # owner-only, as the work dir
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(json.dumps(doc, indent=1))
    os.replace(tmp, path)
