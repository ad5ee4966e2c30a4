"""UNet3D: shapes on odd sizes, learning on a synthetic batch, the Dice metric, the predict contract."""

from __future__ import annotations

import pytest
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader

from lightning_dicom.demo.segmentation_models import UNet3D, dice_per_class, soft_dice_loss


@pytest.mark.parametrize(
    ("size", "depth", "classes"),
    [
        ((7, 9, 11), 3, 2),
        ((1, 5, 3), 3, 3),  # smaller than 2**depth along every axis
        ((13, 6, 17), 2, 4),
    ],
)
def test_forward_shapes_on_odd_sizes(size, depth, classes):
    torch.manual_seed(0)
    model = UNet3D(in_channels=2, num_classes=classes, width=4, depth=depth)
    x = torch.randn(2, 2, *size)
    logits = model(x)
    assert logits.shape == (2, classes, *size)
    assert torch.isfinite(logits).all()


def test_padding_does_not_mix_samples_and_crop_is_the_top_left_corner():
    torch.manual_seed(0)
    model = UNet3D(width=4).eval()
    x = torch.randn(2, 1, 9, 10, 11)
    with torch.no_grad():
        both = model(x)
        one = model(x[1:])
    torch.testing.assert_close(both[1:], one)


def _blob_batch(n: int = 2, size: tuple[int, int, int] = (8, 10, 7)) -> dict:
    g = torch.Generator().manual_seed(0)
    image = torch.randn(n, 1, *size, generator=g) * 0.3
    mask = torch.zeros(n, 1, *size, dtype=torch.long)
    mask[0, 0, 2:6, 3:8, 2:6] = 1
    mask[1, 0, 3:7, 1:5, 3:7] = 1
    image = image + 2.0 * mask  # the structure is brighter
    meta = {
        "series_id": [f"1.2.3.{i}" for i in range(n)],
        "spacing": torch.ones(n, 3, dtype=torch.float64),
        "origin": torch.zeros(n, 3, dtype=torch.float64),
        "direction": torch.eye(3).reshape(1, 9).repeat(n, 1),
    }
    return {"image": image, "mask": mask, "meta": meta}


def test_a_few_steps_reduce_the_loss():
    torch.manual_seed(0)
    model = UNet3D(width=4, lr=1e-2)
    batch = _blob_batch()
    opt = model.configure_optimizers()
    target = batch["mask"][:, 0]
    losses = []
    for _ in range(10):
        opt.zero_grad()
        loss = model.loss(model(batch["image"]), target)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.8 * losses[0], losses
    assert all(b < a for a, b in zip(losses, losses[1:], strict=False)), losses


def test_dice_on_a_hand_made_example():
    target = torch.zeros(1, 2, 4, dtype=torch.long)
    pred = torch.zeros(1, 2, 4, dtype=torch.long)
    target[0, 0, :] = 1  # class 1: 4 voxels
    pred[0, 0, :2] = 1  # 2 of them ...
    pred[0, 1, :2] = 1  # ... and 2 false positives: Dice 2*2 / (4 + 4)
    pred[0, 1, 3] = 3  # class 3 predicted, absent from the target: Dice 0
    d = dice_per_class(pred, target, num_classes=4)  # class 2 absent from both: 1
    torch.testing.assert_close(d, torch.tensor([[0.5, 1.0, 0.0]], dtype=torch.float64))
    assert dice_per_class(target, target, 2).item() == 1.0
    # two samples: per-sample values, not pooled
    d2 = dice_per_class(torch.stack([pred[0], target[0]]), torch.stack([target[0], target[0]]), 2)
    torch.testing.assert_close(d2, torch.tensor([[0.5], [1.0]], dtype=torch.float64))


def test_soft_dice_loss_is_zero_for_a_confident_perfect_prediction_and_one_for_the_opposite():
    target = torch.zeros(1, 3, 3, 3, dtype=torch.long)
    target[0, 1, 1, 1] = 1
    logits = torch.nn.functional.one_hot(target, 2).movedim(-1, 1).float() * 50
    assert soft_dice_loss(logits, target).item() < 1e-4
    assert soft_dice_loss(-logits, target).item() > 0.99


def test_trainer_fit_validate_predict_contract(tmp_path):
    pl.seed_everything(0)
    batch = _blob_batch()
    samples = [
        {
            "image": batch["image"][i],
            "mask": batch["mask"][i],
            "meta": {k: v[i] for k, v in batch["meta"].items()},
        }
        for i in range(2)
    ]
    loader = DataLoader(samples, batch_size=2)
    model = UNet3D(width=4, lr=1e-2)
    trainer = pl.Trainer(
        accelerator="cpu",
        max_steps=3,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    trainer.fit(model, train_dataloaders=loader, val_dataloaders=loader)
    for key in ("train_loss", "val_loss", "val_dice"):
        assert key in trainer.callback_metrics, key
    assert 0.0 <= float(trainer.callback_metrics["val_dice"]) <= 1.0
    (out,) = trainer.predict(model, dataloaders=loader)
    assert out["mask"].shape == (2, 1, 8, 10, 7)
    assert out["mask"].dtype == torch.int64
    assert out["meta"]["series_id"] == ["1.2.3.0", "1.2.3.1"]
    model.hparams.predict_probabilities = True
    (out,) = trainer.predict(model, dataloaders=loader)
    assert out["mask"].shape == (2, 2, 8, 10, 7)
    assert out["mask"].dtype == torch.float32
    torch.testing.assert_close(out["mask"].sum(1), torch.ones(2, 8, 10, 7))


def test_rejects_channels_masks_and_bad_arguments():
    model = UNet3D(width=4)
    batch = _blob_batch()
    batch["mask"] = torch.cat([batch["mask"], batch["mask"]], dim=1)
    with pytest.raises(ValueError, match="labels"):
        model.training_step(batch, 0)
    with pytest.raises(ValueError, match="background"):
        UNet3D(num_classes=1)
