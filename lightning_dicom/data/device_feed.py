"""Feeding an accelerator from the host: a ring of reusable pinned buffers, copied ahead on a side stream.

:class:`DeviceFeedLoader` runs the 'threads' loader's pool, but each thread writes its batch straight into
a slot of a ring of page-locked (pinned) buffers (one copy from the memory map, see
:mod:`~lightning_dicom.data.assemble`). The main thread then starts that slot's host->device copy on a
side stream ``ahead`` batches before the training step needs it, records an event after the copy, and
hands the device batch out with the compute stream told to wait for that event. A slot is written again
only after its previous copy's event has completed: the loader thread that reuses it waits on the event
first, so a buffer is never overwritten while its copy is in flight and the main thread never waits on a
host copy. Images travel in the cache dtype (float16: half the bytes), masks as uint8; both are cast on
the device in ``DicomDataModule.on_after_batch_transfer``. Used only when the trainer runs on an
accelerator: on a CPU nothing is pinned.

The stream work goes through a small :class:`Transfer` object, so the ordering logic is tested on a CPU
with a transfer that records what happened.
"""

from __future__ import annotations

import itertools
import math
import weakref
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Protocol

import torch

from lightning_dicom.data.assemble import AssembledBatches
from lightning_dicom.data.loader import ThreadedDataLoader

__all__ = ["CudaTransfer", "DeviceFeedLoader", "Transfer"]


class Event(Protocol):
    def synchronize(self) -> None: ...


class Transfer(Protocol):
    """Copies a slot's host tensors to the device asynchronously (``copy``: the device tensors and an event
    that completes when the copy has finished reading the host buffers), and makes the consumer wait for
    that copy when the batch is handed out (``ready``)."""

    pin: bool

    def copy(self, tensors: dict[str, torch.Tensor], slot: int) -> tuple[dict[str, torch.Tensor], Event]: ...

    def ready(self, tensors: dict[str, torch.Tensor], event: Event) -> None: ...


class CudaTransfer:
    """Host->device copies on a side CUDA stream, ordered before the compute stream's use of each batch."""

    pin = True

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.stream = torch.cuda.Stream(device=device)

    def copy(self, tensors: dict[str, torch.Tensor], slot: int) -> tuple[dict[str, torch.Tensor], Event]:
        with torch.cuda.stream(self.stream):
            out = {k: v.to(self.device, non_blocking=True) for k, v in tensors.items()}
            event = torch.cuda.Event()
            event.record(self.stream)
        return out, event

    def ready(self, tensors: dict[str, torch.Tensor], event: Event) -> None:
        """The compute stream waits for this batch's copy only (later batches' copies keep running), and
        the caching allocator learns that the side stream's tensors are used on the compute stream."""
        compute = torch.cuda.current_stream(self.device)
        compute.wait_event(event)  # type: ignore[arg-type]
        for v in tensors.values():
            v.record_stream(compute)


class _Done:
    def synchronize(self) -> None:
        return None


class DeviceFeedLoader(ThreadedDataLoader):
    """The 'threads' loader writing into a ring of pinned buffers and copying batches ahead to the device.

    Args (beyond ThreadedDataLoader's; ``dataset`` must be :class:`AssembledBatches`):
        transfer: how slots reach the device (:class:`CudaTransfer`; a recording fake in tests).
        ahead: batches whose copies are started before the current one is handed out (>= 1).
    """

    def __init__(self, *args: Any, transfer: Transfer, ahead: int = 1, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not isinstance(self.dataset, AssembledBatches):
            raise TypeError("DeviceFeedLoader needs an AssembledBatches dataset")
        self.transfer = transfer
        self.ahead = max(1, int(ahead))
        self.slots: list[dict[str, torch.Tensor]] = []
        self.events: list[Event] = []
        self.log: list[tuple[str, int, int]] | None = None
        """When a list: ('write', slot, batch) / ('copy', slot, batch) appended in order (tests)."""
        self._active: weakref.ref | None = None  # the epoch now iterating: it owns the slots

    def ring_size(self) -> int:
        """Slots: batches being assembled + batches whose copies may still be in flight + one."""
        return self.threads * self.prefetch + self.ahead + 1

    def _fill(self, slot: int, n: int, indices: list[int]) -> tuple[int, int, dict[str, Any]]:
        assembler = self.dataset.assembler  # type: ignore[attr-defined]
        self.events[slot].synchronize()  # the previous copy out of this slot has finished
        image, mask = assembler.shapes(assembler.volume_of(indices))
        buffers = self.slots[slot]
        if (
            not buffers
            or buffers["image"].numel() < math.prod(image)
            or (mask is not None and buffers["mask"].numel() < math.prod(mask))
        ):  # first use, or whole volumes larger than the slot's (shapes differ; batch 1): (re)allocate
            full = list(indices) + [indices[-1]] * (self._largest - len(indices))
            self.slots[slot] = assembler.allocate(full, pin=self.transfer.pin)
        if self.log is not None:
            self.log.append(("write", slot, n))
        return slot, n, assembler(indices, out=self.slots[slot])

    def __iter__(self) -> Iterator[Any]:  # type: ignore[override]
        """One epoch. An earlier epoch's iterator still alive (abandoned by a ``break``, or a sanity check
        that stopped after a few batches) is closed first: its threads write into the same slots."""
        earlier = self._active() if self._active is not None else None
        if earlier is not None:
            earlier.close()  # runs its ``finally``: pending fills cancelled or finished
        epoch = self._epoch()
        self._active = weakref.ref(epoch)
        return epoch

    def _epoch(self) -> Iterator[Any]:
        order = iter(self.sampler)
        batches = list(order)
        self._largest = max((len(b) for b in batches), default=1)
        size = self.ring_size()
        if len(self.slots) != size:
            self.slots = [{} for _ in range(size)]
            self.events = [_Done() for _ in range(size)]
        depth = self.threads * self.prefetch
        counter = itertools.count()
        source = iter(batches)
        pending: deque[Future] = deque()
        copied: deque[tuple[dict[str, Any], dict[str, torch.Tensor], Event]] = deque()
        pool = ThreadPoolExecutor(self.threads, thread_name_prefix="lightning_dicom-feed")

        def submit() -> None:
            indices = next(source, None)
            if indices is not None:
                n = next(counter)
                pending.append(pool.submit(self._fill, n % size, n, indices))

        try:
            for _ in range(depth):
                submit()
            while pending or copied:
                while pending and len(copied) <= self.ahead:
                    slot, n, batch = pending.popleft().result()
                    host = {k: batch[k] for k in ("image", "mask") if k in batch}
                    dev, event = self.transfer.copy(host, slot)
                    self.events[slot] = event
                    if self.log is not None:
                        self.log.append(("copy", slot, n))
                    copied.append(({**batch, **dev}, dev, event))
                    submit()
                batch, dev, event = copied.popleft()
                self.transfer.ready(dev, event)
                yield batch
        finally:
            for f in pending:
                f.cancel()
            pool.shutdown(wait=True, cancel_futures=True)
