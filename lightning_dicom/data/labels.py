"""Labels from a CSV keyed by SeriesInstanceUID, StudyInstanceUID or PatientID.

The header names the key (exactly one of those three column names) and the label columns
(every other column, or the ones configured). One label column of integers or strings is a class
(strings are mapped to integers in sorted order); floats are regression targets; several columns
give a float vector.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lightning_dicom.dicom.index import SeriesRecord
from lightning_dicom.dicom.pseudonym import pseudonym
from lightning_dicom.errors import LabelError

__all__ = ["LabelTable", "coverage_message", "read_labels"]

KEYS = {
    "SeriesInstanceUID": "series_uid",
    "StudyInstanceUID": "study_uid",
    "PatientID": "patient_id",
    "SubjectID": "series_id",  # a subject of `data.subjects`: "study:<StudyInstanceUID>" or "patient:<pseudonym>"
}


@dataclass
class LabelTable:
    """Labels by key. ``kind`` is 'class' (int64), 'regression' (float32) or 'multi' (float32 vector)."""

    key: str
    columns: list[str]
    kind: str
    values: dict[str, np.ndarray]
    classes: list[str] = field(default_factory=list)

    def lookup(self, rec: SeriesRecord) -> np.ndarray | None:
        """The label of a series, or None."""
        return self.values.get(getattr(rec, KEYS[self.key]))

    def match(
        self, series: Sequence[SeriesRecord]
    ) -> tuple[list[SeriesRecord], list[SeriesRecord], list[str]]:
        """Split series into (labelled, unlabelled) and list label keys that match no series.

        A PatientID table is keyed by pseudonyms already (see :func:`read_labels`): unmatched ones are
        returned as such, never raw IDs.
        """
        labelled = [s for s in series if self.lookup(s) is not None]
        unlabelled = [s for s in series if self.lookup(s) is None]
        present = {getattr(s, KEYS[self.key]) for s in series}
        orphans = [k for k in self.values if k not in present]
        return labelled, unlabelled, orphans


def coverage_message(
    n_unlabelled: int, orphans: Sequence[str], orphans_of_index: Sequence[str]
) -> str | None:
    """The label-coverage warning, naming only non-zero counts, or None when every count is 0.

    ``orphans``: label keys matching no selected series (:meth:`LabelTable.match` of the selection);
    ``orphans_of_index``: those matching no indexed series at all (``match`` of every indexed series).
    The difference is the labels of series that ``data.selection`` dropped, e.g. "6 labels match no
    selected series (6 dropped by data.selection)".
    """
    parts = []
    if n_unlabelled:
        parts.append(f"{n_unlabelled} selected series have no label (left out of fit/validate/test)")
    if orphans:
        n_dropped = len(set(orphans) - set(orphans_of_index))
        parts.append(
            f"{len(orphans)} labels match no selected series ({n_dropped} dropped by data.selection)"
            if n_dropped
            else f"{len(orphans)} labels match no series"
        )
    return "; ".join(parts) or None


def read_labels(
    path: str | Path, columns: Sequence[str] | None = None, pseudonym_key: bytes | None = None
) -> LabelTable:
    """Read a labels CSV.

    A PatientID (0010,0020) key column is matched the way the index stores patients: each ID is
    replaced at once by its keyed pseudonym (``pseudonym_key``: the index's ``pseudonym_key``), so the
    table never holds a raw ID.

    Raises:
        LabelError: no key column, an unknown label column, an empty or duplicate key, or a
            non-numeric value in a multi-column table.
    """
    path = Path(path)
    header, rows = _read_csv(path)
    keys = [h for h in header if h in KEYS]
    if len(keys) != 1:
        raise LabelError(
            f"the header must hold exactly one key column of {sorted(KEYS)}, found {keys or 'none'} "
            f"in {header}",
            path=path,
        )
    key = keys[0]
    if key == "PatientID" and pseudonym_key is None:
        raise LabelError("a PatientID key needs the index's pseudonym_key to match patients", path=path)
    cols = list(columns) if columns else [h for h in header if h != key and h]  # '' = trailing comma
    missing = [c for c in cols if c not in header]
    if not cols:
        raise LabelError(f"no label column besides the key {key} in the header {header}", path=path)
    if missing:
        raise LabelError(f"label columns {missing} not in the header {header}", path=path)
    raw: dict[str, list[str]] = {}
    for i, row in enumerate(rows, start=2):
        k = (row.get(key) or "").strip()
        if not k:
            raise LabelError(f"line {i}: empty {key}", path=path)
        if k in raw:
            raise LabelError(
                f"line {i}: duplicate {key}" + ("" if key == "PatientID" else f" {k}"), path=path
            )
        raw[k] = [(row.get(c) or "").strip() for c in cols]
    if key == "PatientID":
        assert pseudonym_key is not None
        raw = {pseudonym(k, pseudonym_key): v for k, v in raw.items()}
    return _typed(path, key, cols, raw)


def _read_csv(path: Path) -> tuple[list[str], list[dict[str | None, str]]]:
    """(header, rows) of a CSV; names are stripped of spaces around them."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            rows = list(reader)
            fieldnames = list(reader.fieldnames or [])
    except OSError as err:
        raise LabelError(f"cannot read labels CSV: {err.strerror}", path=path) from None
    except UnicodeDecodeError:
        raise LabelError("labels CSV is not UTF-8 text", path=path) from None
    except csv.Error as err:
        raise LabelError(f"malformed CSV: {err}", path=path) from None
    header = [h.strip() for h in fieldnames]
    if header != fieldnames:  # tolerate spaces around names
        rows = [{(k.strip() if isinstance(k, str) else k): v for k, v in row.items()} for row in rows]
    for i, row in enumerate(rows, start=2):
        if any(v.strip() for v in row.get(None) or []):  # DictReader puts surplus values under None
            raise LabelError(f"line {i}: more values than header columns {header}", path=path)
    return header, rows


def _typed(path: Path, key: str, cols: list[str], raw: dict[str, list[str]]) -> LabelTable:
    def as_float(v: str) -> float | None:
        try:
            return float(v)
        except ValueError:
            return None

    numeric = all(as_float(v) is not None for vals in raw.values() for v in vals if v != "")
    raw = {k: v for k, v in raw.items() if all(x != "" for x in v)}  # rows with an empty label: unlabelled
    if len(cols) > 1:
        if not numeric:
            raise LabelError(f"several label columns {cols} must all be numeric", path=path)
        return LabelTable(
            key, cols, "multi", {k: np.array([float(x) for x in v], np.float32) for k, v in raw.items()}
        )
    flat = {k: v[0] for k, v in raw.items()}
    if numeric and all(float(v).is_integer() for v in flat.values()):
        values = sorted({int(float(v)) for v in flat.values()})
        if not values or values[0] >= 0:  # class indices as given (a class may have no example in this file)
            return LabelTable(
                key, cols, "class", {k: np.array(int(float(v)), np.int64) for k, v in flat.items()}
            )
        # negative classes such as {-1, 1}: index them 0..K-1 (cross-entropy needs that) and say how
        return LabelTable(
            key,
            cols,
            "class",
            {k: np.array(values.index(int(float(v))), np.int64) for k, v in flat.items()},
            classes=[str(v) for v in values],
        )
    if numeric:
        return LabelTable(
            key, cols, "regression", {k: np.array(float(v), np.float32) for k, v in flat.items()}
        )
    classes = sorted(set(flat.values()))
    return LabelTable(
        key,
        cols,
        "class",
        {k: np.array(classes.index(v), np.int64) for k, v in flat.items()},
        classes=classes,
    )
