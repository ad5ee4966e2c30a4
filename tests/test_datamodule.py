"""DicomDataModule on generated series: hooks, splits, batches, a real Trainer."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import pytorch_lightning as pl
import torch

from lightning_dicom import DicomDataModule, LightningDicomError
from lightning_dicom.demo.models import Classifier3D
from lightning_dicom.dicom.index import DicomIndex
from lightning_dicom.errors import LightningDicomWarning

PREP = {"spacing": [2.0, 2.0, 2.0], "window": [-200, 400], "size": [8, 12, 12]}


def _labels(root: Path) -> dict[str, int]:
    with open(root / "labels.csv") as fh:
        return {r["SeriesInstanceUID"]: int(r["label"]) for r in csv.DictReader(fh)}


def _dm(root: Path, work: Path, **kw) -> DicomDataModule:
    kw.setdefault("loader", {"batch_size": 2, "num_workers": 0})
    return DicomDataModule(
        root=root,
        labels=root / "labels.csv",
        work_dir=work,
        preprocessing=PREP,
        split={"val": 0.34, "seed": 3},
        progress=False,
        **kw,
    )


def test_setup_splits_by_patient_and_batches_carry_labels(synthetic_dataset, tmp_path):
    root, series = synthetic_dataset
    dm = _dm(root, tmp_path)
    dm.prepare_data()
    dm.setup("fit")
    train, val = set(dm.split["train"]), set(dm.split["val"])
    assert train and val and not train & val
    assert train | val == {s.series_uid for s in series}
    patients = {s.series_uid: s.patient_id for s in series}
    assert not {patients[i] for i in train} & {patients[i] for i in val}
    truth = _labels(root)
    seen = 0
    for batch in dm.train_dataloader():
        assert batch["image"].shape[1:] == (1, 8, 12, 12)
        assert batch["image"].dtype == torch.float32  # consumed on the CPU: cast in the loader's threads
        assert float(batch["image"].min()) >= 0.0 and float(batch["image"].max()) <= 1.0
        for sid, label in zip(batch["meta"]["series_id"], batch["label"].tolist(), strict=True):
            assert truth[sid] == label
            seen += 1
        assert torch.allclose(batch["meta"]["spacing"], torch.tensor([2.0, 2.0, 2.0], dtype=torch.float64))
    assert seen == len(train)
    cast = dm.on_after_batch_transfer({"image": torch.zeros(1, dtype=torch.float16)}, 0)
    assert cast["image"].dtype == torch.float32


def test_setup_on_another_rank_reloads_the_persisted_index(synthetic_dataset, tmp_path):
    root, _ = synthetic_dataset
    first = _dm(root, tmp_path)
    first.prepare_data()
    first.setup("fit")
    other = _dm(root, tmp_path)  # a fresh process would see only the work dir
    other.setup("fit")
    assert other.split == first.split
    with DicomIndex([root], tmp_path / "index.sqlite") as idx:
        assert idx.scan(workers=1).n_read == 0
    assert (tmp_path / "split.json").exists()


def test_state_dict_restores_the_split(synthetic_dataset, tmp_path):
    root, _ = synthetic_dataset
    dm = _dm(root, tmp_path)
    dm.setup("fit")
    state = dm.state_dict()
    resumed = DicomDataModule(
        root=root,
        labels=root / "labels.csv",
        work_dir=tmp_path,
        preprocessing=PREP,
        split={"val": 0.5, "seed": 99},
        progress=False,
        loader={"num_workers": 0},
    )
    resumed.load_state_dict(state)
    resumed.setup("fit")
    assert resumed.split == dm.split


def test_uncached_path_gives_the_same_volumes(synthetic_dataset, tmp_path):
    root, _ = synthetic_dataset
    cached = _dm(root, tmp_path / "a")
    cached.setup("fit")
    plain = _dm(root, tmp_path / "b", cache={"enabled": False})
    plain.setup("fit")
    a = {b["meta"]["series_id"][0]: b["image"] for b in cached.predict_dataloader()}
    b = {b["meta"]["series_id"][0]: b["image"] for b in plain.predict_dataloader()}
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_allclose(a[k].float().numpy(), b[k].numpy(), atol=1e-3)


def test_patches_in_batches(synthetic_dataset, tmp_path):
    root, _ = synthetic_dataset
    dm = _dm(root, tmp_path, patches={"size": [4, 6, 6], "per_volume": 3})
    dm.setup("fit")
    batches = list(dm.train_dataloader())
    assert sum(b["image"].shape[0] for b in batches) == 3 * len(dm.split["train"])
    assert all(b["image"].shape[1:] == (1, 4, 6, 6) for b in batches)
    val = next(iter(dm.val_dataloader()))
    assert val["image"].shape[2:] == (8, 12, 12)  # validation sees whole volumes


def test_a_broken_series_is_skipped_and_reported(tmp_path):
    from lightning_dicom.demo.synthetic import write_dataset

    root = tmp_path / "data"
    series = write_dataset(root, n_patients=4, shape_zyx=(8, 16, 16), spacing=(1.0, 1.0, 2.0), seed=5)
    broken = series[0]
    # a slice missing after the headers were indexed: a gap in the stack
    dm = _dm(root, tmp_path / "work")
    with DicomIndex([root], tmp_path / "work" / "index.sqlite") as idx:
        idx.scan(workers=1)
    broken.files[3].unlink()
    dm.prepare_data()
    dm.setup("fit")
    failed = dict(dm.report["series_failed"])
    assert list(failed) == [broken.series_uid]
    assert "slice" in failed[broken.series_uid]
    assert broken.series_uid not in {b["meta"]["series_id"][0] for b in dm.predict_dataloader()}
    strict = _dm(root, tmp_path / "work2", on_error="raise")
    strict.prepare_data()  # records the failure; setup raises it on every rank alike
    with pytest.raises(LightningDicomError, match=broken.series_uid):
        strict.setup("fit")


@pytest.mark.slow
def test_trainer_fit_with_two_workers(training_dataset, tmp_path):
    root, _ = training_dataset
    pl.seed_everything(0)
    dm = _dm(root, tmp_path, loader={"batch_size": 2, "num_workers": 2})
    model = Classifier3D(width=4)
    trainer = pl.Trainer(
        max_epochs=1,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(model, datamodule=dm)
    assert trainer.state.finished
    assert np.isfinite(float(trainer.callback_metrics["val_loss"]))
    preds = trainer.predict(model, datamodule=dm)
    ids = [i for p in preds for i in p["series_id"]]
    assert sorted(ids) == sorted(s for part in dm.split.values() for s in part)


def test_irregular_stacks_are_rejected_or_resampled_per_config(tmp_path):
    from lightning_dicom.demo.synthetic import write_dataset

    root = tmp_path / "data"
    series = write_dataset(root, n_patients=3, shape_zyx=(8, 16, 16), spacing=(1.0, 1.0, 2.0), seed=9)
    series[1].files[4].unlink()  # one missing slice
    strict = _dm(root, tmp_path / "reject")
    strict.setup("fit")
    assert [sid for sid, _ in strict.report["series_failed"]] == [series[1].series_uid]
    lenient = DicomDataModule(
        root=root,
        labels=root / "labels.csv",
        work_dir=tmp_path / "resample",
        progress=False,
        preprocessing={**PREP, "irregular_stacks": "resample"},
        loader={"num_workers": 0},
    )
    with pytest.warns(LightningDicomWarning, match="resampled onto a uniform grid"):
        lenient.setup("fit")
    assert lenient.report["series_failed"] == []
    assert len(lenient.datasets["predict"]) == 3


def _anonymised(root: Path, n: int, slices: int = 8) -> list:
    """``n`` series, each its own study, all of PatientID "ANON" (as anonymisers leave them), ``slices``x12x12."""
    from lightning_dicom.demo.synthetic import write_series

    rng = np.random.default_rng(0)
    return [
        write_series(
            root / f"s{i}", rng.normal(0, 50, (slices, 12, 12)), spacing=(1.0, 1.0, 2.0), patient_id="ANON"
        )
        for i in range(n)
    ]


def test_one_patient_id_for_all_warns_that_validation_and_test_are_empty(tmp_path):
    """Anonymised data with one PatientID under ``group_by: patient``: one warning per empty part that
    names the counts and the fix (never the ID), before Lightning's generic zero-length message; with
    ``group_by: series`` the parts fill and nothing is said."""
    _anonymised(tmp_path / "d", 4)
    dm = DicomDataModule(
        root=tmp_path / "d",
        work_dir=tmp_path / "w",
        preprocessing=PREP,
        split={"val": 0.2, "test": 0.2},
        progress=False,
    )
    with pytest.warns(LightningDicomWarning) as caught:
        dm.setup("fit")
    messages = [str(w.message) for w in caught if issubclass(w.category, LightningDicomWarning)]
    fix = "all 4 series fall in 1 group(s) of split.group_by 'patient'; use split.group_by: study or series"
    assert messages == [
        f"validation split is empty: {fix} (or more patients)",
        f"test split is empty: {fix} (or more patients)",
    ]
    assert dm.split is not None and len(dm.split["train"]) == 4
    assert not any("ANON" in m for m in messages)
    ok = DicomDataModule(
        root=tmp_path / "d",
        work_dir=tmp_path / "w2",
        preprocessing=PREP,
        split={"val": 0.2, "test": 0.2, "group_by": "series"},
        progress=False,
    )
    ok.setup("fit")  # warnings are errors in this suite: none is raised
    assert ok.split is not None and len(ok.split["val"]) == len(ok.split["test"]) == 1


def test_k_folds_over_one_patient_fail_before_caching(tmp_path):
    _anonymised(tmp_path / "d", 3)
    dm = DicomDataModule(
        root=tmp_path / "d", work_dir=tmp_path / "w", preprocessing=PREP, split={"folds": 3}, progress=False
    )
    with pytest.raises(
        LightningDicomError, match=r"found 1: all 3 series fall in 1 group\(s\) of split.group_by"
    ):
        dm.prepare_data()
    assert not (tmp_path / "w" / "cache").exists() or not any((tmp_path / "w" / "cache").rglob("*.json"))


def test_cuda_cache_on_a_cpu_trainer_fails_before_indexing(synthetic_dataset, tmp_path):
    root, _ = synthetic_dataset
    dm = _dm(root, tmp_path / "w", cache={"device": "cuda"})
    trainer = pl.Trainer(
        max_epochs=1, accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False
    )
    with pytest.raises(
        LightningDicomError, match="cache.device 'cuda' needs a trainer on a CUDA accelerator"
    ):
        trainer.fit(Classifier3D(width=4), datamodule=dm)
    assert not (tmp_path / "w" / "index.sqlite").exists()


def test_label_coverage_names_only_non_zero_counts_and_series_dropped_by_selection(tmp_path):
    """Labels of series that ``data.selection`` dropped are "match no selected series (N dropped by
    data.selection)"; a zero count is never mentioned."""
    kept = _anonymised(tmp_path / "d" / "long", 2, slices=8)
    short = _anonymised(tmp_path / "d" / "short", 3, slices=3)
    (tmp_path / "labels.csv").write_text(
        "SeriesInstanceUID,label\n" + "".join(f"{s.series_uid},{i % 2}\n" for i, s in enumerate(kept + short))
    )
    dm = DicomDataModule(
        root=tmp_path / "d",
        labels=tmp_path / "labels.csv",
        work_dir=tmp_path / "w",
        preprocessing=PREP,
        selection={"min_slices": 4},
        split={"val": 0.0, "group_by": "series"},
        progress=False,
    )
    with pytest.warns(LightningDicomWarning) as caught:
        dm.setup("fit")
    messages = [str(w.message) for w in caught if issubclass(w.category, LightningDicomWarning)]
    assert messages == ["3 labels match no selected series (3 dropped by data.selection)"]
