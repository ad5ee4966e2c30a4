"""The ``variants`` row: DataLoader hand-off options on lightning_dicom's cache, for patches and whole volumes.

Patches, with float16 transport cast in the main process and with float32 from the workers: (a)
``PatchDataset`` + ``collate`` in the workers, (a') the same, image only, (b) a whole batch built in a
worker, (c) a main-process thread pool. Whole volumes: (a), (a'), (a'') shared-memory tensors, (0) no
workers, (c). Then single-thread costs (memmap open, patch copy, cast). See ``benchmarks/README.md``.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from .common import median_rate
from .context import Ctx
from .handoff import ImageOnly, Repeat, ThreadLoader, WorkerBatchPatches, cast_image, collate_f32, crop_into
from .loaders import datamodule
from .measure import dataloader, phase, run_epochs, shutdown, worker_memory


def variants(ctx: Ctx) -> dict[str, Any]:
    """DataLoader hand-off options on the lightning_dicom cache: patches, then whole volumes."""
    dm = datamodule(ctx, {"size": ctx.patch_zyx, "per_volume": ctx.per_volume})
    dm.prepare_data()
    dm.setup("fit")
    volumes = dm.datasets["train"].volumes
    paths = [str(p) for p in volumes.paths]
    out: dict[str, Any] = {
        "method": "variants",
        "kind": "variants",
        "batch_size": ctx.spec["variant_batch"],
        "patches_per_pass": len(paths) * ctx.spec["variant_per_volume"],
        "passes": ctx.spec["variant_passes"],
        "rows": [],
        "volume_rows": [],
    }
    _patch_variants(ctx, volumes, out["rows"])
    out["volumes_per_pass"] = _volume_variants(ctx, volumes, out["volume_rows"])
    out["floor"] = copy_floor(paths, ctx.patch_zyx)
    return out


def _measure(
    ctx: Ctx, rows: list, key: str, label: str, make: Callable[[], Any], cast: Callable | None
) -> None:
    """A warm-up pass and ``variant_passes`` measured passes of the loader ``make()`` builds; one row."""
    phase(f"variants:{key}")
    loader = make()
    try:
        times, n = run_epochs(loader, ctx.spec["variant_passes"] + 1, cast=cast)
        mem = worker_memory(loader)
    finally:
        if isinstance(loader, ThreadLoader):
            loader.close()
        shutdown(loader)
    rows.append(
        {
            "key": key,
            "label": label,
            "pass_s": times,
            "n": n,
            "per_s": median_rate(n, times),
            "worker_mem": mem,
        }
    )
    phase("variants")


def _patch_variants(ctx: Ctx, volumes: Any, rows: list) -> None:
    import torch
    from torch.utils.data import BatchSampler, RandomSampler

    from lightning_dicom.data.dataset import PatchDataset, collate

    paths, shapes = [str(p) for p in volumes.paths], volumes.shapes
    pv, bs, size, w = ctx.spec["variant_per_volume"], ctx.spec["variant_batch"], ctx.patch_zyx, ctx.workers
    to_f32 = functools.partial(cast_image, dtype=torch.float32)
    for dtype, tag in (("float16", "f16 -> f32 in main"), ("float32", "f32 from workers")):
        f16 = dtype == "float16"
        coll, cast = (collate, to_f32) if f16 else (collate_f32, None)
        _measure(
            ctx,
            rows,
            f"a_{dtype}",
            f"(a) PatchDataset per sample, collate in workers, {tag}",
            lambda coll=coll: dataloader(PatchDataset(volumes, size, pv), w, batch_size=bs, collate_fn=coll),
            cast,
        )
        _measure(
            ctx,
            rows,
            f"a0_{dtype}",
            f"(a') as (a), image only (no per-sample meta tensors), {tag}",
            lambda coll=coll: dataloader(
                ImageOnly(PatchDataset(volumes, size, pv)), w, batch_size=bs, collate_fn=coll
            ),
            cast,
        )
        _measure(
            ctx,
            rows,
            f"b_{dtype}",
            f"(b) whole batch built in a worker (sampler yields index lists), {tag}",
            lambda dtype=dtype: dataloader(
                WorkerBatchPatches(paths, shapes, size, pv, dtype),
                w,
                batch_size=None,
                shuffle=False,
                sampler=BatchSampler(RandomSampler(range(len(paths) * pv)), bs, False),
            ),
            cast,
        )
        _measure(
            ctx,
            rows,
            f"c_{dtype}",
            f"(c) main-process thread pool ({w} threads) over open "
            "memmaps, " + ("f16 -> f32 in main" if f16 else "f32 cast in the threads"),
            lambda dtype=dtype: ThreadLoader(paths, size, pv, bs, w, dtype),
            cast,
        )


def _volume_variants(ctx: Ctx, volumes: Any, rows: list) -> int:
    import torch

    from lightning_dicom.data.dataset import CachedVolumeDataset, collate

    paths = [str(p) for p in volumes.paths]
    k = max(1, -(-ctx.spec["variant_volumes"] // len(paths)))  # passes of >= variant_volumes volumes
    to_f32 = functools.partial(cast_image, dtype=torch.float32)
    metas = [json.loads(Path(p).with_suffix(".json").read_text()) for p in paths]
    shared = [torch.from_numpy(np.load(p, allow_pickle=False)).share_memory_() for p in paths]
    in_ram = CachedVolumeDataset(paths, metas, None, shared)
    w = ctx.workers
    _measure(
        ctx,
        rows,
        "va",
        f"(a) CachedVolumeDataset, {w} workers (as the main table), f16 -> f32 in main",
        lambda: dataloader(Repeat(volumes, k), w, collate_fn=collate),
        to_f32,
    )
    _measure(
        ctx,
        rows,
        "va0",
        "(a') as (a), image only (no per-sample meta tensors)",
        lambda: dataloader(Repeat(ImageOnly(volumes), k), w, collate_fn=collate),
        to_f32,
    )
    _measure(
        ctx,
        rows,
        "vram",
        f"(a'') cache.in_memory=True (shared-memory tensors), {w} workers",
        lambda: dataloader(Repeat(in_ram, k), w, collate_fn=collate),
        to_f32,
    )
    _measure(
        ctx,
        rows,
        "v0",
        "(0) CachedVolumeDataset in the main process (num_workers=0), f16 -> f32",
        lambda: torch.utils.data.DataLoader(
            Repeat(volumes, k), batch_size=1, shuffle=True, collate_fn=collate
        ),
        to_f32,
    )
    _measure(
        ctx,
        rows,
        "vc_float16",
        f"(c) main-process thread pool ({w} threads) over open memmaps, f16 -> f32 in main",
        lambda: ThreadLoader(paths, None, k, 1, w, "float16"),
        to_f32,
    )
    _measure(
        ctx,
        rows,
        "vc_float32",
        f"(c) main-process thread pool ({w} threads), f32 cast in the threads",
        lambda: ThreadLoader(paths, None, k, 1, w, "float32"),
        None,
    )
    return len(paths) * k


def copy_floor(paths: list[str], patch_zyx: list[int], n: int = 64) -> dict[str, float]:
    """Single-thread costs in this process: opening a memmap, copying one patch (f16, f16->f32)."""
    rng = np.random.default_rng(0)
    maps = [np.load(p, mmap_mode="r") for p in paths]
    out16 = np.empty((maps[0].shape[0], *patch_zyx), np.float16)
    out32 = out16.astype(np.float32)
    t0 = time.perf_counter()
    for i in range(n):
        np.load(paths[i % len(paths)], mmap_mode="r", allow_pickle=False)
    t1 = time.perf_counter()
    for i in range(n):
        crop_into(out16, maps[i % len(maps)], patch_zyx, rng)
    t2 = time.perf_counter()
    for i in range(n):
        crop_into(out32, maps[i % len(maps)], patch_zyx, rng)
    t3 = time.perf_counter()
    import torch

    t16 = torch.from_numpy(out16)
    for _ in range(n):
        t16.float()
    t4 = time.perf_counter()
    return {
        "memmap_open_ms": (t1 - t0) / n * 1e3,
        "crop_f16_ms": (t2 - t1) / n * 1e3,
        "crop_to_f32_ms": (t3 - t2) / n * 1e3,
        "torch_cast_ms": (t4 - t3) / n * 1e3,
        "patch_mb_f16": out16.nbytes / 2**20,
    }
