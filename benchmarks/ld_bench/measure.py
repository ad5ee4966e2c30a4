"""Timing and memory: epochs timed in the loader process, memory sampled from outside by the parent.

In the loader process: :func:`run_epochs` (every batch cast to float32 and summed in the main process),
:func:`dataloader` (the shared DataLoader settings), :func:`worker_memory` (RSS/USS/PSS of the loader's
workers after an epoch), :func:`result` (one row's raw numbers) and :func:`phase` (tells the parent which
row the memory samples belong to). In the parent: :class:`TreeSampler`.
"""

from __future__ import annotations

import contextlib
import gc
import os
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from .common import PHASE_MARK, median_rate


class TreeSampler(threading.Thread):
    """Peak RSS and PSS summed over a process and its descendants, per phase.

    RSS is read every ``interval`` s (cheap); PSS needs a page-table walk (~5 ms per process), so it is
    read every ``pss_interval`` s to keep the sampler off the 2 cores being measured.
    """

    def __init__(self, pid: int, interval: float = 0.1, pss_interval: float = 1.0):
        super().__init__(daemon=True)
        import psutil

        self.psutil = psutil
        self.root = psutil.Process(pid)
        self.interval = interval
        self.pss_every = max(1, round(pss_interval / interval))
        self.phase: str | None = None
        self.peaks: dict[str, dict[str, int]] = {}
        self._stop = threading.Event()
        self._lock = threading.Lock()

    def set_phase(self, name: str | None) -> None:
        with self._lock:
            self.phase = name
            if name is not None and name not in self.peaks:
                rss, pss, n = self.sample(True)
                self.peaks[name] = {
                    "baseline_rss": rss,
                    "baseline_pss": pss,
                    "peak_rss": rss,
                    "peak_pss": pss,
                    "baseline_procs": n,
                    "max_procs": n,
                }

    def sample(self, with_pss: bool) -> tuple[int, int | None, int]:
        """(RSS, PSS or None, number of processes) of the tree."""
        ps = self.psutil
        try:
            procs = [self.root, *self.root.children(recursive=True)]
        except ps.Error:
            return 0, None, 0
        rss, pss = 0, 0
        for p in procs:
            try:
                if with_pss:
                    info = p.memory_full_info()
                    pss += getattr(info, "pss", info.rss)
                else:
                    info = p.memory_info()
                rss += info.rss
            except ps.Error:
                continue
        return rss, pss if with_pss else None, len(procs)

    def run(self) -> None:
        tick = 0
        while not self._stop.wait(self.interval):
            tick += 1
            with self._lock:
                if self.phase is None:
                    continue
                rss, pss, n = self.sample(tick % self.pss_every == 0)
                peak = self.peaks[self.phase]
                peak["peak_rss"] = max(peak["peak_rss"], rss)
                peak["max_procs"] = max(peak["max_procs"], n)
                if pss is not None:
                    peak["peak_pss"] = max(peak["peak_pss"], pss)

    def stop(self) -> None:
        self._stop.set()


def phase(name: str | None) -> None:
    """Tell the parent (through stdout) which row the next memory samples belong to (None: no row)."""
    print(f"{PHASE_MARK}{name or '-'}", flush=True)


def image_of(batch: Any) -> Any:
    img = batch["image"]
    return img["data"] if isinstance(img, dict) else img


def run_epochs(
    loader: Iterable,
    epochs: int,
    on_epoch: Callable[[int], None] | None = None,
    cast: Callable[[Any], Any] | None = None,
    to_f32: bool = True,
    mask_stats: dict[str, Any] | None = None,
) -> tuple[list[float], int]:
    """Iterate ``epochs`` full passes; every batch is cast to float32 (unless ``to_f32`` is false:
    then a float32-accumulated sum reads it without a cast copy) and summed in this process. A ``mask``
    in the batch is read whole too, as ``cast`` leaves it (int64 after lightning_dicom's
    ``on_after_batch_transfer``, else the uint8 transport), by a per-sample max: every byte is read, as by
    a sum, without the integer sum's cost (torch's uint8 sum is ~10x its max), which is the consumer's
    arithmetic, not the loader's. ``mask_stats``, when given, is reset and counts the samples whose mask
    has foreground. Returns (seconds per epoch, samples per epoch)."""
    import torch

    stats = {} if mask_stats is None else mask_stats
    stats.update({"samples": 0, "with_foreground": 0, "dtype": None})
    times, n = [], 0
    for e in range(epochs):
        t0, n, acc = time.perf_counter(), 0, 0.0
        for batch in loader:
            if cast is not None:
                batch = cast(batch)
            x = image_of(batch)
            acc += float(x.float().sum() if to_f32 else x.sum(dtype=torch.float32))
            n += int(x.shape[0])
            m = batch.get("mask") if isinstance(batch, dict) else None
            if isinstance(m, torch.Tensor):
                fg = m.flatten(1).amax(1)  # reads every voxel; > 0: the sample has foreground
                stats["samples"] += int(fg.numel())
                stats["with_foreground"] += int((fg > 0).sum())
                stats["dtype"] = str(m.dtype).removeprefix("torch.")
        times.append(time.perf_counter() - t0)
        if not np.isfinite(acc):
            raise RuntimeError("non-finite batch sum")
        if on_epoch is not None:
            on_epoch(e)
    return times, n


def dataloader(dataset: Any, workers: int, **kw: Any) -> Any:
    """batch 1, shuffled, persistent workers. Workers run torch single-threaded (the DataLoader's
    default) and ITK/SimpleITK single-threaded (ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS=1)."""
    from torch.utils.data import DataLoader

    kw.setdefault("batch_size", 1)
    kw.setdefault("shuffle", True)
    return DataLoader(dataset, num_workers=workers, persistent_workers=workers > 0, **kw)


def shutdown(loader: Any) -> None:
    it = getattr(loader, "_iterator", None)
    if it is not None and hasattr(it, "_shutdown_workers"):
        it._shutdown_workers()
    gc.collect()


def worker_memory(loader: Any) -> list[dict[str, int]]:
    """RSS, PSS and USS (bytes) of each of the loader's worker processes, or of this process without any."""
    import psutil

    it = getattr(loader, "_iterator", None)
    pids = [w.pid for w in getattr(it, "_workers", []) or []]
    if not pids:  # the 'threads' backend: batches are assembled in this (the main) process
        pids = [os.getpid()]
    out = []
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            info = psutil.Process(pid).memory_full_info()
            out.append({"pid": pid, "rss": info.rss, "pss": getattr(info, "pss", 0), "uss": info.uss})
    return out


def result(method: str, kind: str, times: list[float], n: int, **extra: Any) -> dict[str, Any]:
    """One row's raw numbers: epoch times, cold (first epoch) and warm (median rate of the others)."""
    out = {
        "method": method,
        "kind": kind,
        "epoch_s": times,
        "samples_per_epoch": n,
        "cold_s": times[0] if times else None,
        "warm_per_s": median_rate(n, times),
    }
    if len(times) == 1 and times[0] > 0:  # an uncached loader run once: its steady rate is its only rate
        out["warm_per_s"] = n / times[0]
        extra.setdefault("notes", []).append(
            "1 epoch (no cache: every epoch redoes the same work), warm = rate of that epoch"
        )
    out.update(extra)
    return out
