"""lightning_dicom's rows: whole volumes, patches, and patches with label masks, through ``DicomDataModule``.

``ld_volumes`` builds the cache (cold = index scan + ``prepare_data`` + ``setup`` + first epoch),
``ld_patches`` reuses it, ``ld_patches_masks`` builds index, image and mask cache in its own work dir.
Each runs ``max(--epochs, --rss-epochs)`` epochs through ``on_after_batch_transfer``, records the
loader processes' memory after every epoch, then 2 more epochs with the float16 batches left uncast.
"""

from __future__ import annotations

import shutil
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

from .common import MASK_HU, MASK_STRUCTURES, mb
from .context import Ctx
from .measure import result, run_epochs, shutdown, worker_memory


def datamodule(
    ctx: Ctx,
    patches: dict[str, Any] | None = None,
    work_dir: str = "lightning_dicom",
    masks: dict[str, Any] | None = None,
) -> Any:
    """The benchmark's ``DicomDataModule``: everything in training, batch 1, ``ctx.workers`` workers."""
    from lightning_dicom import DicomDataModule

    return DicomDataModule(
        root=Path(ctx.spec["data_root"]),
        work_dir=ctx.work / work_dir,
        preprocessing={"spacing": [ctx.target] * 3, "window": list(ctx.window), "normalize": "minmax"},
        split={"val": 0.0, "test": 0.0},
        loader={"batch_size": 1, "num_workers": ctx.workers, "persistent_workers": True},
        cache={"workers": ctx.workers},
        patches=patches,
        masks=masks,
        progress=False,
    )


def _patches(ctx: Ctx) -> dict[str, Any]:
    return {"size": ctx.patch_zyx, "per_volume": ctx.per_volume}


def _cold_start(dm: Any) -> dict[str, float]:
    """Index scan, cache build (``prepare_data``: re-walks without reading headers) and setup, timed apart."""
    t0 = time.perf_counter()
    with dm.open_index() as idx:  # the scan prepare_data runs, timed on its own
        idx.scan()
    t1 = time.perf_counter()
    dm.prepare_data()
    t2 = time.perf_counter()
    dm.setup("fit")
    t3 = time.perf_counter()
    return {"index_scan_s": t1 - t0, "cache_build_s": t2 - t1, "setup_s": t3 - t2}


def _ld_epochs(ctx: Ctx, dm: Any, method: str, kind: str, breakdown: dict[str, float]) -> dict[str, Any]:
    loader = dm.train_dataloader()
    mem: list[list[dict[str, int]]] = []
    mask_stats: dict[str, Any] = {}
    epochs = max(ctx.epochs, ctx.spec["rss_epochs"])
    times, n = run_epochs(
        loader,
        epochs,
        on_epoch=lambda e: mem.append(worker_memory(loader)),
        cast=lambda b: dm.on_after_batch_transfer(b, 0),
        mask_stats=mask_stats,
    )
    # the same loader, float16 batches read as they arrive (what a GPU run sees: the cast is on the device)
    nocast, _ = run_epochs(loader, 2, to_f32=False)
    shutdown(loader)
    cache = dm.volume_cache()
    index = dm.work_dir / "index.sqlite"
    extra_idx = sum(p.stat().st_size for p in index.parent.glob("index.sqlite*") if p.is_file())
    res = result(
        method,
        kind,
        times,
        n,
        cache_bytes=cache.size_bytes(),
        cache_note=f"float16 .npy + JSON sidecars (+ {mb(extra_idx)} SQLite index)",
        index_bytes=extra_idx,
        worker_mem=mem,
        breakdown={**breakdown, "first_epoch_s": times[0]},
        warm_nocast_per_s=statistics.median(n / t for t in nocast),
    )
    if mask_stats["samples"]:
        res["mask_stats"] = mask_stats
    res["cold_s"] = sum(breakdown.values()) + times[0]
    return res


def ld_volumes(ctx: Ctx) -> dict[str, Any]:
    shutil.rmtree(ctx.work / "lightning_dicom", ignore_errors=True)
    dm = datamodule(ctx)
    return _ld_epochs(ctx, dm, "ld_volumes", "volumes", _cold_start(dm))


