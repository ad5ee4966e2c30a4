"""The 'threads' loader: a DataLoader that assembles batches in the main process, ahead of time.

Reading a cached sample is a memory-map copy, so DataLoader worker processes add only their
hand-off (pickling, shared-memory segments, a queue) -- the benchmark measured that as the
bottleneck. :class:`ThreadedDataLoader` keeps ``num_workers=0`` (so Lightning sees an ordinary
DataLoader with our sampler) and moves the work to threads: a pool reads the samples of a batch in
parallel (:class:`~lightning_dicom.sampler.BatchDataset`), and a background thread stays
``prefetch`` batches ahead of the training loop. numpy copies and torch casts release the GIL.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import Any

from torch.utils.data import DataLoader

__all__ = ["ThreadedDataLoader"]

_END = object()


class ThreadedDataLoader(DataLoader):
    """``DataLoader(num_workers=0)`` whose iterator prefetches ``prefetch`` batches in a thread."""

    def __init__(self, *args: Any, prefetch: int = 2, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.prefetch = int(prefetch)

    def __iter__(self) -> Iterator[Any]:  # type: ignore[override]
        base = super().__iter__()
        if self.prefetch < 1:
            yield from base
            return
        q: queue.Queue = queue.Queue(maxsize=self.prefetch)
        stop = threading.Event()

        def produce() -> None:
            try:
                for item in base:
                    while not stop.is_set():
                        try:
                            q.put((item, None), timeout=0.1)
                            break
                        except queue.Full:
                            continue
                    if stop.is_set():
                        return
                q.put((_END, None))
            except BaseException as err:  # handed to the consumer, raised there
                q.put((_END, err))

        thread = threading.Thread(target=produce, name="lightning_dicom-prefetch", daemon=True)
        thread.start()
        try:
            while True:
                item, err = q.get()
                if item is _END:
                    if err is not None:
                        raise err
                    return
                yield item
        finally:
            stop.set()
            thread.join(timeout=5)
