"""Deterministic train/val/test split by series, grouped by patient, study or series; k-fold; stratified.

Rules (each depends only on the seed, the set of groups and, when stratified, their classes; never on
file or scan order):

* **Order.** Each group gets a position ``h = sha256(seed, group key)``; groups are ordered by ``h``.
* **Train/val/test.** ``n_test = round(n x test)`` (at most n - 1, so a training group is left),
  ``n_val = round(n x val)`` (at least 1 when val > 0 and n >= 2; a training group is always left).
  The first ``n_test`` groups in hash order are test, the next ``n_val`` val, the rest train. Adding k
  new groups moves at most about k existing groups across a boundary.
* **K folds** (``folds: K``; replaces ``val``). The test part is cut first, exactly as above, so it is
  the same for every fold (and the same as a split without folds with the same seed and test). The
  remaining m groups, in hash order, are cut into K contiguous folds of ``floor(m/K)`` or
  ``ceil(m/K)`` groups (the first ``m mod K`` folds get one more): every non-test group is in exactly
  one fold's validation part. Fold ``fold`` validates, the other K - 1 train. m < K is an error
  (:func:`check_folds`, which names the number of series and groups and what to change).
* **Empty parts.** One group (anonymised data with one PatientID for all) leaves val and test empty:
  :func:`empty_parts` says so, in counts only (never a PatientID); :func:`warn_empty_parts` warns.
* **Stratified** (``stratify: true``). A group's class is its most frequent label (ties: the smallest;
  groups without a label form one more stratum). The part totals are those above; each part's total
  is shared among the classes by largest remainder (``n_c x n_part / n``, then the largest fractional
  parts get one more), and within a class the groups are taken in hash order. So every part holds
  each class within one group of its exact share (|n_c,part - n_c x n_part / n| < 1, unless a class
  has too few groups left). Folds likewise: each class's m_c groups are cut into K folds of
  ``floor(m_c/K)`` or ``ceil(m_c/K)``, the extra groups rotating over the folds from class to class so
  fold totals also differ by at most one. This is the contiguous-cut counterpart of scikit-learn's
  ``StratifiedGroupKFold`` (which balances greedily and shuffles with a RandomState); hash order keeps
  the assignment stable when groups are added and needs no shared RNG state across ranks.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from lightning_dicom.config import SplitConfig
from lightning_dicom.dicom.index import SeriesRecord
from lightning_dicom.errors import ConfigError, warn
from lightning_dicom.files import atomic_write

__all__ = [
    "Folds",
    "Split",
    "assign_folds",
    "check_folds",
    "empty_parts",
    "warn_empty_parts",
    "save_split",
    "split_groups",
    "split_series",
]

Split = dict[str, list[str]]
"""``{"train": [series_id, ...], "val": [...], "test": [...]}``."""

Folds = list[list[str]]
"""Series ids of each fold's validation part (K lists, disjoint, sorted)."""

Stratum = int | None


def _group(rec: SeriesRecord, by: str) -> str:
    """Group key; an empty PatientID (anonymised data) falls back to the study, then the series,
    so that unrelated series without an ID do not all land in one part. ``series`` keys on the
    SeriesInstanceUID, so the volumes of one series (time points, echoes, b-values: ``uid#k``) always
    land in the same part."""
    if by == "patient" and rec.patient_id.strip():
        return "P" + rec.patient_id  # the index's keyed pseudonym, never the ID
    if by in ("patient", "study") and rec.study_uid:
        return "S" + rec.study_uid
    return "R" + rec.series_uid


def split_groups(series: Sequence[SeriesRecord], by: str) -> dict[str, int]:
    """How many series were grouped by what: ``{"patient": n, "study": n, "series": n}``. With
    ``group_by: patient``, series without a PatientID fall back to their study, then to themselves: the
    counts say how many did (split reports show it, so a fallback is never silent)."""
    out = {"patient": 0, "study": 0, "series": 0}
    for rec in series:
        out[{"P": "patient", "S": "study", "R": "series"}[_group(rec, by)[0]]] += 1
    return out


def _n_test(n: int, test: float) -> int:
    """Test groups of ``n``: ``round(n x test)``, at most n - 1 (a training group is always left)."""
    return min(round(n * test), max(0, n - 1))


