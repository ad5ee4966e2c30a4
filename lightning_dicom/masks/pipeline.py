"""Masks through the pipeline: pick structures, put them on the preprocessed image's grid.

Masks from :func:`lightning_dicom.masks.read_mask` (binary uint8 images on the source series'
grid, one per segment/ROI) are matched to the configured structures by regular expression, then
resampled straight onto the *final* grid of the preprocessed image (its spacing, origin,
direction and crop/pad, all recorded in its ``meta``): one resampling, so image and mask cannot
drift apart. With ``interpolation='linear'`` the one-hot channels (background included) are
resampled linearly and the winner is taken per voxel (argmax; a channel >= 0.5 in 'channels'
mode), which keeps boundaries smoother than nearest neighbour when spacing changes.

Output: uint8 ``[1, D, H, W]`` (labels: 0 background, k = k-th structure, earlier structures win
overlaps) or ``[K, D, H, W]`` (channels).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import SimpleITK as sitk

from lightning_dicom import io
from lightning_dicom.config import MaskConfig

__all__ = ["foreground_coords", "mask_on_grid", "match_structures"]


def match_structures(
    found: Mapping[str, sitk.Image], cfg: MaskConfig
) -> tuple[list[sitk.Image | None], list[str]]:
    """For each configured structure, the union of the found masks whose names match its regex.

    Returns ``(images, missing)``: ``images[k]`` is None when nothing matched structure k.
    """
    out: list[sitk.Image | None] = []
    missing = []
    for name, pattern in cfg.structures.items():
        rx = re.compile(pattern)
        hits = [img for roi, img in found.items() if rx.search(roi)]
        if not hits:
            out.append(None)
            missing.append(name)
            continue
        acc = hits[0]
        for h in hits[1:]:
            acc = sitk.Or(acc, h)
        out.append(acc)
    return out, missing


def _grid(meta: Mapping[str, Any], shape_zyx: Sequence[int]) -> dict[str, Any]:
    return {
        "size": [int(s) for s in shape_zyx[::-1]],
        "spacing": [float(x) for x in meta["spacing"]],
        "origin": [float(x) for x in meta["origin"]],
        "direction": [float(x) for x in meta["direction"]],
    }


def _resample(img: sitk.Image, grid: Mapping[str, Any], interp: int) -> np.ndarray:
    out = sitk.Resample(
        img,
        grid["size"],
        sitk.Transform(),
        interp,
        grid["origin"],
        grid["spacing"],
        grid["direction"],
        0.0,
        sitk.sitkFloat32 if interp == sitk.sitkLinear else sitk.sitkUInt8,
    )
    return io.to_array(out)  # a copy: a view would dangle once ``out`` is freed


def mask_on_grid(
    structures: Sequence[sitk.Image | None],
    meta: Mapping[str, Any],
    shape_zyx: Sequence[int],
    cfg: MaskConfig,
) -> np.ndarray:
    """Resample per-structure binary masks (source grid) onto the preprocessed grid in ``meta``."""
    grid = _grid(meta, shape_zyx)
    k = len(structures)
    shape = tuple(int(s) for s in shape_zyx)
    linear = cfg.interpolation == "linear"
    interp = sitk.sitkLinear if linear else sitk.sitkNearestNeighbor
    chans = np.zeros((k, *shape), np.float32)
    for i, img in enumerate(structures):
        if img is not None:
            chans[i] = _resample(sitk.Cast(img, sitk.sitkFloat32) if linear else img, grid, interp)
    if cfg.mode == "channels":
        return (chans >= 0.5).astype(np.uint8)
    if not linear:
        labels = np.zeros(shape, np.uint8)
        for i in range(k - 1, -1, -1):  # earlier structures are written last: they win overlaps
            labels[chans[i] > 0] = i + 1
        return labels[None]
    background = np.clip(1.0 - chans.max(axis=0), 0.0, 1.0) if k else np.ones(shape, np.float32)
    stacked = np.concatenate([background[None], chans], axis=0)
    return np.argmax(stacked, axis=0).astype(np.uint8)[None]  # ties go to the earlier channel


def foreground_coords(mask: np.ndarray, n: int = 4096, seed: int = 0) -> np.ndarray:
    """Up to ``n`` random foreground voxel indices (z-y-x, int32 ``[N, 3]``) of a ``[C, D, H, W]`` mask."""
    fg = np.argwhere(mask.max(axis=0) > 0)
    if len(fg) > n:
        fg = fg[np.random.default_rng(seed).choice(len(fg), n, replace=False)]
    return fg.astype(np.int32)
