"""Classification predictions as CSV (issue 15), and pin_memory on a machine without an accelerator."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch

from lightning_dicom.data.loader import ThreadedDataLoader, accelerator_available
from lightning_dicom.errors import ConfigError
from lightning_dicom.prediction_csv import PredictionCSV, new_run_path


def test_rows_classes_and_labels(tmp_path: Path) -> None:
    out = PredictionCSV(tmp_path / "p.csv", class_names=["benign", "malignant"])
    out.add(["1.2.3", "1.2.4#2"], np.array([[0.9, 0.1], [0.3, 0.7]]), labels=np.array([0, 1]))
    out.add(["1.2.5"], np.array([[0.4, 0.6]]), labels=np.array([0]))
    rows = list(csv.reader((tmp_path / "p.csv").open()))
    assert rows[0] == ["series_uid", "series_id", "predicted_class", "prob_benign", "prob_malignant", "label"]
    assert rows[1] == ["1.2.3", "1.2.3", "benign", "0.900000", "0.100000", "benign"]
    assert rows[2][:3] == ["1.2.4", "1.2.4#2", "malignant"] and rows[2][-1] == "malignant"
    assert rows[3][2] == "malignant" and rows[3][-1] == "benign"
    assert out.rows == 3
    with pytest.raises(ConfigError, match=r"\[B, K\]"):
        out.add(["a", "b"], np.ones((1, 2)))


def test_each_run_gets_a_new_file(tmp_path: Path) -> None:
    paths = {new_run_path(tmp_path / "predictions") for _ in range(3)}
    assert len(paths) == 3 and all(p.exists() and p.suffix == ".csv" for p in paths)


def test_pin_memory_without_an_accelerator_is_ignored() -> None:
    data = [{"image": torch.zeros(2, 3)} for _ in range(4)]

    class Batches(torch.utils.data.Dataset):
        def __len__(self) -> int:
            return 4

        def __getitem__(self, idx: list[int]) -> dict:
            return {"image": torch.stack([data[i]["image"] for i in idx])}

    loader = ThreadedDataLoader(Batches(), sampler=[[0, 1], [2, 3]], batch_size=None, pin_memory=True)
    batches = list(loader)
    assert [b["image"].shape for b in batches] == [(2, 2, 3), (2, 2, 3)]
    assert loader.pin == accelerator_available()
    if not accelerator_available():
        assert not batches[0]["image"].is_pinned()


def test_a_failed_predict_run_leaves_no_csv(tmp_path: Path) -> None:
    """Rows go to a hidden part file, moved into place at the end: a run that raises on its second
    batch leaves neither the first batch's rows nor the reserved name; a finished run leaves one CSV."""
    import pytorch_lightning as pl

    from lightning_dicom.prediction_csv import ClassificationCSVWriter

    class Probs(pl.LightningModule):
        def __init__(self, fail_at: int | None) -> None:
            super().__init__()
            self.fail_at = fail_at
            self.dummy = torch.nn.Parameter(torch.zeros(1))

        def predict_step(self, batch: torch.Tensor, batch_idx: int) -> dict:
            if batch_idx == self.fail_at:
                raise RuntimeError("the model failed on this batch")
            return {"series_id": [f"1.2.{batch_idx}"], "probs": torch.tensor([[0.25, 0.75]])}

    def predict(fail_at: int | None) -> None:
        trainer = pl.Trainer(
            accelerator="cpu",
            logger=False,
            callbacks=[ClassificationCSVWriter(output_dir=tmp_path / "out")],
            enable_progress_bar=False,
            enable_model_summary=False,
        )
        loader = torch.utils.data.DataLoader(torch.zeros(3, 1), batch_size=1)
        trainer.predict(Probs(fail_at), dataloaders=loader, return_predictions=False)

    with pytest.raises(RuntimeError, match="failed on this batch"):
        predict(fail_at=1)
    assert list((tmp_path / "out").iterdir()) == []
    predict(fail_at=None)
    (table,) = list((tmp_path / "out").iterdir())
    assert table.name.startswith("predictions-") and table.suffix == ".csv"
    rows = list(csv.DictReader(table.open()))
    assert [r["series_id"] for r in rows] == ["1.2.0", "1.2.1", "1.2.2"]
