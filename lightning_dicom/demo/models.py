"""A small example 3D CNN classifier; any LightningModule that reads ``batch["image"]`` works."""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
import torch
from torch import nn
from torch.nn import functional as F

from lightning_dicom.errors import ConfigError

__all__ = ["Classifier3D"]


class Classifier3D(pl.LightningModule):
    """Conv3d blocks, global max pooling, a linear head; cross-entropy on ``batch["label"]``.

    Args:
        in_channels: image channels C of ``[B, C, D, H, W]``.
        num_classes: number of classes.
        width: channels of the first block (doubled per block).
        lr: Adam learning rate.
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 2, width: int = 8, lr: float = 3e-3) -> None:
        super().__init__()
        self.save_hyperparameters()
        layers: list[nn.Module] = []
        c = in_channels
        for k in range(3):
            w = width * 2**k
            layers += [nn.Conv3d(c, w, 3, padding=1), nn.BatchNorm3d(w), nn.ReLU(inplace=True)]
            if k < 2:
                layers.append(nn.MaxPool3d(2))
            c = w
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(c, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.amax(self.features(x), dim=(2, 3, 4)))

    def _step(self, batch: dict[str, Any], stage: str) -> torch.Tensor:
        if "label" not in batch:
            raise ConfigError(
                f"{stage}: Classifier3D needs labels, and the batches have none: pass "
                "--data.labels /path/labels.csv (a CSV keyed by SeriesInstanceUID, StudyInstanceUID or PatientID)"
            )
        logits = self(batch["image"].float())
        loss = F.cross_entropy(logits, batch["label"])
        acc = (logits.argmax(1) == batch["label"]).float().mean()
        bs = batch["image"].shape[0]
        self.log(f"{stage}_loss", loss, prog_bar=True, batch_size=bs, sync_dist=stage != "train")
        self.log(f"{stage}_acc", acc, prog_bar=True, batch_size=bs, sync_dist=stage != "train")
        return loss

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        return self._step(batch, "train")

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._step(batch, "val")

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._step(batch, "test")

    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, Any]:
        probs = torch.softmax(self(batch["image"].float()), dim=1)
        out = {"series_id": batch["meta"]["series_id"], "probs": probs}
        if "label" in batch:
            out["label"] = batch["label"]
        return out

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=self.hparams["lr"])
