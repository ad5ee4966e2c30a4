"""Light augmentation of batches on the device: flips, 90-degree rotations, intensity scale/shift.

Applied by :class:`~lightning_dicom.DicomDataModule` in ``on_after_batch_transfer`` during
training only, on whole batches ``[B, C, D, H, W]`` (z-y-x), where a GPU does it for almost nothing
and DataLoader workers stay free for I/O. Each sample draws its own flips/rotation/intensity;
``spatial_keys`` (e.g. ``mask``) get the same spatial transform as ``image``. Note that flips and
rotations change the voxel-to-world mapping: ``meta`` keeps the geometry of the unaugmented sample.
"""

from __future__ import annotations

from typing import Any

import torch

from lightning_dicom.config import AugmentConfig

__all__ = ["augment_batch"]


def augment_batch(
    batch: dict[str, Any],
    cfg: AugmentConfig,
    *,
    spatial_keys: tuple[str, ...] = ("image", "mask"),
    generator: torch.Generator | None = None,
) -> dict[str, Any]:
    """Return ``batch`` with ``image`` (and other ``spatial_keys``) augmented per sample."""
    image = batch["image"]
    b = image.shape[0]
    dev = image.device
    keys = [k for k in spatial_keys if isinstance(batch.get(k), torch.Tensor)]

    def draw(*shape: int) -> torch.Tensor:
        return torch.rand(*shape, generator=generator).to(dev)

    out = dict(batch)
    for axis in cfg.flip_axes:  # 0 = z, 1 = y, 2 = x
        pick = (draw(b) < 0.5).view(b, *[1] * (image.dim() - 1))
        for k in keys:
            t = out[k]
            out[k] = torch.where(pick, t.flip(2 + axis), t)
    if cfg.rot90 and image.shape[-1] == image.shape[-2]:
        turns = (draw(b) * 4).long().clamp(max=3).tolist()
        for k in keys:
            out[k] = torch.stack(
                [torch.rot90(t, n, dims=(-2, -1)) for t, n in zip(out[k], turns, strict=True)]
            )
    if cfg.intensity_scale > 0 or cfg.intensity_shift > 0:
        view = (b, *[1] * (image.dim() - 1))
        scale = 1 + (draw(b) * 2 - 1) * cfg.intensity_scale
        shift = (draw(b) * 2 - 1) * cfg.intensity_shift
        out["image"] = out["image"] * scale.view(view).to(image.dtype) + shift.view(view).to(image.dtype)
    return out
