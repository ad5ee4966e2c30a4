"""Device-resident training set: volumes, uint8 masks and foreground lists uploaded once per rank.

When the preprocessed training volumes fit in ``cache.device_budget`` of the accelerator's free memory,
:class:`DeviceVolumeCache` holds them there (stacked ``[N, C, D, H, W]`` when they share a shape) and a
batch is cut on the device by one batched gather: patch starts are drawn on the device (uniform, or
centred on a foreground voxel with probability ``foreground_fraction``, the rule of
:class:`~lightning_dicom.data.dataset.PatchDataset`), crops are one advanced-indexing gather, metadata is
indexed from device tables. A training step then does no host work but building an index list.

Volumes smaller than the patch are padded at upload (at the end of each axis, with the volume's minimum;
masks with 0); the host path pads with the patch's minimum, so only such padded voxels can differ.

DDP (:func:`plan_residency`, :class:`FixedShardBatchSampler`): when every rank can hold the whole set it
does, and the ordinary :class:`~lightning_dicom.data.sampler.ShardBatchSampler` deals a new permutation
every epoch. When only a shard fits, rank r keeps a fixed shard (volumes ``perm[r::world]`` of a
permutation drawn once from the split seed) and shuffles within it each epoch: every sample is still
seen exactly once per epoch across ranks and every rank runs the same number of batches, but a rank no
longer sees other ranks' volumes (as with any sharded dataset; the union per epoch is unchanged).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from lightning_dicom.data.dataset import CachedVolumeDataset
from lightning_dicom.data.sampler import ShardBatchSampler
from lightning_dicom.errors import ConfigError

__all__ = ["DeviceVolumeCache", "FixedShardBatchSampler", "ResidentBatches", "plan_residency"]


def volume_bytes(volumes: CachedVolumeDataset, patch: Sequence[int] | None = None) -> np.ndarray:
    """Bytes on the device of each volume (image in its stored dtype, uint8 mask; padded to the patch)."""
    shapes = volumes.shapes[:, 1:].copy()
    if patch is not None:
        shapes = np.maximum(shapes, np.asarray(patch, np.int64))
    voxels = shapes.prod(axis=1)
    item = np.dtype(str(np.load(str(volumes.paths[0]), mmap_mode="r").dtype)).itemsize if len(volumes) else 2
    out = voxels * volumes.shapes[:, 0] * item
    if volumes.mask_paths is not None:
        out = out + voxels * np.array([volumes.mask(i).shape[0] for i in range(len(volumes))])  # type: ignore[union-attr]
    return out


def plan_residency(
    nbytes: np.ndarray, world: int, rank: int, free_bytes: int, budget: float, seed: int = 0
) -> tuple[str, np.ndarray]:
    """Which volumes this rank keeps on the device: ('whole', all), ('shard', its fixed shard) or ('none', []).

    ``nbytes`` [N] per volume; the shard of rank r is ``perm[r::world]`` of one seeded permutation, the
    same on every rank; 'shard' is chosen only when the largest shard fits on every rank alike, and every
    rank has at least one volume (an empty shard has no sample to fill its batches with)."""
    limit = budget * free_bytes
    n = len(nbytes)
    if nbytes.sum() <= limit:
        return "whole", np.arange(n)
    perm = np.random.default_rng(seed).permutation(n)
    shards = [np.sort(perm[r::world]) for r in range(world)]
    if 1 < world <= n and max(int(nbytes[s].sum()) for s in shards) <= limit:
        return "shard", shards[rank]
    return "none", np.zeros(0, np.int64)


class DeviceVolumeCache:
    """Volumes ``keep`` of ``volumes`` on ``device``; patches and whole volumes cut there.

    Args:
        volumes: the cached training volumes.
        keep: which volume indices to upload (all, or this rank's shard).
        device: where to keep them (``"cpu"`` in tests).
        patch: patch size z-y-x (volumes are padded up to it), or None for whole volumes.
    """

    def __init__(
        self,
        volumes: CachedVolumeDataset,
        keep: Sequence[int] | np.ndarray,
        device: torch.device | str,
        patch: Sequence[int] | None = None,
    ) -> None:
        self.device = torch.device(device)
        self.keep = np.asarray(keep, np.int64)
        self.patch = tuple(int(s) for s in patch) if patch is not None else None
        self.size_t = torch.tensor(self.patch or (0, 0, 0), dtype=torch.int64, device=self.device)
        spatial = volumes.shapes[self.keep, 1:] if len(self.keep) else np.zeros((0, 3), np.int64)
        if self.patch is not None:
            spatial = np.maximum(spatial, np.asarray(self.patch, np.int64))
        self.stacked = len({tuple(x) for x in spatial.tolist()}) == 1
        images: list[torch.Tensor] = []
        masks: list[torch.Tensor] = []
        fgs = []
        for j, v in enumerate(
            self.keep.tolist()
        ):  # into one preallocated stack: no second copy on the device
            image = self._upload(volumes.volume(v), None)
            mask = volumes.mask(v)
            if self.stacked and j == 0:
                images = torch.empty((len(self.keep), *image.shape), dtype=image.dtype, device=self.device)  # type: ignore[assignment]
            if self.stacked:
                images[j] = image
            else:
                images.append(image)
            if mask is not None:
                m = self._upload(mask, 0)
                if self.stacked and j == 0:
                    masks = torch.empty((len(self.keep), *m.shape), dtype=m.dtype, device=self.device)  # type: ignore[assignment]
                if self.stacked:
                    masks[j] = m
                else:
                    masks.append(m)
            fgs.append(torch.as_tensor(np.asarray(volumes.foreground(v), np.int64)).reshape(-1, 3))
        self.images: torch.Tensor | list[torch.Tensor] = images
        self.masks: torch.Tensor | list[torch.Tensor] | None = masks if len(masks) else None
        self.shapes = torch.as_tensor(spatial, dtype=torch.int64).to(self.device)
        counts = [len(f) for f in fgs]
        self.fg_count = torch.tensor(counts, dtype=torch.int64, device=self.device)
        self.fg_offset = torch.tensor(np.cumsum([0, *counts[:-1]]), dtype=torch.int64, device=self.device)
        self.fg = torch.cat(fgs).to(self.device) if fgs else torch.zeros(0, 3, dtype=torch.int64)
        table = volumes.meta.batch(self.keep)  # tensors go to the device, lists of strings stay here
        self.meta_tensors = {k: v.to(self.device) for k, v in table.items() if isinstance(v, torch.Tensor)}
        self.meta_lists = {k: v for k, v in table.items() if not isinstance(v, torch.Tensor)}
        idx = self.keep
        self.labels = (
            torch.from_numpy(volumes.labels[idx]).to(self.device) if volumes.labels is not None else None
        )

    def _upload(self, arr: np.ndarray | torch.Tensor, pad: float | None) -> torch.Tensor:
        t = torch.as_tensor(np.ascontiguousarray(arr)) if not isinstance(arr, torch.Tensor) else arr
        t = t.to(self.device)
        if self.patch is not None and any(n < s for n, s in zip(t.shape[1:], self.patch, strict=True)):
            full = torch.full(
                (t.shape[0], *(max(n, s) for n, s in zip(t.shape[1:], self.patch, strict=True))),
                float(t.min()) if pad is None else pad,
                dtype=t.dtype,
                device=self.device,
            )
            full[(slice(None), *(slice(0, n) for n in t.shape[1:]))] = t
            t = full
        return t

    def __len__(self) -> int:
        return len(self.keep)

    def nbytes(self) -> int:
        ts = [self.images] if isinstance(self.images, torch.Tensor) else list(self.images)
        if self.masks is not None:
            ts += [self.masks] if isinstance(self.masks, torch.Tensor) else list(self.masks)
        return sum(t.numel() * t.element_size() for t in ts)

    def starts(
        self, local: torch.Tensor, fraction: float = 0.0, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Patch starts [B, 3] (z-y-x) for local volume indices ``local`` [B], drawn on the device."""
        assert self.patch is not None
        size = self.size_t  # made once: a tensor built from a list on a GPU is a synchronous copy
        hi = (self.shapes[local] - size).clamp(min=0)  # [B, 3]
        u = torch.rand(local.shape[0], 4, generator=generator, device=self.device)
        starts = (u[:, :3] * (hi + 1)).long().clamp(max=hi)
        if fraction > 0 and self.fg.shape[0]:
            count = self.fg_count[local]
            pick = self.fg_offset[local] + (u[:, 3] * count).long().clamp(max=(count - 1).clamp(min=0))
            centre = self.fg[pick.clamp(max=self.fg.shape[0] - 1)]
            near = torch.minimum((centre - size // 2).clamp(min=0), hi)
            v = torch.rand(local.shape[0], generator=generator, device=self.device)
            use = ((v < fraction) & (count > 0)).unsqueeze(1)
            starts = torch.where(use, near, starts)
        return starts

    def crop(self, local: torch.Tensor, starts: torch.Tensor, masks: bool = False) -> torch.Tensor:
        """Patches [B, C, d, h, w] at ``starts`` [B, 3] of local volumes ``local`` [B] (one batched gather)."""
        assert self.patch is not None
        source = self.masks if masks else self.images
        assert source is not None
        if not isinstance(source, torch.Tensor):  # volumes of different shapes: one slice per sample
            return torch.stack(
                [
                    source[int(v)][
                        (
                            slice(None),
                            *(slice(int(a), int(a) + s) for a, s in zip(st, self.patch, strict=True)),
                        )
                    ]
                    for v, st in zip(local.tolist(), starts.tolist(), strict=True)
                ]
            )
        # Every possible patch as one strided view [N, D-d+1, H-h+1, W-w+1, C, d, h, w] (no copy); one
        # advanced index on its first four dims gathers the batch, reading 4 indices per patch, not per voxel.
        n, c, *dims = source.shape
        sn, sc, *sd = source.stride()
        windows = source.as_strided(
            (n, *(a - k + 1 for a, k in zip(dims, self.patch, strict=True)), c, *self.patch),
            (sn, *sd, sc, *sd),
        )
        return windows[local, starts[:, 0], starts[:, 1], starts[:, 2]]

    def whole(self, local: torch.Tensor, masks: bool = False) -> torch.Tensor:
        """Whole volumes [B, C, D, H, W] of local volumes ``local`` [B]."""
        source = self.masks if masks else self.images
        assert source is not None
        if isinstance(source, torch.Tensor):
            return source.index_select(0, local)
        picked = [source[int(v)] for v in local.tolist()]
        if len({tuple(t.shape) for t in picked}) > 1:
            raise ConfigError(
                "volumes in a batch differ in shape: set preprocessing.size or use batch_size 1"
            )
        return torch.stack(picked)

    def meta(
        self, local: torch.Tensor, starts: torch.Tensor | None, host: Sequence[int] | None = None
    ) -> dict[str, Any]:
        """Batch metadata as :func:`~lightning_dicom.data.assemble.batch_meta`, gathered on the device
        (``host``: the same local indices as a host list, so naming the series needs no device sync)."""
        rows = local.tolist() if host is None else host
        meta: dict[str, Any] = {k: [v[i] for i in rows] for k, v in self.meta_lists.items()}
        meta.update({k: v[local] for k, v in self.meta_tensors.items()})
        if starts is not None:
            offset = starts.flip(1).double() * meta["spacing"]
            meta["origin"] = meta["origin"] + torch.einsum(
                "bij,bj->bi", meta["direction"].view(-1, 3, 3), offset
            )
            meta["patch_start"] = starts
        return meta


class ResidentBatches(Dataset):
    """``ds[[i, ...]]`` -> a batch cut from a :class:`DeviceVolumeCache` (sample i of the local set:
    volume ``i // per_volume``); the same keys as the host path, all tensors on the device."""

    def __init__(
        self,
        cache: DeviceVolumeCache,
        per_volume: int = 1,
        foreground_fraction: float = 0.0,
        generator: torch.Generator | None = None,
    ) -> None:
        self.cache = cache
        self.per_volume = int(per_volume) if cache.patch is not None else 1
        self.foreground_fraction = float(foreground_fraction)
        self.generator = generator

    def __len__(self) -> int:
        return len(self.cache) * self.per_volume

    def __getitem__(self, indices: list[int]) -> dict[str, Any]:
        c = self.cache
        host = [i // self.per_volume for i in indices]
        local = torch.as_tensor(host, dtype=torch.int64)
        if (
            c.device.type == "cuda"
        ):  # from pinned memory the copy is asynchronous (pageable would sync the stream)
            local = local.pin_memory()
        local = local.to(c.device, non_blocking=True)
        starts = c.starts(local, self.foreground_fraction, self.generator) if c.patch is not None else None
        cut = (lambda m: c.crop(local, starts, m)) if starts is not None else (lambda m: c.whole(local, m))
        batch: dict[str, Any] = {"image": cut(False)}
        if c.masks is not None:
            batch["mask"] = cut(True)
        if c.labels is not None:
            batch["label"] = c.labels[local]
        batch["meta"] = c.meta(local, starts, host)
        return batch


class FixedShardBatchSampler(ShardBatchSampler):
    """Batches over this rank's fixed shard of samples, reshuffled each epoch; the same number of batches
    on every rank (``ceil(largest shard / batch_size)``), every sample of every shard once per epoch.

    Args:
        shard_sizes: number of samples in each rank's shard (index = rank); this rank's samples are the
            local indices ``0 .. shard_sizes[rank] - 1``.
    """

    def __init__(
        self,
        shard_sizes: Sequence[int],
        batch_size: int,
        *,
        rank: int = 0,
        shuffle: bool = False,
        seed: int = 0,
    ) -> None:
        super().__init__(
            int(shard_sizes[rank]),
            batch_size,
            num_replicas=1,
            rank=0,
            shuffle=shuffle,
            seed=seed + 7919 * rank,
        )
        self.num_replicas_total = len(shard_sizes)
        self.num_batches = math.ceil(max(shard_sizes) / self.batch_size) if max(shard_sizes) else 0

    def __iter__(self) -> Iterator[list[int]]:  # type: ignore[override]
        return super().__iter__()
