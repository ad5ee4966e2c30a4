"""Run by tests/test_ddp.py: a 2-process CPU DDP fit that records what each rank trained on.

Usage: python tests/ddp_fit.py DATA_ROOT WORK_DIR OUT_DIR
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytorch_lightning as pl

from lightning_dicom import DicomDataModule
from lightning_dicom.demo.models import Classifier3D


class Recorder(Classifier3D):
    def __init__(self, out: str) -> None:
        super().__init__(width=4)
        self.out = out
        self.seen: list[str] = []

    def training_step(self, batch, batch_idx):
        self.seen.extend(batch["meta"]["series_id"])
        return super().training_step(batch, batch_idx)

    def on_train_epoch_end(self) -> None:
        dm = self.trainer.datamodule
        doc = {
            "rank": self.global_rank,
            "epoch": self.current_epoch,
            "seen": self.seen,
            "split": dm.split,
            "failed": dm.report["series_failed"],
        }
        Path(self.out, f"rank{self.global_rank}_epoch{self.current_epoch}.json").write_text(json.dumps(doc))
        self.seen = []


def main() -> None:
    root, work, out = sys.argv[1:4]
    pl.seed_everything(0)
    dm = DicomDataModule(
        root=root,
        labels=Path(root) / "labels.csv",
        work_dir=work,
        progress=False,
        preprocessing={"spacing": [2.0, 2.0, 2.0], "window": [-200, 400], "size": [8, 16, 16]},
        split={"val": 0.25},
        loader={"batch_size": 2, "num_workers": 1},
    )
    trainer = pl.Trainer(
        strategy="ddp",
        devices=2,
        accelerator="cpu",
        max_epochs=2,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(Recorder(out), datamodule=dm)


if __name__ == "__main__":
    main()
