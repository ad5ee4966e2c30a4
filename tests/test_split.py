"""Tests for lightning_dicom.data.split: grouping, determinism, stability, fractions and the saved JSON."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from lightning_dicom.config import SplitConfig
from lightning_dicom.data.split import save_split, split_series
from lightning_dicom.dicom.index import SeriesRecord, patient_key

PARTS = ("train", "val", "test")


def record(series_uid: str, study_uid: str, patient_id: str, modality: str = "CT") -> SeriesRecord:
    return SeriesRecord(
        series_id=series_uid,
        series_uid=series_uid,
        study_uid=study_uid,
        patient_id=patient_id,
        frame_uid="",
        modality=modality,
        description="",
        series_number=1,
        n_instances=1,
        n_slices=1,
        rows=4,
        cols=4,
        spacing=(1.0, 1.0, 1.0),
        orientation=(1.0, 0.0, 0.0, 0.0, 1.0, 0.0),
        plane="axial",
        files=(f"/nowhere/{series_uid}.dcm",),
    )


def cohort(n_patients: int, prefix: str = "PAT") -> list[SeriesRecord]:
    """Patients with 1-4 series over 1-2 studies each (deterministic)."""
    out = []
    for p in range(n_patients):
        pid = f"{prefix}-{p:04d}"
        for s in range(1 + p % 4):
            study = f"1.2.826.{p}.{s % 2}"
            out.append(record(f"{study}.{s}", study, pid, modality="MR" if s == 3 else "CT"))
    return out


def where(split: dict[str, list[str]]) -> dict[str, str]:
    return {sid: part for part in PARTS for sid in split[part]}


def test_every_series_in_exactly_one_part() -> None:
    series = cohort(60)
    split = split_series(series, SplitConfig(val=0.2, test=0.1))
    assert set(split) == set(PARTS)
    flat = [sid for part in PARTS for sid in split[part]]
    assert len(flat) == len(set(flat)) == len(series)
    assert set(flat) == {s.series_id for s in series}
    assert all(split[p] == sorted(split[p]) for p in PARTS)


@pytest.mark.parametrize(("group_by", "attr"), [("patient", "patient_id"), ("study", "study_uid")])
def test_groups_never_cross_parts(group_by: str, attr: str) -> None:
    series = cohort(80)
    part = where(split_series(series, SplitConfig(val=0.25, test=0.15, group_by=group_by, seed=3)))
    by_group: dict[str, set[str]] = {}
    for s in series:
        by_group.setdefault(getattr(s, attr), set()).add(part[s.series_id])
    assert all(len(parts) == 1 for parts in by_group.values())
    assert {p for parts in by_group.values() for p in parts} == set(PARTS)


def test_series_grouping_splits_patients() -> None:
    series = cohort(80)
    part = where(split_series(series, SplitConfig(val=0.3, test=0.2, group_by="series", seed=1)))
    parts_of: dict[str, set[str]] = {}
    for s in series:
        parts_of.setdefault(s.patient_id, set()).add(part[s.series_id])
    assert any(len(v) > 1 for v in parts_of.values())  # the leak 'patient' grouping prevents


def test_deterministic_and_independent_of_input_order() -> None:
    series = cohort(50)
    cfg = SplitConfig(val=0.2, test=0.2, seed=11)
    first = split_series(series, cfg)
    shuffled = list(series)
    random.Random(0).shuffle(shuffled)
    assert split_series(shuffled, cfg) == first
    assert split_series(list(reversed(series)), cfg) == first
    assert split_series(series, SplitConfig(val=0.2, test=0.2, seed=11)) == first


def test_different_seed_gives_different_split() -> None:
    series = cohort(50)
    splits = [split_series(series, SplitConfig(val=0.2, test=0.2, seed=s)) for s in range(4)]
    for a in range(4):
        for b in range(a + 1, 4):
            assert splits[a] != splits[b]
    # but the sizes (in groups) are the same for every seed
    pid = {s.series_id: s.patient_id for s in series}
    sizes = {tuple(len({pid[i] for i in sp[k]}) for k in PARTS) for sp in splits}
    assert sizes == {(30, 10, 10)}


@pytest.mark.parametrize("seed", range(6))
def test_stable_when_groups_are_added(seed: int) -> None:
    old = cohort(100)
    new = old + cohort(10, prefix="NEW")
    cfg = SplitConfig(val=0.2, test=0.1, seed=seed)
    before = where(split_series(old, cfg))
    after = where(split_series(new, cfg))
    moved_patients = {s.patient_id for s in old if before[s.series_id] != after[s.series_id]}
    assert len(moved_patients) <= 10  # adding 10% more groups moves at most ~10% of the old ones
    assert set(after) == {s.series_id for s in new}


@pytest.mark.parametrize(
    ("n", "val", "test", "expected"),
    [
        (100, 0.2, 0.1, (70, 20, 10)),
        (100, 0.0, 0.0, (100, 0, 0)),
        (10, 0.25, 0.0, (8, 2, 0)),  # round(2.5) == 2
        (7, 0.2, 0.2, (5, 1, 1)),
        (2, 0.2, 0.0, (1, 1, 0)),  # a requested validation set is never empty when it can exist
        (1, 0.2, 0.0, (1, 0, 0)),
        (1, 0.0, 0.6, (1, 0, 0)),  # a training group is always left
        (3, 0.3, 0.6, (1, 0, 2)),
        (0, 0.2, 0.1, (0, 0, 0)),
    ],
)
def test_fractions_within_rounding(n: int, val: float, test: float, expected: tuple[int, int, int]) -> None:
    series = [record(f"1.2.3.{i}", f"1.2.9.{i}", f"P{i}") for i in range(n)]
    split = split_series(series, SplitConfig(val=val, test=test, group_by="series"))
    assert tuple(len(split[p]) for p in PARTS) == expected


def test_fractions_count_groups_not_series() -> None:
    series = cohort(100)  # 250 series
    split = split_series(series, SplitConfig(val=0.2, test=0.1, seed=5))
    pid = {s.series_id: s.patient_id for s in series}
    n_patients = tuple(len({pid[i] for i in split[p]}) for p in PARTS)
    assert n_patients == (70, 20, 10)


def test_save_split_json_has_no_patient_ids(tmp_path: Path) -> None:
    series = cohort(30, prefix="SECRET-MRN")
    cfg = SplitConfig(val=0.2, test=0.1, seed=2)
    split = split_series(series, cfg)
    path = tmp_path / "sub" / "split.json"
    save_split(split, path, series, cfg)
    text = path.read_text()
    assert "SECRET-MRN" not in text
    assert all(s.patient_id not in text for s in series)
    doc = json.loads(text)
    for p in PARTS:
        assert doc[p] == split[p]
        assert doc["counts"][p] == len(split[p])
    assert sum(doc["patients"].values()) == 30
    assert doc["patients"]["val"] == 6
    assert doc["patients"]["test"] == 3
    assert sum(sum(m.values()) for m in doc["modalities"].values()) == len(series)
    assert sum(m.get("MR", 0) for m in doc["modalities"].values()) == sum(s.modality == "MR" for s in series)
    assert doc["config"]["seed"] == 2
    assert doc["config"]["group_by"] == "patient"
    assert sorted(p.name for p in path.parent.iterdir()) == ["split.json"]  # no temp file left
    # the pseudonym is what identifies patients in reports, never the ID
    assert patient_key("SYN0020", b"a" * 32) != patient_key("SYN0020", b"b" * 32)  # keyed: not linkable


def test_series_without_patient_id_fall_back_to_their_study() -> None:
    from lightning_dicom.config import SplitConfig
    from lightning_dicom.data.split import split_groups, split_series
    from lightning_dicom.dicom.index import SeriesRecord

    def rec(i: int) -> SeriesRecord:
        return SeriesRecord(
            series_id=f"1.2.{i}",
            series_uid=f"1.2.{i}",
            study_uid=f"9.{i}",
            patient_id="",
            frame_uid="",
            modality="CT",
            description="",
            series_number=1,
            n_instances=1,
            n_slices=1,
            rows=1,
            cols=1,
            spacing=(1.0, 1.0, 1.0),
            orientation=(1, 0, 0, 0, 1, 0),
            plane="axial",
            files=(),
        )

    split = split_series([rec(i) for i in range(20)], SplitConfig(val=0.25))
    assert len(split["val"]) == 5 and len(split["train"]) == 15
    assert split_groups([rec(i) for i in range(20)], "patient") == {"patient": 0, "study": 20, "series": 0}


# -- k-fold cross-validation (issue 12) ------------------------------------------------------------
from lightning_dicom.data.split import assign_folds  # noqa: E402
from lightning_dicom.errors import ConfigError  # noqa: E402


@pytest.mark.parametrize(("k", "test", "seed"), [(5, 0.0, 0), (5, 0.15, 3), (3, 0.2, 7), (10, 0.1, 1)])
def test_folds_are_disjoint_cover_every_non_test_group_and_keep_test_fixed(
    k: int, test: float, seed: int
) -> None:
    series = cohort(83)
    pid = {s.series_id: s.patient_id for s in series}
    splits = [split_series(series, SplitConfig(folds=k, fold=f, test=test, seed=seed)) for f in range(k)]
    test_part = splits[0]["test"]
    assert all(sp["test"] == test_part for sp in splits)  # held out first, the same for every fold
    assert test_part == split_series(series, SplitConfig(val=0.2, test=test, seed=seed))["test"]
    vals = [set(sp["val"]) for sp in splits]
    for a in range(k):
        for b in range(a + 1, k):
            assert not vals[a] & vals[b]
    non_test = {s.series_id for s in series} - set(test_part)
    assert set().union(*vals) == non_test  # every non-test series validates exactly once
    for sp in splits:
        assert set(sp["train"]) == non_test - set(sp["val"])
        parts = {part: {pid[i] for i in sp[part]} for part in PARTS}  # a patient never in two parts
        assert not parts["train"] & parts["val"] and not parts["train"] & parts["test"]
        assert not parts["val"] & parts["test"]
    n_groups = [len({pid[i] for i in v}) for v in vals]
    assert max(n_groups) - min(n_groups) <= 1  # fold sizes in patients differ by at most one
    test_cfg = SplitConfig(folds=k, test=test, seed=seed)
    assert assign_folds(series, test_cfg) == assign_folds(
        list(reversed(series)), test_cfg
    )  # any order, any run


def test_folds_need_enough_groups_and_a_valid_fold() -> None:
    with pytest.raises(ConfigError, match="folds=5 needs at least 5 non-test patient groups, found 4"):
        split_series(cohort(4), SplitConfig(folds=5))
    with pytest.raises(ValueError, match="fold must be in 0..2"):
        SplitConfig(folds=3, fold=3)
    with pytest.raises(ValueError, match="needs folds"):
        SplitConfig(fold=1)
    SplitConfig(folds=3, val=0.5, test=0.6)  # val is ignored with folds: val + test may exceed 1


def test_save_split_records_folds_and_class_counts(tmp_path: Path) -> None:
    series = cohort(20)
    cfg = SplitConfig(folds=4, fold=2, seed=1)
    test, folds = assign_folds(series, cfg)
    labels = {s.series_id: i % 2 for i, s in enumerate(series)}
    split = split_series(series, cfg)
    save_split(split, tmp_path / "split.json", series, cfg, folds, labels)
    doc = json.loads((tmp_path / "split.json").read_text())
    assert doc["fold"] == 2 and doc["folds"] == folds and doc["val"] == folds[2]
    assert sum(sum(c.values()) for c in doc["classes"].values()) == len(series)


# -- stratification (issue 12) ---------------------------------------------------------------------
def _rare_cohort(n_patients: int, rare_every: int = 10) -> tuple[list[SeriesRecord], dict[str, int]]:
    series = cohort(n_patients)
    label = {s.series_id: int(int(s.patient_id.split("-")[1]) % rare_every == 0) for s in series}
    return series, label


def _class_share(ids: list[str], series: list[SeriesRecord], labels: dict[str, int]) -> tuple[int, int]:
    """(patients of class 1, patients) among ids."""
    pid = {s.series_id: s.patient_id for s in series}
    pats = {pid[i]: labels[i] for i in ids}
    return sum(pats.values()), len(pats)


@pytest.mark.parametrize("seed", range(5))
def test_stratified_split_keeps_a_10_90_ratio_in_every_part(seed: int) -> None:
    series, labels = _rare_cohort(200)  # 20 rare patients of 200 (10 %)
    cfg = SplitConfig(val=0.2, test=0.15, seed=seed, stratify=True)
    split = split_series(series, cfg, labels)
    for part, n_exp in (("train", 130), ("val", 40), ("test", 30)):
        rare, n = _class_share(split[part], series, labels)
        assert n == n_exp
        assert abs(rare - 0.1 * n) < 1  # stated tolerance: within one group of the exact share
    plain = split_series(series, SplitConfig(val=0.2, test=0.15, seed=seed), labels)
    assert plain != split  # stratification changed something, yet patients stay grouped
    pid = {s.series_id: s.patient_id for s in series}
    groups = [{pid[i] for i in split[p]} for p in PARTS]
    assert not (groups[0] & groups[1] or groups[0] & groups[2] or groups[1] & groups[2])


@pytest.mark.parametrize("k", [3, 5])
def test_stratified_folds_keep_the_ratio_and_balance_sizes(k: int) -> None:
    series, labels = _rare_cohort(150)  # 15 rare patients
    sizes, rares = [], []
    for f in range(k):
        split = split_series(series, SplitConfig(folds=k, fold=f, test=0.2, stratify=True, seed=2), labels)
        rare, n = _class_share(split["val"], series, labels)
        sizes.append(n)
        rares.append(rare)
        t_rare, t_n = _class_share(split["test"], series, labels)
        assert (t_rare, t_n) == (3, 30)
    assert sum(sizes) == 120 and max(sizes) - min(sizes) <= 1
    assert sum(rares) == 12 and max(rares) - min(rares) <= 1  # floor/ceil of 12 / k per fold


def test_stratify_needs_labels() -> None:
    with pytest.raises(ConfigError, match="stratify needs class labels"):
        split_series(cohort(10), SplitConfig(stratify=True))


# -- empty parts and too few groups say why, in counts only ----------------------------------------
def test_empty_parts_name_the_counts_the_grouping_and_the_fix() -> None:
    from lightning_dicom.data.split import empty_parts

    anon = [record(f"1.2.3.{i}", f"1.2.9.{i}", "ANON") for i in range(42)]
    cfg = SplitConfig(val=0.2, test=0.1)
    split = split_series(anon, cfg)
    assert tuple(len(split[p]) for p in PARTS) == (42, 0, 0)
    fix = "all 42 series fall in 1 group(s) of split.group_by 'patient'; use split.group_by: study or series"
    assert empty_parts(anon, cfg, split) == [
        f"validation split is empty: {fix} (or more patients)",
        f"test split is empty: {fix} (or more patients)",
    ]
    assert empty_parts(anon, SplitConfig(val=0.2), split_series(anon, SplitConfig(val=0.2)))[1:] == []
    assert empty_parts(anon, SplitConfig(val=0.0), split_series(anon, SplitConfig(val=0.0))) == []
    five = cohort(5)
    small_test = SplitConfig(val=0.2, test=0.05)
    assert empty_parts(five, small_test, split_series(five, small_test)) == [
        "test split is empty (split.test 0.05 x 5 groups rounds to 0): all 11 series fall in 5 group(s) of "
        "split.group_by 'patient'; use split.group_by: study or series (or more patients)"
    ]
    by_series = SplitConfig(val=0.2, group_by="series")
    assert empty_parts(anon, by_series, split_series(anon, by_series)) == []
    with pytest.raises(
        ConfigError, match=r"found 1: all 42 series fall in 1 group\(s\) of split.group_by 'patient'"
    ):
        split_series(anon, SplitConfig(folds=5))
