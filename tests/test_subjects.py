"""Subjects made of several series (issue 14): rules, resampling onto the reference grid, missing
inputs, cache keys, labels and a real Trainer on two channels."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from lightning_dicom import DicomDataModule, DicomIndex
from lightning_dicom.config import PreprocessingConfig
from lightning_dicom.data.cache import VolumeCache
from lightning_dicom.demo.synthetic import write_series
from lightning_dicom.demo.synthetic_subjects import write_subject_dataset
from lightning_dicom.dicom.series import read_series
from lightning_dicom.errors import LightningDicomError, LightningDicomWarning, SeriesError
from lightning_dicom.io import to_array
from lightning_dicom.subjects.config import SubjectsConfig
from lightning_dicom.subjects.pipeline import process_subject
from lightning_dicom.subjects.resolve import resolve_subjects

RULES = {"t1": {"description": "(?i)t1"}, "t2": {"description": "(?i)t2"}}
NATIVE = PreprocessingConfig(orientation="none", normalize="none")


@pytest.fixture(scope="module")
def studies(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("subjects")
    return root, write_subject_dataset(root, n_patients=4, t1_shape=(8, 16, 16))


def _records(root: Path, db: Path):
    with DicomIndex([root], db) as idx:
        idx.scan(workers=1)
        return idx.series()


def _trilinear(
    array_zyx: np.ndarray, spacing, origin, direction, points: np.ndarray, outside: float
) -> np.ndarray:
    """Independent trilinear sampling (numpy) of a volume at LPS points, with ITK's border rule: a point
    is inside when its continuous index lies in [-0.5, n - 0.5] on every axis (the voxels' extent), and
    within half a voxel of the border the edge voxels are used (clamped neighbours); ``outside`` elsewhere."""
    mat = np.asarray(direction, dtype=float).reshape(3, 3) @ np.diag(spacing)
    idx = (points.reshape(-1, 3) - np.asarray(origin)) @ np.linalg.inv(mat).T  # x-y-z continuous index
    shape_xyz = np.array(array_zyx.shape[::-1])
    inside = np.all((idx >= -0.5) & (idx < shape_xyz - 0.5), axis=1)
    out = np.full(len(idx), outside, dtype=np.float64)
    p = np.clip(idx[inside], 0, shape_xyz - 1)
    i0 = np.minimum(np.floor(p).astype(int), shape_xyz - 2)
    f = p - i0
    vol = array_zyx.astype(np.float64)
    acc = np.zeros(len(p))
    for dx in (0, 1):
        for dy in (0, 1):
            for dz in (0, 1):
                w = (
                    (f[:, 0] if dx else 1 - f[:, 0])
                    * (f[:, 1] if dy else 1 - f[:, 1])
                    * (f[:, 2] if dz else 1 - f[:, 2])
                )
                acc += w * vol[i0[:, 2] + dz, i0[:, 1] + dy, i0[:, 0] + dx]
    out[inside] = acc
    return out.reshape(points.shape[:-1])


def test_channel_two_is_the_second_series_sampled_at_the_same_world_points(studies, tmp_path):
    """At every voxel of the T1 grid, channel 2 = the oblique, shifted, coarser T2 sampled there
    (trilinear, |diff| <= 0.01 in MR units of ~200-800); outside the T2's field of view, its minimum."""
    root, truth = studies
    subjects, _ = resolve_subjects(_records(root, tmp_path / "i.sqlite"), SubjectsConfig(inputs=RULES))
    subject = next(s for s in subjects if s.study_uid == truth[0].study_uid)
    array, meta, _ = process_subject(subject, NATIVE)
    t1, t2 = truth[0].series["t1"], truth[0].series["t2"]
    assert array.shape == (2, *t1.hu.shape) and array.dtype == np.float32
    np.testing.assert_array_equal(array[0], t1.hu)  # the reference channel: the T1 itself
    assert meta["spacing"] == pytest.approx(t1.spacing) and meta["origin"] == pytest.approx(t1.origin)
    from lightning_dicom.demo.synthetic_subjects import world_points

    pts = world_points(t1.hu.shape, t1.spacing, t1.origin, t1.direction)
    t2_read = read_series(subject.inputs[1])
    expected = _trilinear(
        to_array(t2_read), t2.spacing, t2.origin, t2.direction, pts, outside=float(t2.hu.min())
    )
    assert np.abs(array[1] - expected).max() <= 0.01
    inside = expected != float(t2.hu.min())
    assert 0.3 < inside.mean() < 1.0  # the check covers both voxels inside and outside the T2's field of view
    assert meta["inputs"] == f"t1={t1.series_uid}|t2={t2.series_uid}" and meta["missing_inputs"] == []


def test_with_resampling_every_channel_is_sampled_once_at_the_output_grid_points(studies, tmp_path):
    """With a target spacing the inputs go straight onto the output grid (one interpolation): channel 2
    equals the T2 sampled at the world points of the output voxels (from the entry's own geometry)."""
    root, truth = studies
    subject = resolve_subjects(_records(root, tmp_path / "i.sqlite"), SubjectsConfig(inputs=RULES))[0][0]
    prep = PreprocessingConfig(orientation="RAS", spacing=(1.5, 1.5, 2.5), normalize="none")
    array, meta, _ = process_subject(subject, prep)
    from lightning_dicom.demo.synthetic_subjects import world_points

    study = next(s for s in truth if s.study_uid == subject.study_uid)
    t2 = study.series["t2"]
    pts = world_points(array.shape[1:], meta["spacing"], meta["origin"], meta["direction"])
    t2_read = read_series(subject.inputs[1])
    expected = _trilinear(
        to_array(t2_read), t2.spacing, t2.origin, t2.direction, pts, outside=float(t2.hu.min())
    )
    assert np.abs(array[1] - expected).max() <= 0.01
    assert meta["spacing"] == pytest.approx((1.5, 1.5, 2.5))
    assert meta["source"]["spacing"] == pytest.approx(study.series["t1"].spacing)  # back onto the T1


def test_per_input_intensity_settings(studies, tmp_path):
    root, truth = studies
    cfg = SubjectsConfig(inputs={"t1": {**RULES["t1"], "normalize": "zscore"},
                                 "t2": {**RULES["t2"], "window": [400, 450], "normalize": "minmax"}})  # fmt: skip
    subject = resolve_subjects(_records(root, tmp_path / "i.sqlite"), cfg)[0][0]
    array, _, _ = process_subject(subject, NATIVE)
    assert abs(float(array[0].mean())) < 1e-4 and abs(float(array[0].std()) - 1) < 1e-3
    assert float(array[1].min()) == 0.0 and float(array[1].max()) == 1.0


def test_missing_inputs_skip_or_zero_channel(studies, tmp_path):
    root, truth = studies
    records = _records(root, tmp_path / "i.sqlite")
    rules = {**RULES, "flair": {"description": "(?i)flair"}}
    with_flair = {s.study_uid for s in truth if "flair" in s.series}
    assert 0 < len(with_flair) < len(truth)
    skipped, report = resolve_subjects(records, SubjectsConfig(inputs=rules, missing="skip"))
    assert {s.study_uid for s in skipped} == with_flair
    assert report["complete"] == len(with_flair)
    assert sorted(report["left_out"]) == sorted(
        f"study:{s.study_uid}" for s in truth if s.study_uid not in with_flair
    )
    zeros, _ = resolve_subjects(records, SubjectsConfig(inputs=rules, missing="zeros"))
    assert len(zeros) == len(truth)
    lacking = next(s for s in zeros if s.study_uid not in with_flair)
    assert lacking.missing_inputs == ("flair",)
    array, meta, _ = process_subject(lacking, NATIVE)
    assert array.shape[0] == 3 and not array[2].any() and array[0].any()
    assert meta["missing_inputs"] == ["flair"] and meta["inputs"].endswith("|flair=")
    # without its reference input a subject is always left out
    none, report = resolve_subjects(records, SubjectsConfig(inputs=rules, reference="flair", missing="zeros"))
    assert {s.study_uid for s in none} == with_flair


def test_tie_break_chooses_among_matching_series(tmp_path):
    study = "1.2.826.0.1.3680043.8.498.77"
    hu = np.zeros((4, 8, 8))
    write_series(
        tmp_path / "a", hu, study_uid=study, series_description="T2 short", series_number=3, modality="MR"
    )
    write_series(tmp_path / "b", np.zeros((6, 8, 8)), study_uid=study, series_description="T2 long", series_number=2,
                 modality="MR")  # fmt: skip
    records = _records(tmp_path, tmp_path / "i.sqlite")
    pick = {tb: resolve_subjects(records, SubjectsConfig(inputs={"t2": {"description": "t2", "tie_break": tb}}))[0][0]
            for tb in ("most_slices", "latest", "first")}  # fmt: skip
    assert pick["most_slices"].n_slices == 6
    assert pick["latest"].series_number == 3
    assert pick["first"].series_number == 2


def test_inputs_without_a_shared_frame_of_reference_are_refused_naming_both(tmp_path):
    study = "1.2.826.0.1.3680043.8.498.78"
    a = write_series(
        tmp_path / "a", np.zeros((4, 8, 8)), study_uid=study, series_description="T1", modality="MR"
    )
    b = write_series(tmp_path / "b", np.zeros((4, 8, 8)), study_uid=study, series_description="T2", modality="MR",
                     frame_of_reference_uid="1.2.826.0.1.3680043.8.498.79")  # fmt: skip
    subject = resolve_subjects(_records(tmp_path, tmp_path / "i.sqlite"), SubjectsConfig(inputs=RULES))[0][0]
    with pytest.raises(SeriesError, match="FrameOfReferenceUID") as info:
        process_subject(subject, NATIVE)
    assert a.series_uid in str(info.value) and b.series_uid in str(info.value)


def test_cache_key_changes_with_an_input_or_a_rule_and_only_for_that_subject(studies, tmp_path_factory):
    src, _ = studies
    root = tmp_path_factory.mktemp("subjects_copy")
    import shutil

    shutil.copytree(src, root, dirs_exist_ok=True)
    db = root.parent / f"{root.name}.sqlite"
    cfg = SubjectsConfig(inputs=RULES)
    cache = VolumeCache(root.parent / f"{root.name}_cache", NATIVE)
    before = {s.series_id: cache.key(s) for s in resolve_subjects(_records(root, db), cfg)[0]}
    assert len(before) == 4
    target = sorted(before)[0]
    t2_file = next(f for s in resolve_subjects(_records(root, db), cfg)[0] if s.series_id == target
                   for f in s.inputs[1].files)  # fmt: skip
    os.utime(t2_file, ns=(os.stat(t2_file).st_atime_ns, os.stat(t2_file).st_mtime_ns + 10**9))
    after = {s.series_id: cache.key(s) for s in resolve_subjects(_records(root, db), cfg)[0]}
    assert after[target] != before[target]
    assert all(after[k] == before[k] for k in before if k != target)
    other = SubjectsConfig(inputs={**RULES, "t2": {"description": "(?i)t2", "normalize": "zscore"}})
    changed = {s.series_id: cache.key(s) for s in resolve_subjects(_records(root, db), other)[0]}
    assert all(changed[k] != after[k] for k in after)
    status = cache.build(resolve_subjects(_records(root, db), cfg)[0], workers=1)
    assert status == {"ok": 4, "error": 0, "built": 4}
    assert cache.build(resolve_subjects(_records(root, db), cfg)[0], workers=1)["built"] == 0


def test_datamodule_two_channel_subjects_fit_with_a_real_trainer(studies, tmp_path):
    import pytorch_lightning as pl

    from lightning_dicom.demo.models import Classifier3D

    root, truth = studies
    dm = DicomDataModule(
        root=root, labels=root / "labels.csv", work_dir=tmp_path / "wd", progress=False,
        selection={"modalities": ["MR"]}, preprocessing={"spacing": [2.0, 2.0, 2.0], "normalize": "zscore"},
        subjects={"inputs": RULES}, split={"val": 0.25}, loader={"batch_size": 2, "num_workers": 0},
    )  # fmt: skip
    dm.prepare_data()
    dm.setup("fit")
    assert dm.report["subjects"]["used"] == 4 and dm.report["series_failed"] == []
    batch = next(iter(dm.train_dataloader()))
    assert batch["image"].shape[1] == 2
    uids = {s.study_uid: s for s in truth}
    for inputs, sid, label in zip(
        batch["meta"]["inputs"], batch["meta"]["series_id"], batch["label"], strict=True
    ):
        study = uids[sid.removeprefix("study:")]
        assert inputs == f"t1={study.series['t1'].series_uid}|t2={study.series['t2'].series_uid}"
        assert int(label) == study.label  # labels keyed by StudyInstanceUID reach the subject
    trainer = pl.Trainer(max_epochs=1, accelerator="cpu", logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False)  # fmt: skip
    trainer.fit(Classifier3D(in_channels=2, width=4), datamodule=dm)
    assert trainer.state.finished


def test_subject_config_errors_name_the_key():
    with pytest.raises(LightningDicomError, match="subjects.reference"):
        DicomDataModule(root=".", subjects={"inputs": RULES, "reference": "flair"})
    with pytest.raises(LightningDicomError, match="subjects.inputs.t1.description"):
        DicomDataModule(root=".", subjects={"inputs": {"t1": {"description": "(unclosed"}}})


def test_a_mask_linked_to_a_non_reference_input_lands_on_the_reference_grid(tmp_path):
    """A DICOM SEG drawn on the T2 (oblique, other grid) is linked to the subject through its T2 and
    placed on the T1 grid: it covers the lesion sphere there (Dice >= 0.8 against the analytic sphere;
    nearest-neighbour from a 1.3 x 1.3 x 2.5 mm grid)."""
    from lightning_dicom.demo.synthetic_masks import write_seg
    from lightning_dicom.demo.synthetic_subjects import world_points

    root = tmp_path / "data"
    truth = write_subject_dataset(root, n_patients=2, flair_every=0, t1_shape=(10, 20, 20))
    study = next(s for s in truth if s.label == 1)
    t1, t2 = study.series["t1"], study.series["t2"]
    centre = np.array([2.0, -3.0, 1.0])  # the lesion of demo.synthetic_subjects.field
    on_t2 = (
        np.linalg.norm(world_points(t2.hu.shape, t2.spacing, t2.origin, t2.direction) - centre, axis=-1) <= 6
    )
    write_seg(root / "seg" / "lesion.dcm", t2, {"lesion": on_t2.astype(np.uint8)})
    dm = DicomDataModule(
        root=root, work_dir=tmp_path / "wd", progress=False, subjects={"inputs": RULES},
        preprocessing={"orientation": "none", "normalize": "none"}, masks={"structures": ["lesion"]},
        loader={"num_workers": 0},
    )  # fmt: skip
    with pytest.warns(LightningDicomWarning, match="1 series lack a required structure"):
        dm.setup("fit")  # the study without a lesion has no SEG
    assert dm.report["series_missing_structures"] == {
        f"study:{s.study_uid}": ["lesion"] for s in truth if s.label == 0
    }
    ds = dm.datasets["predict"]
    sample = next(ds[i] for i in range(len(ds)) if ds[i]["meta"]["series_id"] == f"study:{study.study_uid}")
    mask = sample["mask"].numpy()[0].astype(bool)
    expected = (
        np.linalg.norm(world_points(t1.hu.shape, t1.spacing, t1.origin, t1.direction) - centre, axis=-1) <= 6
    )
    assert mask.shape == expected.shape
    dice = 2 * (mask & expected).sum() / (mask.sum() + expected.sum())
    assert dice >= 0.8, dice


def test_contrast_and_acquisition_rules_choose_the_series(tmp_path):
    """``contrast`` reads ContrastBolusAgent (0018,0010) from the index (fast parser and pydicom alike);
    ``echo_number`` picks one echo of a multi-echo series split into volumes by the index."""
    import pydicom

    study = "1.2.826.0.1.3680043.8.498.80"
    pre = write_series(
        tmp_path / "pre", np.zeros((4, 8, 8)), study_uid=study, series_description="T1", modality="MR"
    )
    post = write_series(tmp_path / "post", np.ones((4, 8, 8)), study_uid=study, series_description="T1", modality="MR",
                        series_number=2)  # fmt: skip
    for f in post.files:
        ds = pydicom.dcmread(f)
        ds.ContrastBolusAgent = "GADOLINIUM"
        ds.save_as(f)
    records = _records(tmp_path, tmp_path / "i.sqlite")
    assert {r.series_uid: r.contrast_agent for r in records} == {
        pre.series_uid: "",
        post.series_uid: "GADOLINIUM",
    }
    cfg = SubjectsConfig(inputs={"t1": {"description": "t1", "contrast": "absent"},
                                 "t1c": {"description": "t1", "contrast": "present"}})  # fmt: skip
    (subject,), report = resolve_subjects(records, cfg)
    assert [r.series_uid for r in subject.inputs] == [pre.series_uid, post.series_uid]
    assert report["complete"] == 1 and report["incomplete"] == {}


def test_echo_rule_picks_one_volume_of_a_multi_echo_series(tmp_path):
    """``echo_number`` picks one echo of a multi-echo series that the index split into volumes."""
    from lightning_dicom.demo.synthetic_mr import MRVolume, write_mr_series

    rng = np.random.default_rng(0)
    stored = [rng.integers(0, 1000, (4, 8, 8)).astype(np.uint16) for _ in range(2)]
    write_mr_series(tmp_path / "me", [MRVolume(stored[e], {"EchoNumbers": e + 1, "EchoTime": str(10 + 20 * e)})
                                      for e in range(2)])  # fmt: skip
    records = _records(tmp_path, tmp_path / "i.sqlite")
    assert sorted(r.echo_number for r in records) == [1, 2]
    cfg = SubjectsConfig(inputs={"late": {"echo_number": 2}, "early": {"echo_number": 1}})
    (subject,), _ = resolve_subjects(records, cfg)
    assert [r.echo_number for r in subject.inputs] == [2, 1]
    array, _, _ = process_subject(subject, NATIVE)
    np.testing.assert_array_equal(array[0], stored[1])  # rescale 1/0: the stored values
    np.testing.assert_array_equal(array[1], stored[0])


def test_index_with_a_subjects_config_lists_complete_and_incomplete_studies(tmp_path):
    """``lightning-dicom index --config`` reports which studies form complete subjects and what each lacks."""
    import subprocess
    import sys

    import yaml

    root = tmp_path / "data"
    truth = write_subject_dataset(root, n_patients=4, t1_shape=(6, 12, 12))
    cfg = tmp_path / "subjects.yaml"
    cfg.write_text(yaml.safe_dump({"data": {"root": str(root), "work_dir": str(tmp_path / "wd"), "subjects": {
        "inputs": {**RULES, "flair": {"description": "(?i)flair"}}, "missing": "skip"}}}))  # fmt: skip
    out = subprocess.run([sys.executable, "-m", "lightning_dicom.cli", "index", "--config", str(cfg), "--quiet"],
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    without = sorted(s.study_uid for s in truth if "flair" not in s.series)
    assert "subjects: 2 of 4 complete; 2 used, 2 left out (missing: skip)" in out.stdout
    for uid in without:
        assert f"study:{uid}: no flair (left out)" in out.stdout
    assert all(s.patient_id not in out.stdout for s in truth)  # pseudonyms only