def ld_patches(ctx: Ctx) -> dict[str, Any]:
    dm = datamodule(ctx, _patches(ctx))
    if any(dm.volume_cache().dir.rglob("*.json")):  # the volumes row ran: its cache is reused
        t0 = time.perf_counter()
        dm.prepare_data()
        t1 = time.perf_counter()
        dm.setup("fit")
        t2 = time.perf_counter()
        breakdown = {"prepare_data_s": t1 - t0, "setup_s": t2 - t1}
        res = _ld_epochs(ctx, dm, "ld_patches", "patches", breakdown)
        res["notes"] = ["cache built by the volumes run (warm start: prepare_data + setup)"]
    else:
        res = _ld_epochs(ctx, dm, "ld_patches", "patches", _cold_start(dm))
        res["notes"] = ["cache built here (the volumes row did not run)"]
    return res


def ld_patches_masks(ctx: Ctx) -> dict[str, Any]:
    """``ld_patches`` plus a label mask per series (NIfTI through ``masks.csv``), in its own work dir:
    index, image + mask cache built from scratch (the masks' cold cost), then the same epochs.

    Raises:
        RuntimeError: a series reached training without its mask, or the first cached mask does not lie
            on its image thresholded at ``MASK_HU`` (checked after the clock).
    """
    shutil.rmtree(ctx.work / "lightning_dicom_masks", ignore_errors=True)
    masks = {
        "structures": MASK_STRUCTURES,
        "mode": "labels",
        "csv": ctx.spec["masks_csv"],
        "sources": ["csv"],
    }
    dm = datamodule(ctx, _patches(ctx), work_dir="lightning_dicom_masks", masks=masks)
    breakdown = _cold_start(dm)
    missing = dm.report.get("series_missing_structures") or {}
    n_train = len(dm.datasets["train"].volumes)
    if missing or n_train != len(ctx.folders):
        raise RuntimeError(
            f"masks did not reach every series: {n_train} of {len(ctx.folders)} in training, "
            f"{len(missing)} missing a structure"
        )
    res = _ld_epochs(ctx, dm, "ld_patches_masks", "patches", breakdown)
    res.update(_mask_bytes(dm.volume_cache().dir))
    res["mask_agreement"] = _mask_agreement(ctx, dm.datasets["train"].volumes)
    fraction = dm.config.masks.foreground_fraction
    res["cache_note"] += " + uint8 .mask.npy + int32 .fg.npy"
    res["notes"] = [
        f"own work dir: index, image and mask cache built from scratch; structures "
        f"{MASK_STRUCTURES} ('labels', linear one-hot resampling), foreground_fraction "
        f"{fraction:.2f}; masks cast to int64 in on_after_batch_transfer, then read whole (max)"
    ]
    return res


def _mask_agreement(ctx: Ctx, vols: Any) -> float:
    """Share of voxels where the first cached mask equals its image above the threshold (must be >= 0.99)."""
    lo, hi = ctx.window
    agree = float(
        np.mean(
            (np.asarray(vols.volume(0)[0], np.float32) > (MASK_HU - lo) / (hi - lo))
            == (np.asarray(vols.mask(0)[0]) > 0)
        )
    )
    if agree < 0.99:
        raise RuntimeError(f"the cached mask does not match its image: {agree:.1%} of voxels agree")
    return agree


def _mask_bytes(cache_dir: Path) -> dict[str, int]:
    """File bytes and array (payload) bytes of the cached images, masks and foreground lists."""
    out = {f"{k}_{u}": 0 for k in ("image", "mask", "fg") for u in ("bytes", "payload")}
    for p in cache_dir.rglob("*.npy"):
        kind = "mask" if p.name.endswith(".mask.npy") else "fg" if p.name.endswith(".fg.npy") else "image"
        out[f"{kind}_bytes"] += p.stat().st_size
        out[f"{kind}_payload"] += int(np.load(p, mmap_mode="r", allow_pickle=False).nbytes)
    return out
