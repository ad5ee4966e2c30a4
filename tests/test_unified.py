"""The unified ``lightning`` package (issue 15): an ``L.Trainer`` takes the DataModule and the prediction
writers of :mod:`lightning_dicom.unified`, and the CLI runs on ``lightning.pytorch`` when the config names it.
Skipped when the optional ``lightning`` extra is not installed."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

L = pytest.importorskip("lightning.pytorch")

import pytorch_lightning as pl  # noqa: E402
import torch  # noqa: E402

from lightning_dicom import DicomDataModule as PLDataModule  # noqa: E402
from lightning_dicom.demo.synthetic import write_dataset  # noqa: E402
from lightning_dicom.unified import ClassificationCSVWriter, DicomDataModule, PredictionWriter  # noqa: E402

MODEL = textwrap.dedent(
    '''
    import lightning.pytorch as L
    import torch
    from torch.nn import functional as F


    class TinyL(L.LightningModule):
        """A user's model written for `import lightning.pytorch as L`."""

        def __init__(self, num_classes: int = 2) -> None:
            super().__init__()
            self.head = torch.nn.Linear(1, num_classes)

        def forward(self, x):
            return self.head(x.float().mean(dim=(1, 2, 3, 4)).unsqueeze(1))

        def training_step(self, batch, batch_idx):
            return F.cross_entropy(self(batch["image"]), batch["label"])

        def validation_step(self, batch, batch_idx):
            self.log("val_loss", F.cross_entropy(self(batch["image"]), batch["label"]), batch_size=len(batch["label"]))

        def predict_step(self, batch, batch_idx):
            return {"series_id": batch["meta"]["series_id"], "probs": torch.softmax(self(batch["image"]), 1)}

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)
    '''
)


@pytest.fixture(scope="module")
def user(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("unified")
    write_dataset(home / "ct", n_patients=6, shape_zyx=(8, 16, 16), spacing=(1.0, 1.0, 2.0), seed=9)
    (home / "tiny_l.py").write_text(MODEL)
    return home


def test_an_L_trainer_takes_the_datamodule_and_the_writers(user: Path, tmp_path: Path) -> None:
    sys.path.insert(0, str(user))
    try:
        from tiny_l import TinyL
    finally:
        sys.path.remove(str(user))
    dm = DicomDataModule(
        root=user / "ct",
        labels=user / "ct" / "labels.csv",
        work_dir=tmp_path / "work",
        progress=False,
        preprocessing={"size": [8, 16, 16]},
        split={"val": 0.34},
    )
    assert isinstance(dm, L.LightningDataModule) and not isinstance(dm, pl.LightningDataModule)
    assert isinstance(PLDataModule(root=user / "ct"), pl.LightningDataModule)  # the other namespace's
    writer = ClassificationCSVWriter(output_dir=tmp_path / "pred")
    assert isinstance(PredictionWriter(tmp_path / "seg"), L.callbacks.BasePredictionWriter)
    trainer = L.Trainer(
        max_epochs=1,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        callbacks=[writer],
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    model = TinyL()
    trainer.fit(model, datamodule=dm)
    trainer.predict(model, datamodule=dm, return_predictions=False)
    (path,) = (tmp_path / "pred").glob("predictions-*.csv")
    rows = list(csv.DictReader(path.open()))
    assert len(rows) == 6 and {r["series_uid"] for r in rows} == set(dm.series)
    assert torch.allclose(
        torch.tensor([float(r["prob_0"]) + float(r["prob_1"]) for r in rows]), torch.ones(6)
    )


@pytest.mark.slow
def test_cli_runs_on_lightning_pytorch_when_the_config_names_it(user: Path, tmp_path: Path) -> None:
    config = tmp_path / "l.yaml"
    config.write_text(
        textwrap.dedent(
            f"""
            trainer:
              accelerator: cpu
              max_epochs: 1
              logger:
                class_path: lightning.pytorch.loggers.CSVLogger
                init_args: {{save_dir: .}}
              callbacks:
                - class_path: lightning.pytorch.callbacks.ModelCheckpoint
                  init_args: {{monitor: val_loss, save_last: true}}
            model:
              class_path: tiny_l.TinyL
            data:
              root: {user / "ct"}
              labels: {user / "ct" / "labels.csv"}
              preprocessing: {{size: [8, 16, 16]}}
              split: {{val: 0.34}}
            """
        )
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(user), os.environ.get("PYTHONPATH", "")])}
    for cmd in (["fit"], ["predict", "--ckpt_path", "best"]):
        proc = subprocess.run(
            [sys.executable, "-m", "lightning_dicom.cli", *cmd, "--config", str(config)],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
    assert len(list(tmp_path.glob("lightning_logs/version_1/predictions/predictions-*.csv"))) == 1
