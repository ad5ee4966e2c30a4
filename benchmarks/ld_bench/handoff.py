"""Alternative DataLoader hand-offs the variants table measures on lightning_dicom's cache.

(b) :class:`WorkerBatchPatches` builds a whole batch inside a worker; (c) :class:`ThreadLoader` needs no
worker processes; :class:`ImageOnly` drops per-sample metadata; :class:`Repeat` lengthens an epoch.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np


class ImageOnly:
    """A dataset's samples without their metadata (one tensor per sample crosses the process boundary)."""

    def __init__(self, dataset: Any):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {"image": self.dataset[i]["image"]}


class Repeat:
    """``k`` passes over a dataset as one epoch (longer epochs, less per-epoch start-up in the timing)."""

    def __init__(self, dataset: Any, k: int):
        self.dataset, self.k = dataset, k

    def __len__(self) -> int:
        return len(self.dataset) * self.k

    def __getitem__(self, i: int) -> Any:
        return self.dataset[i % len(self.dataset)]


def crop_into(
    out: np.ndarray, vol: np.ndarray, size: Sequence[int] | None, rng: np.random.Generator
) -> np.ndarray:
    """Copy a random ``size`` crop (``None``: the whole volume) of ``vol`` [C, D, H, W] into ``out``.

    A float32 ``out`` gets a float16 copy cast by torch (numpy's float16 -> float32 cast is ~20x slower).
    Crops that do not fit are zero-padded. Returns the z-y-x start.
    """
    shape = vol.shape[1:]
    size = shape if size is None else size
    start = np.array([int(rng.integers(0, max(n - s, 0) + 1)) for n, s in zip(shape, size, strict=True)])
    ext = [min(s, n - a) for s, n, a in zip(size, shape, start, strict=True)]
    if any(e < s for e, s in zip(ext, size, strict=True)):
        out.fill(0)
    dst = out[:, : ext[0], : ext[1], : ext[2]]
    src = vol[:, start[0] : start[0] + ext[0], start[1] : start[1] + ext[1], start[2] : start[2] + ext[2]]
    if dst.dtype == src.dtype:
        np.copyto(dst, src)
    else:
        import torch

        torch.from_numpy(dst).copy_(torch.from_numpy(np.array(src)))
    return start


class WorkerBatchPatches:
    """Variant (b): ``__getitem__`` gets a list of indices (from a BatchSampler passed as ``sampler``, with
    ``batch_size=None``) and builds the whole batch in the worker, into one preallocated array, from memory
    maps opened once per worker."""

    def __init__(
        self, paths: Sequence[str], shapes: np.ndarray, size: Sequence[int], per_volume: int, out_dtype: str
    ):
        self.paths = np.array([str(p) for p in paths], dtype=np.str_)
        self.shapes, self.size, self.per_volume = np.asarray(shapes), tuple(size), per_volume
        self.out_dtype = np.dtype(out_dtype)
        self._maps: dict[int, np.ndarray] = {}
        self._rng: np.random.Generator | None = None

    def __len__(self) -> int:
        return len(self.paths) * self.per_volume

    def __getitem__(self, idx: Any) -> dict[str, Any]:
        import torch

        if self._rng is None:
            self._rng = np.random.default_rng(torch.initial_seed() % 2**63)
        idx = [int(idx)] if np.isscalar(idx) else [int(i) for i in idx]
        vols = np.array([i // self.per_volume for i in idx])
        out = np.empty((len(idx), int(self.shapes[vols[0]][0]), *self.size), dtype=self.out_dtype)
        starts = np.empty((len(idx), 3), dtype=np.int64)
        for j, v in enumerate(vols):
            if v not in self._maps:
                self._maps[v] = np.load(self.paths[v], mmap_mode="r", allow_pickle=False)
            starts[j] = crop_into(out[j], self._maps[v], self.size, self._rng)
        return {
            "image": torch.from_numpy(out),
            "patch_start": torch.from_numpy(starts),
            "index": torch.from_numpy(vols),
        }


class ThreadLoader:
    """Variant (c): no DataLoader workers. The main process copies batches out of memory maps opened once,
    ``threads`` samples at a time (numpy copies and torch casts release the GIL), ``prefetch`` batches
    ahead. ``size=None`` serves whole volumes (batch 1, or volumes of equal shape)."""

    def __init__(
        self,
        paths: Sequence[str],
        size: Sequence[int] | None,
        per_volume: int,
        batch_size: int,
        threads: int,
        out_dtype: str,
        seed: int = 0,
        prefetch: int = 2,
    ):
        self.maps = [np.load(str(p), mmap_mode="r", allow_pickle=False) for p in paths]
        self.size, self.per_volume, self.batch_size = size, per_volume, batch_size
        self.out_dtype = np.dtype(out_dtype)
        self.pool = ThreadPoolExecutor(threads)
        self.rngs = [np.random.default_rng([seed, t]) for t in range(threads * 4)]
        self.epoch, self.prefetch = 0, max(prefetch, threads)

    def __len__(self) -> int:
        return -(-len(self.maps) * self.per_volume // self.batch_size)

    def _crop(self, out: np.ndarray, starts: np.ndarray, j: int, v: int) -> None:
        rng = self.rngs[threading.get_ident() % len(self.rngs)]
        starts[j] = crop_into(out[j], self.maps[v], self.size, rng)

    def _submit(self, idx: np.ndarray) -> tuple:
        vols = idx // self.per_volume
        first = self.maps[vols[0]].shape
        out = np.empty(
            (len(idx), first[0], *(first[1:] if self.size is None else self.size)), dtype=self.out_dtype
        )
        starts = np.empty((len(idx), 3), dtype=np.int64)
        futures = [self.pool.submit(self._crop, out, starts, j, int(v)) for j, v in enumerate(vols)]
        return out, starts, vols, futures

    def __iter__(self) -> Iterable[dict[str, Any]]:
        import torch

        perm = np.random.default_rng([self.epoch, 7]).permutation(len(self.maps) * self.per_volume)
        self.epoch += 1
        batches = deque(perm[i : i + self.batch_size] for i in range(0, len(perm), self.batch_size))
        pending: deque = deque()
        while batches or pending:
            while batches and len(pending) < self.prefetch:
                pending.append(self._submit(batches.popleft()))
            out, starts, vols, futures = pending.popleft()
            for f in futures:
                f.result()
            yield {
                "image": torch.from_numpy(out),
                "patch_start": torch.from_numpy(starts),
                "index": torch.from_numpy(vols),
            }

    def close(self) -> None:
        self.pool.shutdown()


def collate_f32(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """lightning_dicom's collate, then the float32 cast, both in the worker."""
    from lightning_dicom.data.dataset import collate

    batch = collate(samples)
    batch["image"] = batch["image"].float()
    return batch


def cast_image(batch: dict[str, Any], dtype: Any) -> dict[str, Any]:
    """The batch with its image cast to ``dtype`` (in place; no copy when it already has it)."""
    if batch["image"].dtype != dtype:
        batch["image"] = batch["image"].to(dtype)
    return batch
