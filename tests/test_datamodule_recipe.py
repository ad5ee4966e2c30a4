"""DicomDataModule with k folds, stratification, the balanced sampler, and resuming on the saved split."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import pytorch_lightning as pl
from pytorch_lightning.callbacks import ModelCheckpoint

from lightning_dicom import DicomDataModule
from lightning_dicom.config import SplitConfig
from lightning_dicom.data.split import split_series
from lightning_dicom.demo.models import Classifier3D
from lightning_dicom.demo.synthetic import write_dataset
from lightning_dicom.dicom.pseudonym import KEY_FILE
from lightning_dicom.errors import ConfigError

PREP = {"spacing": [2.0, 2.0, 4.0], "window": [-200, 400], "size": [4, 8, 8]}


def _dm(root: Path, work: Path, labels: Path, **kw: Any) -> DicomDataModule:
    kw.setdefault("loader", {"batch_size": 2, "num_workers": 0})
    kw.setdefault("split", {"val": 0.34, "seed": 3})
    return DicomDataModule(root=root, labels=labels, work_dir=work, preprocessing=PREP, progress=False, **kw)


class Recorder(Classifier3D):
    """Classifier3D that records the series ids of its training batches, per epoch."""

    def __init__(self) -> None:
        super().__init__(width=2)
        self.seen: dict[int, list[str]] = {}

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> Any:
        self.seen.setdefault(self.current_epoch, []).extend(batch["meta"]["series_id"])
        return super().training_step(batch, batch_idx)


def _trainer(epochs: int, ckpt_dir: Path | None = None) -> pl.Trainer:
    callbacks = [ModelCheckpoint(dirpath=ckpt_dir, save_last=True)] if ckpt_dir is not None else []
    return pl.Trainer(
        max_epochs=epochs,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=ckpt_dir is not None,
        callbacks=callbacks,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
    )


def _labels_csv(path: Path, *roots: Path) -> Path:
    rows = ["SeriesInstanceUID,label"]
    for r in roots:
        rows += (r / "labels.csv").read_text().splitlines()[1:]
    path.write_text("\n".join(rows) + "\n")
    return path


@pytest.mark.slow
def test_a_resumed_run_trains_on_the_split_it_started_with_after_data_was_added(tmp_path):
    data = tmp_path / "data"
    write_dataset(data / "first", n_patients=8, shape_zyx=(8, 16, 16), spacing=(1.0, 1.0, 2.0), seed=21)
    labels = _labels_csv(tmp_path / "labels.csv", data / "first")
    pl.seed_everything(0)
    dm = _dm(data, tmp_path / "work", labels)
    first = Recorder()
    _trainer(1, tmp_path / "ckpt").fit(first, datamodule=dm)
    started = {k: list(v) for k, v in dm.split.items()}
    assert sorted(first.seen[0]) == started["train"]

    more = write_dataset(
        data / "second", n_patients=6, shape_zyx=(8, 16, 16), spacing=(1.0, 1.0, 2.0), seed=22
    )
    _labels_csv(labels, data / "first", data / "second")
    resumed_dm = _dm(data, tmp_path / "work", labels)
    resumed_dm.prepare_data()
    resumed_dm.setup("fit")  # what a fresh split on the grown data would be: a different training set
    assert resumed_dm.split["train"] != started["train"]
    assert {s.series_uid for s in more} & set(resumed_dm.split["train"])

    resumed_dm = _dm(data, tmp_path / "work", labels)
    second = Recorder()
    _trainer(2, tmp_path / "ckpt").fit(
        second, datamodule=resumed_dm, ckpt_path=tmp_path / "ckpt" / "last.ckpt"
    )
    assert list(second.seen) == [1]  # epoch 0 came from the checkpoint
    assert sorted(second.seen[1]) == started["train"]  # each series of the original train part, once
    assert resumed_dm.split == started
    saved = json.loads((tmp_path / "work" / "split.json").read_text())
    assert saved["train"] == started["train"] and saved["val"] == started["val"]
    assert len(resumed_dm.datasets["predict"]) == 14  # new series are still predicted, not trained on


def test_folds_through_the_datamodule_are_the_same_on_every_rank_and_recorded(synthetic_dataset, tmp_path):
    root, series = synthetic_dataset
    vals = []
    for fold in range(3):
        split = {"folds": 3, "fold": fold, "seed": 1}
        if fold:  # one project: patients are grouped by their keyed pseudonym, so the folds share the key
            (tmp_path / f"w{fold}").mkdir()
            shutil.copy(tmp_path / "w0" / KEY_FILE, tmp_path / f"w{fold}" / KEY_FILE)
        rank0 = _dm(root, tmp_path / f"w{fold}", root / "labels.csv", split=split)
        rank0.prepare_data()
        rank0.setup("fit")
        rank1 = _dm(root, tmp_path / f"w{fold}", root / "labels.csv", split=split)  # another process's view
        rank1.setup("fit")
        assert rank1.split == rank0.split
        doc = json.loads((tmp_path / f"w{fold}" / "split.json").read_text())
        assert doc["fold"] == fold and len(doc["folds"]) == 3 and doc["folds"][fold] == rank0.split["val"]
        assert sum(sum(c.values()) for c in doc["classes"].values()) == len(series)  # class counts
        vals.append(set(rank0.split["val"]))
    assert set().union(*vals) == {s.series_uid for s in series} and sum(map(len, vals)) == len(series)


def test_balanced_sampler_in_the_datamodule(tmp_path):
    root = tmp_path / "data"
    series = write_dataset(
        root, n_patients=10, shape_zyx=(4, 12, 12), spacing=(1.0, 1.0, 2.0), seed=4, lesion_fraction=0.2
    )
    dm = _dm(
        root,
        tmp_path / "work",
        root / "labels.csv",
        split={"val": 0.0, "seed": 0},
        loader={"batch_size": 4, "num_workers": 0, "sampler": "balanced", "samples_per_epoch": 40},
        patches={"size": [2, 4, 4], "per_volume": 2},
    )
    dm.prepare_data()
    dm.setup("fit")
    truth = {s.series_uid: int(s.label) for s in series}
    drawn = []
    loader = dm.train_dataloader()
    for epoch in range(10):
        loader.sampler.set_epoch(epoch)
        batches = list(loader)
        assert len(batches) == 10
        drawn += [truth[i] for b in batches for i in b["meta"]["series_id"]]
    assert len(drawn) == 400
    k = sum(drawn)  # 2 of 10 series carry a lesion; balanced: half the draws
    assert abs(k - 200) < 4 * np.sqrt(100)
    regression = tmp_path / "reg.csv"
    regression.write_text(
        "SeriesInstanceUID,age\n" + "".join(f"{s.series_uid},{i}.5\n" for i, s in enumerate(series))
    )
    bad = _dm(root, tmp_path / "work", regression, loader={"sampler": "balanced"})
    with pytest.raises(ConfigError, match="'balanced' needs one class label column.*regression"):
        bad.setup("fit")


def test_stratified_split_through_the_datamodule(tmp_path):
    root = tmp_path / "data"
    series = write_dataset(
        root, n_patients=20, shape_zyx=(4, 8, 8), spacing=(1.0, 1.0, 2.0), seed=9, lesion_fraction=0.1
    )
    dm = _dm(root, tmp_path / "work", root / "labels.csv", split={"val": 0.5, "seed": 0, "stratify": True})
    dm.prepare_data()
    dm.setup("fit")
    labels = {s.series_uid: int(s.label) for s in series}
    assert [sum(labels[i] for i in dm.split[p]) for p in ("train", "val")] == [1, 1]
    expected = split_series(list(dm.series.values()), SplitConfig(val=0.5, stratify=True), labels)
    assert dm.split == expected
