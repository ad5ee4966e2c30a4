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
