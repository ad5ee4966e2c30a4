"""A small example 3D U-Net for segmentation; any LightningModule that reads ``batch["mask"]`` works.

Batches (from :class:`~lightning_dicom.DicomDataModule` with masks in 'labels' mode) carry
``image`` ``[B, C, D, H, W]`` float and ``mask`` ``[B, 1, D, H, W]`` int64 (0 = background, k = k-th
structure). ``predict_step`` follows the contract of :class:`~lightning_dicom.writer.PredictionWriter`:
``{"mask": labels [B, 1, D, H, W] int64, "meta": batch["meta"]}``; with a DataModule that offers an
``inferer()`` (``data.inference``, roi default ``data.patches.size``) it predicts by sliding window.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytorch_lightning as pl
import torch
from torch.nn import functional as F

from lightning_dicom.demo.networks import build_unet, unet_forward

__all__ = ["UNet3D", "dice_per_class", "soft_dice_loss"]


def _target(mask: torch.Tensor) -> torch.Tensor:
    """``[B, 1, D, H, W]`` or ``[B, D, H, W]`` labels -> int64 ``[B, D, H, W]``."""
    if mask.ndim == 5:
        if mask.shape[1] != 1:
            raise ValueError(f"expected a label map [B, 1, D, H, W] ('labels' mode), got {tuple(mask.shape)}")
        mask = mask[:, 0]
    return mask.long()


def soft_dice_loss(logits: torch.Tensor, target: torch.Tensor, smooth: float = 1e-5) -> torch.Tensor:
    """1 - mean soft Dice over samples and foreground classes (1..K-1) of softmax(logits).

    Args:
        logits: ``[B, K, D, H, W]``.
        target: int64 labels ``[B, D, H, W]`` in 0..K-1.
        smooth: added to numerator and denominator (a class absent from both scores 1).
    """
    k = logits.shape[1]
    probs = torch.softmax(logits.float(), dim=1)[:, 1:]
    onehot = F.one_hot(target, k).movedim(-1, 1)[:, 1:].to(probs.dtype)
    dims = tuple(range(2, probs.ndim))
    inter = (probs * onehot).sum(dims)
    denom = probs.sum(dims) + onehot.sum(dims)
    return 1.0 - ((2.0 * inter + smooth) / (denom + smooth)).mean()


def dice_per_class(pred: torch.Tensor, target: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Hard Dice ``[B, K-1]`` of label maps per sample and foreground class (1..K-1).

    ``2 |P and T| / (|P| + |T|)``; a class absent from both prediction and target scores 1.
    ``pred`` and ``target`` are integer labels of one shape (``[B, ...]``).
    """
    if pred.shape != target.shape:
        raise ValueError(f"pred {tuple(pred.shape)} and target {tuple(target.shape)} differ in shape")
    b = pred.shape[0]
    p = pred.reshape(b, -1)
    t = target.reshape(b, -1)
    out = []
    for c in range(1, num_classes):
        pc, tc = p == c, t == c
        inter = (pc & tc).sum(1).double()
        denom = (pc.sum(1) + tc.sum(1)).double()
        out.append(torch.where(denom > 0, 2.0 * inter / denom.clamp_min(1), torch.ones_like(denom)))
    return torch.stack(out, dim=1) if out else torch.ones(b, 0, dtype=torch.float64, device=pred.device)


class UNet3D(pl.LightningModule):
    """A small 3D U-Net: ``depth`` poolings, two 3x3x3 convolutions (GroupNorm, LeakyReLU) per level.

    Loss = cross-entropy + soft Dice (foreground classes) on ``batch["mask"]`` ([B, 1, D, H, W]
    int64 labels). With a DataModule that offers ``inferer()`` (``data.inference``), validation, test and
    predict run by sliding window (validation/test on the blended logits). Logs ``train_loss``, ``val_loss``, ``val_dice`` (mean hard Dice over foreground
    classes and samples; a class absent from prediction and target scores 1), and the same for
    test. Inputs of any spatial size work: ``forward`` pads D, H, W up to a multiple of
    ``2**depth`` (edge replication) and crops the logits back.

    Args:
        in_channels: image channels C of ``[B, C, D, H, W]``.
        num_classes: classes including background (labels 0..num_classes-1).
        width: channels of the first level (doubled per level).
        depth: number of poolings (levels - 1).
        lr: Adam learning rate.
        dice_weight: weight of the soft Dice term.
        predict_probabilities: ``predict_step`` returns softmax probabilities ``[B, K, D, H, W]``
            (resampled linearly by the writer, then argmax) instead of argmax labels.
    """

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 2,
        width: int = 8,
        depth: int = 3,
        lr: float = 1e-3,
        dice_weight: float = 1.0,
        predict_probabilities: bool = False,
    ) -> None:
        super().__init__()
        if num_classes < 2:
            raise ValueError("num_classes counts the background: at least 2")
        if depth < 1:
            raise ValueError("depth must be >= 1")
        self.save_hyperparameters()
        build_unet(self, in_channels, num_classes, width, depth)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``[B, num_classes, D, H, W]`` of ``x`` ``[B, C, D, H, W]``."""
        return unet_forward(self, x, self.hparams["depth"])

    def loss(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Cross-entropy + ``dice_weight`` x soft Dice loss; ``target`` int64 ``[B, D, H, W]``."""
        return F.cross_entropy(logits.float(), target) + self.hparams["dice_weight"] * soft_dice_loss(
            logits, target
        )

    def _inferer(self) -> Any:
        """The DataModule's sliding-window inferer (``trainer.datamodule.inferer()``), or None."""
        make = getattr(getattr(self._trainer, "datamodule", None), "inferer", None)
        return make() if callable(make) else None

    def _step(self, batch: dict[str, Any], stage: str) -> torch.Tensor:
        target = _target(batch["mask"])
        inferer = self._inferer() if stage != "train" else None
        if inferer is not None:  # validate/test whole volumes as predict does: blended window logits
            logits = dataclasses.replace(inferer, output="logits")(batch["image"].float(), self).clone()
        else:
            logits = self(batch["image"].float())
        loss = self.loss(logits, target)
        bs = target.shape[0]
        self.log(f"{stage}_loss", loss, prog_bar=True, batch_size=bs, sync_dist=stage != "train")
        if stage != "train":
            dice = dice_per_class(logits.argmax(1), target, self.hparams["num_classes"]).mean()
            self.log(f"{stage}_dice", dice.float(), prog_bar=True, batch_size=bs, sync_dist=True)
        return loss

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        return self._step(batch, "train")

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._step(batch, "val")

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._step(batch, "test")

    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, Any]:
        """``{"mask": labels [B, 1, D, H, W] int64 (or probabilities [B, K, D, H, W]), "meta": batch["meta"]}``.

        Sliding window when the DataModule offers an inferer (``trainer.datamodule.inferer()``, from
        ``data.inference``; its ``output`` decides labels or probabilities), else one pass over the
        whole volume (``predict_probabilities`` decides).
        """
        inferer = self._inferer()
        if inferer is not None:
            return {"mask": inferer(batch["image"].float(), self), "meta": batch.get("meta")}
        logits = self(batch["image"].float())
        if self.hparams["predict_probabilities"]:
            mask = torch.softmax(logits, dim=1)
        else:
            mask = logits.argmax(1, keepdim=True)
        return {"mask": mask, "meta": batch.get("meta")}

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=self.hparams["lr"])
