"""Exactly-once distributed batching.

``torch.utils.data.DistributedSampler`` pads every rank to the same number of samples by
repeating some, so with N samples on W ranks up to W-1 samples are seen twice per epoch (and
validation metrics count them twice). :class:`ShardBatchSampler` instead gives each rank a
disjoint shard of a shared permutation (every sample exactly once across ranks) and cuts each
shard into the *same number of batches* on every rank, with sizes differing by at most one, so
DDP's collective calls stay in step and nobody waits forever. Only when a rank holds fewer
samples than batches (tiny datasets) is one of its samples repeated to fill an empty batch.

It yields lists of indices; :class:`BatchDataset` turns such a list into a collated batch inside
the DataLoader worker. The sampler subclasses ``DistributedSampler`` so Lightning keeps it
instead of injecting its own, and calls ``set_epoch`` on it every epoch.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, DistributedSampler

__all__ = ["BatchDataset", "ShardBatchSampler"]


class ShardBatchSampler(DistributedSampler):
    """Batches of indices for one rank; every index in exactly one batch across ranks per epoch.

    Args:
        size: number of samples in the dataset.
        batch_size: largest batch.
        num_replicas: world size; rank: this process's global rank.
        shuffle: draw a new permutation each epoch (``seed + epoch``), identical on every rank.
    """

    def __init__(
        self,
        size: int,
        batch_size: int,
        *,
        num_replicas: int = 1,
        rank: int = 0,
        shuffle: bool = False,
        seed: int = 0,
    ) -> None:
        self.size = int(size)
        self.batch_size = int(batch_size)
        self.num_replicas = int(num_replicas)
        self.rank = int(rank)
        self.shuffle = shuffle
        self.seed = int(seed)
        self.epoch = 0
        self.drop_last = False
        per_rank = math.ceil(self.size / self.num_replicas) if self.size else 0
        self.num_batches = math.ceil(per_rank / self.batch_size) if per_rank else 0

    def __len__(self) -> int:
        return self.num_batches

    def __iter__(self) -> Iterator[list[int]]:  # type: ignore[override]
        if self.shuffle:
            g = torch.Generator()
            g.manual_seed(self.seed + self.epoch)
            order = torch.randperm(self.size, generator=g).numpy()
        else:
            order = np.arange(self.size)
        mine = order[self.rank :: self.num_replicas]
        if self.num_batches == 0:
            return iter(())
        chunks = np.array_split(mine, self.num_batches)
        batches = [c.tolist() if len(c) else [int(order[self.rank % max(len(order), 1)])] for c in chunks]
        return iter(batches)


class BatchDataset(Dataset):
    """Wraps a map-style dataset so that ``ds[[i, j, ...]]`` returns one collated batch.

    With ``threads > 1`` the samples of a batch are read concurrently by a thread pool (memory-map
    copies and numpy/torch casts release the GIL); the pool is created lazily and never pickled.
    """

    def __init__(
        self,
        dataset: Dataset,
        collate_fn: Callable[[list[Any]], Any],
        threads: int = 1,
        image_dtype: torch.dtype | None = None,
    ) -> None:
        self.dataset = dataset
        self.collate_fn = collate_fn
        self.threads = int(threads)
        self.image_dtype = image_dtype
        self._pool: ThreadPoolExecutor | None = None

    def _get(self, i: int) -> Any:
        sample = self.dataset[i]
        if self.image_dtype is not None and sample["image"].dtype != self.image_dtype:
            sample["image"] = sample["image"].to(self.image_dtype)  # cast in the reading thread, in parallel
        return sample

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, indices: list[int]) -> Any:
        if self.threads <= 1 or len(indices) <= 1:
            return self.collate_fn([self._get(i) for i in indices])
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="lightning_dicom")
        return self.collate_fn(list(self._pool.map(self._get, indices)))

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_pool": None}
