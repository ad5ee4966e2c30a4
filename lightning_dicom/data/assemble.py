"""Batches assembled in place: each sample copied (and cast) once, from its memory map into its row of the batch.

The per-sample path (``dataset[i]`` -> a dict per sample -> ``collate``) allocates every sample, then copies
it again into the stacked batch, and builds metadata one sample at a time; on a 2-core CPU that work cost
more than the copy itself (issue 13: 0.37x of a bare thread pool that copies straight into the batch).
:class:`BatchAssembler` does what that bare loader does -- one buffer per batch (or a reused one, see
:mod:`~lightning_dicom.data.device_feed`), one copy+cast per sample into its row, metadata gathered for
the whole batch from the dataset's numpy tables -- and returns exactly the batch ``collate`` would:

    image  [B, C, D, H, W]  (the dataset's ``image_dtype``, else the stored dtype)
    mask   [B, K, D, H, W]  (``mask_dtype``, else uint8), when masks are cached
    label  [B] or [B, K], when labelled
    meta   series_id (list of str), spacing/origin [B, 3] (x-y-z mm, LPS), direction [B, 9], index [B]
           (volume index), source_* when known, and for patches patch_start [B, 3] (z-y-x voxels) with
           origin moved to the patch's first voxel.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from lightning_dicom.data.dataset import CachedVolumeDataset, PatchDataset, map_view
from lightning_dicom.errors import ConfigError

__all__ = ["AssembledBatches", "BatchAssembler", "HostBufferPool", "batch_meta"]


def batch_meta(
    volumes: CachedVolumeDataset, vols: np.ndarray, starts: np.ndarray | None = None
) -> dict[str, Any]:
    """Metadata of a batch of volume indices ``vols`` [B] (patch ``starts`` [B, 3] z-y-x, if patches)."""
    t = volumes.meta
    meta = t.batch(vols)
    if starts is not None:  # origin of the patch's first voxel: origin + direction @ (start_xyz * spacing)
        offset = starts[:, ::-1] * meta["spacing"].numpy()
        shift = np.matmul(meta["direction"].numpy().reshape(-1, 3, 3), offset[:, :, None])[:, :, 0]
        meta["origin"] = torch.from_numpy(meta["origin"].numpy() + shift)
        meta["patch_start"] = torch.from_numpy(starts)
    return meta


class BatchAssembler:
    """Builds one batch from sample indices, writing each sample straight into its row.

    Args:
        volumes: the cached volumes (memory maps or shared in-RAM tensors).
        patches: the patch dataset over ``volumes`` (its size, per_volume and patch-start rule), or None
            for whole volumes.
    Raises:
        ConfigError: whole volumes of different shapes in one batch (as ``collate``).
    """

    def __init__(self, volumes: CachedVolumeDataset, patches: PatchDataset | None = None) -> None:
        self.volumes = volumes
        self.patches = patches

    def volume_of(self, indices: Sequence[int]) -> np.ndarray:
        """Volume index [B] of each sample index."""
        idx = np.asarray(indices, dtype=np.int64)
        return idx // self.patches.per_volume if self.patches is not None else idx

    def shapes(self, vols: np.ndarray) -> tuple[tuple[int, ...], tuple[int, ...] | None]:
        """Image and mask shapes of a batch of volumes ``vols`` ([B, C, D, H, W]; mask None without masks)."""
        shapes = self.volumes.shapes[vols]
        c = int(shapes[0, 0])
        if self.patches is not None:
            spatial: tuple[int, ...] = self.patches.size
        else:
            if len({tuple(s) for s in shapes.tolist()}) > 1:
                raise ConfigError(
                    f"volumes in a batch differ in shape {sorted({tuple(s) for s in shapes.tolist()})}: set "
                    "preprocessing.size (z-y-x) or patches, or use loader.batch_size 1"
                )
            spatial = tuple(int(x) for x in shapes[0, 1:])
        image = (len(vols), c, *spatial)
        if self.volumes.mask_paths is None:
            return image, None
        k = self.volumes.mask(int(vols[0])).shape[0]  # type: ignore[union-attr]
        return image, (len(vols), k, *spatial)

    def image_dtype(self) -> torch.dtype:
        if self.volumes.image_dtype is not None:
            return self.volumes.image_dtype
        return map_view(self.volumes.volume(0)).dtype

    def mask_dtype(self) -> torch.dtype:
        return self.volumes.mask_dtype or torch.uint8

    def allocate(
        self, indices: Sequence[int], pin: bool = False, pool: HostBufferPool | None = None
    ) -> dict[str, torch.Tensor]:
        """Buffers for the batch of ``indices`` (``image`` and, with masks, ``mask``): fresh ones (pinned
        with ``pin``), or taken from ``pool``."""
        image, mask = self.shapes(self.volume_of(indices))
        shapes = {"image": (image, self.image_dtype())}
        if mask is not None:
            shapes["mask"] = (mask, self.mask_dtype())
        if pool is not None:
            return {k: pool.take(shape, dtype) for k, (shape, dtype) in shapes.items()}
        return {k: _empty(shape, dtype, pin) for k, (shape, dtype) in shapes.items()}

    def __call__(self, indices: Sequence[int], out: dict[str, torch.Tensor] | None = None) -> dict[str, Any]:
        """The batch of ``indices``, written into ``out`` (buffers of at least this batch's shape) or new ones."""
        vols = self.volume_of(indices)
        image_shape, mask_shape = self.shapes(vols)
        if out is None:
            out = self.allocate(indices)
        image = _fit(out["image"], image_shape)
        mask = _fit(out["mask"], mask_shape) if mask_shape is not None else None
        starts = np.zeros((len(vols), 3), np.int64) if self.patches is not None else None
        for j, v in enumerate(vols.tolist()):
            if starts is not None:
                assert self.patches is not None
                start = starts[j] = self.patches._start(v)
                self._crop(image[j], self.volumes.volume(v), start, pad=None)
                if mask is not None:
                    self._crop(mask[j], self.volumes.mask(v), start, pad=0)  # type: ignore[arg-type]
            else:
                image[j].copy_(map_view(self.volumes.volume(v)))
                if mask is not None:
                    mask[j].copy_(map_view(self.volumes.mask(v)))  # type: ignore[arg-type]
        batch: dict[str, Any] = {"image": image}
        if mask is not None:
            batch["mask"] = mask
        if self.volumes.labels is not None:
            batch["label"] = torch.from_numpy(self.volumes.labels[vols])
        batch["meta"] = batch_meta(self.volumes, vols, starts)
        return batch

    def _crop(
        self, dst: torch.Tensor, vol: np.ndarray | torch.Tensor, start: Sequence[int], pad: float | None
    ) -> None:
        """Copy the patch at ``start`` (z-y-x) of ``vol`` [C, D, H, W] into ``dst``; pad at the end (with
        the patch's minimum, or ``pad``) where the volume is smaller than the patch (as PatchDataset)."""
        size = dst.shape[1:]
        z, y, x = (int(a) for a in start)
        src = map_view(vol[:, z : z + size[0], y : y + size[1], x : x + size[2]])
        if src.shape[1:] != size:
            dst.fill_(float(src.min()) if pad is None else pad)
            dst = dst[(slice(None), *(slice(0, n) for n in src.shape[1:]))]
        dst.copy_(src)


def _empty(shape: tuple[int, ...], dtype: torch.dtype, pin: bool) -> torch.Tensor:
    """An uninitialised buffer. Unpinned ones come from numpy: glibc reuses freed blocks for them, while a
    fresh ``torch.empty`` of a volume faults in new pages each time (measured 3.7 vs 0.4 ms for a
    75x179x179 float32 volume, copy included, on the 2-core CI machine)."""
    if pin:
        return torch.empty(shape, dtype=dtype, pin_memory=True)
    return torch.from_numpy(np.empty(shape, dtype=_numpy_dtype(dtype)))


_NP_DTYPES: dict[torch.dtype, np.dtype] = {}


def _fit(buf: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """A view of a reusable buffer with this batch's shape (the last batch of an epoch may be smaller)."""
    if tuple(buf.shape) == tuple(shape):
        return buf
    n = int(np.prod(shape))
    if buf.numel() < n:
        raise ValueError(f"buffer of {tuple(buf.shape)} too small for a batch of {shape}")
    return buf.view(-1)[:n].view(shape)


class HostBufferPool:
    """Host batch buffers handed out again once nothing references them any more.

    A fresh buffer of a few MB costs page faults on its first write whenever glibc has given the last one
    back to the OS (it does so once freed memory at the top of the heap exceeds its trim threshold): on the
    2-core CI machine whole 75x179x179 volumes then came 3x slower, for whole epochs at a time
    (``benchmarks/loader_overhead.py``; the same run with ``MALLOC_TRIM_THRESHOLD_`` raised never did).
    Reusing buffers avoids both the faults and the allocator's moods.

    A buffer is the numpy array behind the tensors handed out (``torch.from_numpy``): every tensor, view
    or storage made from it keeps a reference to that array, so it is free exactly when its reference
    count is back to the pool's own (the test ``numpy.ndarray.resize(refcheck=True)`` uses). The count of
    an unreferenced array is measured once, through the same call, rather than assumed.

    Args:
        limit: buffers kept at most, per shape and dtype (more in use at once are allocated and dropped as
            before); the threads loader sets it to its prefetch depth + 3 (the batch in hand, the one before
            it, and one whose loader thread has not yet let go of it), so batches a training step holds on
            to are not kept for reuse once released.

    Attributes:
        allocated: buffers allocated so far (the rest of :meth:`take`'s calls reused one).
    """

    def __init__(self, limit: int = 6) -> None:
        self.limit = int(limit)
        self._buffers: dict[tuple[tuple[int, ...], np.dtype], list[np.ndarray]] = {}
        self._lock = threading.Lock()
        self.allocated = 0

    def take(self, shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
        """An uninitialised ``shape`` tensor of ``dtype`` (a free pooled buffer, else a new one)."""
        np_dtype = _numpy_dtype(dtype)
        with self._lock:
            bufs = self._buffers.setdefault((tuple(shape), np_dtype), [])
            for i in range(len(bufs)):
                if _refcount(bufs, i) == _FREE:
                    return torch.from_numpy(bufs[i])
            arr = np.empty(shape, dtype=np_dtype)
            self.allocated += 1
            if len(bufs) < self.limit:  # else all kept buffers of this kind are busy: not kept
                bufs.append(arr)
            return torch.from_numpy(arr)

    def clear(self) -> None:
        """Forget every buffer (those still in use live on with their tensors)."""
        with self._lock:
            self._buffers = {}

    def __len__(self) -> int:
        """Buffers kept, of every shape and dtype."""
        return sum(len(b) for b in self._buffers.values())


def _refcount(buffers: list[np.ndarray], i: int) -> int:
    return sys.getrefcount(buffers[i])


_FREE = _refcount([np.empty(0)], 0)  # the count of a buffer only the pool's list holds


def _numpy_dtype(dtype: torch.dtype) -> np.dtype:
    np_dtype = _NP_DTYPES.get(dtype)
    if np_dtype is None:
        np_dtype = _NP_DTYPES[dtype] = torch.empty(0, dtype=dtype).numpy().dtype
    return np_dtype


class AssembledBatches(Dataset):
    """``ds[[i, j, ...]]`` -> one batch built by a :class:`BatchAssembler` (what the loaders index).

    :meth:`allocate` takes its buffers from a :class:`HostBufferPool`, kept from one pass over the data to
    the next (the buffers a pass had in flight: the loader's prefetch depth plus the batches the training
    step still holds).
    """

    def __init__(self, assembler: BatchAssembler) -> None:
        self.assembler = assembler
        self.pool = HostBufferPool()

    def __getstate__(self) -> dict[str, Any]:  # DataLoader worker processes: a pool of their own
        return {"assembler": self.assembler}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.assembler, self.pool = state["assembler"], HostBufferPool()

    def __len__(self) -> int:
        base = self.assembler.patches if self.assembler.patches is not None else self.assembler.volumes
        return len(base)

    def __getitem__(self, indices: list[int]) -> dict[str, Any]:
        return self.assembler(indices)

    def allocate(self, indices: list[int]) -> dict[str, torch.Tensor]:
        """Buffers for the batch of ``indices`` (the loader calls this from its main thread)."""
        return self.assembler.allocate(indices, pool=self.pool)

    def fill(self, indices: list[int], out: dict[str, torch.Tensor]) -> dict[str, Any]:
        """The batch of ``indices`` written into ``out`` (from :meth:`allocate`; in a loader thread).

        Buffers allocated while the caller runs under ``torch.inference_mode`` (Lightning's validate,
        test and predict loops) are inference tensors; inference mode is per thread, so the loader
        thread enters it too before writing into them in place.
        """
        if out["image"].is_inference():  # all of ``out`` comes from one allocate() call
            with torch.inference_mode():
                return self.assembler(indices, out=out)
        return self.assembler(indices, out=out)