def _grouping(series: Sequence[SeriesRecord], by: str) -> tuple[int, str]:
    """(number of groups, "all N series fall in K group(s) of split.group_by '...'; what to change");
    counts only, never a key (a PatientID pseudonym is still a patient's)."""
    n = len({_group(rec, by) for rec in series})
    advice = {
        "patient": "use split.group_by: study or series (or more patients)",
        "study": "use split.group_by: series (or more studies)",
        "series": "add series",
    }[by]
    return n, f"all {len(series)} series fall in {n} group(s) of split.group_by '{by}'; {advice}"


def check_folds(series: Sequence[SeriesRecord], cfg: SplitConfig) -> None:
    """Raise when ``cfg.folds`` asks for more folds than there are non-test groups (cheap: no labels,
    no split; the datamodule calls it before caching).

    Raises:
        ConfigError: fewer non-test groups than ``cfg.folds``; the message counts series and groups.
    """
    if cfg.folds is None:
        return
    n, why = _grouping(series, cfg.group_by)
    m = n - _n_test(n, cfg.test)
    if m < cfg.folds:
        raise ConfigError(
            f"split.folds={cfg.folds} needs at least {cfg.folds} non-test {cfg.group_by} groups, found {m}: "
            + why
        )


def empty_parts(series: Sequence[SeriesRecord], cfg: SplitConfig, split: Split) -> list[str]:
    """One message per part that was asked for (``val`` > 0 without folds, ``test`` > 0) but holds no
    series, e.g. "validation split is empty: all 42 series fall in 1 group(s) of split.group_by
    'patient'; use split.group_by: study or series (or more patients)". Counts only (no PatientID)."""
    asked = {"validation": ("val", 0.0 if cfg.folds is not None else cfg.val), "test": ("test", cfg.test)}
    out = []
    for name, (part, fraction) in asked.items():
        if fraction > 0 and not split[part]:
            n, why = _grouping(series, cfg.group_by)
            cause = ""  # one group is the usual cause; with more, the fractions are
            if n >= 2:
                cause = (
                    " (split.test leaves it no group)"
                    if part == "val"
                    else f" (split.test {fraction} x {n} groups rounds to 0)"
                )
            out.append(f"{name} split is empty{cause}: {why}")
    return out


def _skey(s: Stratum) -> tuple[bool, int]:
    return (s is None, 0 if s is None else s)


def _strata(
    series: Sequence[SeriesRecord], cfg: SplitConfig, labels: Mapping[str, int] | None
) -> tuple[dict[str, list[str]], dict[Stratum, list[str]]]:
    """(series ids per group, groups per stratum in hash order). One stratum (None) unless stratified."""
    groups: dict[str, list[str]] = {}
    for rec in series:
        groups.setdefault(_group(rec, cfg.group_by), []).append(rec.series_id)
    order = sorted(groups, key=lambda g: hashlib.sha256(f"{cfg.seed}:{g}".encode()).hexdigest())
    if cfg.stratify and labels is None:
        raise ConfigError("split.stratify needs class labels (data.labels with one class column)")
    strata: dict[Stratum, list[str]] = {}
    for g in order:
        key: Stratum = None
        if cfg.stratify and labels is not None:
            counts = Counter(int(labels[i]) for i in groups[g] if i in labels)
            if counts:
                key = min(counts, key=lambda c: (-counts[c], c))
        strata.setdefault(key, []).append(g)
    return groups, {k: strata[k] for k in sorted(strata, key=_skey)}


def _apportion(sizes: Mapping[Stratum, int], total: int, cap: Mapping[Stratum, int]) -> dict[Stratum, int]:
    """Share ``total`` among strata in proportion to ``sizes`` (largest remainder), at most ``cap`` each."""
    n = sum(sizes.values())
    out = dict.fromkeys(sizes, 0)
    if n == 0 or total <= 0:
        return out
    quota = {k: v * total / n for k, v in sizes.items()}
    for k in sizes:
        out[k] = min(math.floor(quota[k]), cap[k])
    keys = sorted(sizes, key=lambda k: (-(quota[k] - math.floor(quota[k])), _skey(k)))
    left = total - sum(out.values())
    while left > 0:
        given = 0
        for k in keys:
            if left and out[k] < cap[k]:
                out[k] += 1
                left -= 1
                given += 1
        if not given:
            break
    return out


