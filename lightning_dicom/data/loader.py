"""The 'threads' loader: a DataLoader that assembles batches in the main process, ahead of time.

Reading a cached sample is a memory-map copy, so DataLoader worker processes add only their
hand-off (pickling, shared-memory segments, a queue) -- the benchmark measured that as the
bottleneck. :class:`ThreadedDataLoader` keeps ``num_workers=0`` (so Lightning sees an ordinary
DataLoader with our sampler) and moves the work to threads: the batches the sampler yields next are
built concurrently by a small pool, ``prefetch`` batches per thread ahead of the training loop, and
handed out in sampler order. numpy copies and torch casts release the GIL.
"""

from __future__ import annotations

import ctypes
import itertools
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import torch
from torch.utils.data import DataLoader
from torch.utils.data._utils.pin_memory import pin_memory as _pin

__all__ = ["ThreadedDataLoader", "accelerator_available"]


class ThreadedDataLoader(DataLoader):
    """``DataLoader(num_workers=0, batch_size=None)`` over a sampler of index lists, built by threads.

    Args (beyond DataLoader's):
        threads: batches built at the same time.
        prefetch: batches queued per thread.
    """

    def __init__(self, *args: Any, threads: int = 2, prefetch: int = 2, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.threads = max(1, int(threads))
        self.prefetch = max(1, int(prefetch))
        self.pin = self.pin_memory and accelerator_available()  # as torch's DataLoader: no device, no pinning

    def __iter__(self) -> Iterator[Any]:  # type: ignore[override]
        if self.batch_size is not None or self.num_workers > 0:
            yield from super().__iter__()
            return
        order = iter(self.sampler)
        depth = self.threads * self.prefetch
        pending: deque[Future] = deque()
        pool = ThreadPoolExecutor(self.threads, thread_name_prefix="lightning_dicom-prefetch")
        # A dataset that can allocate its batch up front (AssembledBatches) gets its buffers from this
        # thread, out of a pool of reused buffers (no page faults on fresh memory, no per-thread arenas).
        allocate = getattr(self.dataset, "allocate", None)
        buffers = getattr(self.dataset, "pool", None)
        if buffers is not None:  # what this loop has in flight, and the batches around the one in hand
            buffers.limit = depth + 3

        def submit(indices: Any) -> Future:
            if allocate is not None:
                return pool.submit(self.dataset.fill, indices, allocate(indices))  # type: ignore[attr-defined]
            return pool.submit(self.dataset.__getitem__, indices)

        try:
            for indices in itertools.islice(order, depth):
                pending.append(submit(indices))
            while pending:
                batch = pending.popleft().result()
                nxt = next(order, None)
                if nxt is not None:
                    pending.append(submit(nxt))
                yield _pin(batch) if self.pin else batch
        finally:
            for f in pending:
                f.cancel()
            pool.shutdown(wait=True, cancel_futures=True)
            if allocate is None:
                _trim_heap()


def accelerator_available() -> bool:
    """Whether page-locked memory can be allocated here (an accelerator torch can use is present)."""
    acc = getattr(torch, "accelerator", None)
    if acc is not None and hasattr(acc, "is_available"):
        return bool(acc.is_available())
    return torch.cuda.is_available()


def _trim_heap() -> None:
    """Give freed batch buffers back to the OS at the end of an epoch (glibc keeps them in per-thread
    arenas otherwise, and the main process's RSS creeps up by a few batches' worth)."""
    global _LIBC
    if _LIBC is None:
        try:
            _LIBC = ctypes.CDLL("libc.so.6")
            _LIBC.malloc_trim  # noqa: B018 - glibc only
        except (OSError, AttributeError):
            _LIBC = False
    if _LIBC:
        _LIBC.malloc_trim(0)


_LIBC: Any = None
