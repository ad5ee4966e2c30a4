"""Batch augmentation on tensors: spatial transforms shared by image and mask, intensity per sample."""

from __future__ import annotations

import pytest
import torch

from lightning_dicom.config import AugmentConfig
from lightning_dicom.data.augment import augment_batch


def _batch(b: int = 6) -> dict[str, torch.Tensor]:
    image = torch.rand(b, 1, 4, 5, 5, generator=torch.Generator().manual_seed(1))
    return {"image": image, "mask": (image > 0.5).long()}


def test_flips_and_rotations_permute_voxels_and_move_the_mask_with_the_image():
    batch = _batch()
    out = augment_batch(
        batch, AugmentConfig(flip_axes=[0, 1, 2], rot90=True), generator=torch.Generator().manual_seed(0)
    )
    assert torch.equal((out["image"] > 0.5).long(), out["mask"])
    changed = 0
    for i in range(6):
        assert torch.equal(out["image"][i].flatten().sort().values, batch["image"][i].flatten().sort().values)
        changed += not torch.equal(out["image"][i], batch["image"][i])
    assert changed >= 3  # 6 samples, each unchanged with probability 1/32


def test_each_sample_is_one_of_the_flips_drawn():
    batch = _batch(8)
    out = augment_batch(batch, AugmentConfig(flip_axes=[2]), generator=torch.Generator().manual_seed(3))
    flipped = [torch.equal(out["image"][i], batch["image"][i].flip(-1)) for i in range(8)]
    same = [torch.equal(out["image"][i], batch["image"][i]) for i in range(8)]
    assert all(f or s for f, s in zip(flipped, same, strict=True))
    assert any(flipped) and any(same)


def test_intensity_scale_and_shift_stay_in_range():
    image = torch.ones(64, 1, 2, 2, 2)
    out = augment_batch(
        {"image": image},
        AugmentConfig(intensity_scale=0.1, intensity_shift=0.2),
        generator=torch.Generator().manual_seed(0),
    )
    per = out["image"].flatten(1)
    assert torch.all(per == per[:, :1])  # one scale/shift per sample
    assert float(per.min()) >= 0.9 - 0.2 - 1e-6 and float(per.max()) <= 1.1 + 0.2 + 1e-6
    assert float(per.std()) > 0.01


def test_config_rejects_bad_values():
    with pytest.raises(ValueError, match="intensity_scale"):
        AugmentConfig(intensity_scale=1.5)
    with pytest.raises(ValueError, match="flip_axes"):
        AugmentConfig(flip_axes=[3])


def test_datamodule_augments_only_while_training(synthetic_dataset, tmp_path):
    from lightning_dicom import DicomDataModule

    root, _ = synthetic_dataset
    dm = DicomDataModule(
        root=root,
        work_dir=tmp_path,
        progress=False,
        loader={"num_workers": 0},
        augment={"intensity_shift": 0.5},
    )
    batch = {"image": torch.zeros(2, 1, 2, 2, 2, dtype=torch.float16)}
    out = dm.on_after_batch_transfer(batch, 0)  # no trainer: not training
    assert out["image"].dtype == torch.float32 and float(out["image"].abs().max()) == 0.0