def _test_and_rest(
    strata: dict[Stratum, list[str]], cfg: SplitConfig
) -> tuple[list[str], dict[Stratum, list[str]], int]:
    """(test groups, remaining groups per stratum in hash order, n groups)."""
    n = sum(len(v) for v in strata.values())
    n_test = _n_test(n, cfg.test)
    sizes = {k: len(v) for k, v in strata.items()}
    take = _apportion(sizes, n_test, sizes)
    test = [g for k, v in strata.items() for g in v[: take[k]]]
    return test, {k: v[take[k] :] for k, v in strata.items()}, n


def _fold_groups(rest: dict[Stratum, list[str]], k_folds: int) -> list[list[str]]:
    folds: list[list[str]] = [[] for _ in range(k_folds)]
    offset = 0
    for groups in rest.values():
        base, extra = divmod(len(groups), k_folds)
        plus = {(offset + i) % k_folds for i in range(extra)}
        offset += extra
        start = 0
        for f in range(k_folds):
            stop = start + base + (f in plus)
            folds[f].extend(groups[start:stop])
            start = stop
    return folds


def assign_folds(
    series: Sequence[SeriesRecord], cfg: SplitConfig, labels: Mapping[str, int] | None = None
) -> tuple[list[str], Folds]:
    """``(test series ids, validation series ids of each of the K folds)``; see the module docstring.

    Raises:
        ConfigError: ``cfg.folds`` is not set, there are fewer non-test groups than folds, or
            ``stratify`` without labels.
    """
    if cfg.folds is None:
        raise ConfigError("assign_folds needs split.folds")
    check_folds(series, cfg)
    groups, strata = _strata(series, cfg, labels)
    test, rest, _ = _test_and_rest(strata, cfg)
    folds = [sorted(i for g in fg for i in groups[g]) for fg in _fold_groups(rest, cfg.folds)]
    return sorted(i for g in test for i in groups[g]), folds


def split_series(
    series: Sequence[SeriesRecord], cfg: SplitConfig, labels: Mapping[str, int] | None = None
) -> Split:
    """Assign every series to exactly one of train/val/test (``labels``: class by series id, for
    ``stratify``). With ``cfg.folds``, val is fold ``cfg.fold`` and train the other folds."""
    if cfg.folds is not None:
        test, folds = assign_folds(series, cfg, labels)
        train = sorted(i for f, ids in enumerate(folds) if f != cfg.fold for i in ids)
        return {"train": train, "val": list(folds[cfg.fold]), "test": test}
    groups, strata = _strata(series, cfg, labels)
    test, rest, n = _test_and_rest(strata, cfg)
    n_test = len(test)
    n_val = round(n * cfg.val)
    if n >= 2 and cfg.val > 0 and n_val == 0:
        n_val = 1
    n_val = min(n_val, max(0, n - n_test - 1))
    sizes = {k: len(v) for k, v in strata.items()}
    room = {k: len(v) for k, v in rest.items()}
    take = _apportion(sizes, n_val, room)
    out: Split = {"train": [], "val": [], "test": sorted(i for g in test for i in groups[g])}
    for k, gs in rest.items():
        for j, g in enumerate(gs):
            out["val" if j < take[k] else "train"].extend(groups[g])
    for v in out.values():
        v.sort()
    return out


def save_split(
    split: Split,
    path: str | Path,
    series: Sequence[SeriesRecord],
    cfg: SplitConfig,
    folds: Folds | None = None,
    labels: Mapping[str, int] | None = None,
) -> None:
    """Write the split as JSON (series ids, PHI-free counts; the K folds' series ids and, with
    ``labels``, the class counts per part), atomically."""
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
    if labels is not None:
        doc["classes"] = {
            k: {str(c): n for c, n in sorted(Counter(int(labels[i]) for i in v if i in labels).items())}
            for k, v in split.items()
        }
    if folds is not None:
        doc["fold"] = cfg.fold
        doc["folds"] = folds
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda tmp: Path(tmp).write_text(json.dumps(doc, indent=1)))
    os.chmod(path, 0o600)  # owner-only, as the work dir


def warn_empty_parts(series: Sequence[SeriesRecord], cfg: SplitConfig, split: Split) -> None:
    """One :class:`~lightning_dicom.errors.LightningDicomWarning` per :func:`empty_parts` message."""
    for message in empty_parts(series, cfg, split):
        warn(message, stacklevel=3)
