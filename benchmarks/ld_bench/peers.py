"""The peers lightning_dicom is measured against: a naive loader, MONAI, TorchIO, a hand-written memmap loader.

Every row is a function of the run's :class:`~ld_bench.context.Ctx` returning its raw numbers. monai and
torchio are imported inside the functions (the ``bench`` extra): a missing one skips its rows.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from .common import dir_bytes
from .context import Ctx
from .measure import dataloader, result, run_epochs, shutdown


def sitk_preprocess(folder: str, target: float, window: Sequence[float]) -> np.ndarray:
    """What a hand-written loader does: read the folder with GDCM's sort, reorient, resample, clip, scale."""
    import SimpleITK as sitk

    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(folder))
    img = sitk.DICOMOrient(reader.Execute(), "LPS")
    size = [max(1, int(round(n * s / target))) for n, s in zip(img.GetSize(), img.GetSpacing(), strict=True)]
    lo, hi = window
    img = sitk.Resample(
        img,
        size,
        sitk.Transform(),
        sitk.sitkLinear,
        img.GetOrigin(),
        (target,) * 3,
        img.GetDirection(),
        float(lo),
        sitk.sitkFloat32,
    )
    arr = sitk.GetArrayFromImage(img)
    np.clip(arr, lo, hi, out=arr)
    arr -= lo
    arr *= 1.0 / (hi - lo)
    return arr[None]


class NaiveDataset:
    """Map-style dataset (a DataLoader needs only ``__len__``/``__getitem__``): read + preprocess per item."""

    def __init__(self, folders: Sequence[str], target: float, window: Sequence[float]):
        self.folders, self.target, self.window = list(folders), target, tuple(window)

    def __len__(self) -> int:
        return len(self.folders)

    def __getitem__(self, i: int) -> dict[str, Any]:
        import torch

        return {"image": torch.from_numpy(sitk_preprocess(self.folders[i], self.target, self.window))}


class NpyDataset:
    """The hand-written float16 loader: ``np.load(mmap_mode='r')`` and copy the whole volume."""

    def __init__(self, paths: Sequence[str]):
        self.paths = np.array([str(p) for p in paths], dtype=np.str_)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> dict[str, Any]:
        import torch

        return {
            "image": torch.from_numpy(np.array(np.load(self.paths[i], mmap_mode="r", allow_pickle=False)))
        }


def _npy_build_job(args: tuple) -> str:
    folder, out, target, window = args
    import SimpleITK as sitk

    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)
    np.save(out, sitk_preprocess(folder, target, window).astype(np.float16))
    return out


def naive(ctx: Ctx) -> dict[str, Any]:
    ds = NaiveDataset(ctx.folders, ctx.target, ctx.window)
    loader = dataloader(ds, ctx.workers)
    times, n = run_epochs(loader, ctx.uncached_epochs)
    shutdown(loader)
    return result("naive", "volumes", times, n, cache_bytes=0, cache_note="none")


def monai_transform(ctx: Ctx) -> Any:
    from monai import transforms as mt
    from monai.data import ITKReader

    lo, hi = ctx.window
    return mt.Compose(
        [
            mt.LoadImaged("image", reader=ITKReader()),  # the series folder, via ITK's GDCM series reader
            mt.EnsureChannelFirstd("image"),
            mt.Orientationd("image", axcodes="LPS", labels=(("L", "R"), ("P", "A"), ("I", "S"))),
            mt.Spacingd("image", pixdim=(ctx.target,) * 3, mode="bilinear"),
            mt.ScaleIntensityRanged("image", a_min=lo, a_max=hi, b_min=0.0, b_max=1.0, clip=True),
        ]
    )


def _monai(
    ctx: Ctx,
    method: str,
    make: Callable[[list[dict[str, str]], Any], Any],
    cache_dir: Path | None,
    cache_note: str,
    epochs: int,
) -> dict[str, Any]:
    from monai.data import DataLoader

    t0 = time.perf_counter()
    ds = make([{"image": f} for f in ctx.folders], monai_transform(ctx))
    init_s = time.perf_counter() - t0
    loader = DataLoader(
        ds, batch_size=1, shuffle=True, num_workers=ctx.workers, persistent_workers=ctx.workers > 0
    )
    times, n = run_epochs(loader, epochs)
    shutdown(loader)
    extra: dict[str, Any] = {
        "cache_bytes": dir_bytes(cache_dir) if cache_dir else 0,
        "cache_note": cache_note,
    }
    if init_s > 0.05:
        extra["breakdown"] = {"init_s": init_s, "first_epoch_s": times[0]}
    if method == "monai_cache":
        extra["cache_ram_bytes"] = sum(int(d["image"].nbytes) for d in ds._cache if isinstance(d, dict))
    res = result(method, "volumes", times, n, **extra)
    res["cold_s"] = init_s + times[0]
    return res


def monai_dataset(ctx: Ctx) -> dict[str, Any]:
    from monai.data import Dataset

    return _monai(
        ctx, "monai_dataset", lambda d, t: Dataset(d, transform=t), None, "none", ctx.reference_epochs
    )


def monai_persistent(ctx: Ctx) -> dict[str, Any]:
    from monai.data import PersistentDataset

    cache_dir = ctx.work / "monai_persistent"
    shutil.rmtree(cache_dir, ignore_errors=True)
    return _monai(
        ctx,
        "monai_persistent",
        lambda d, t: PersistentDataset(d, transform=t, cache_dir=cache_dir),
        cache_dir,
        "torch.save of float32 MetaTensors",
        ctx.epochs,
    )


def monai_cache(ctx: Ctx) -> dict[str, Any]:
    from monai.data import CacheDataset

    def make(d: list, t: Any) -> Any:
        return CacheDataset(d, transform=t, cache_rate=1.0, num_workers=ctx.workers, progress=False)

    return _monai(ctx, "monai_cache", make, None, "in RAM only (rebuilt every run)", ctx.epochs)


def torchio_transform(ctx: Ctx) -> Any:
    import torchio as tio

    lo, hi = ctx.window
    return tio.Compose(
        [
            tio.ToCanonical(),
            tio.Resample(ctx.target),
            tio.Clamp(lo, hi),
            tio.RescaleIntensity(out_min_max=(0, 1), in_min_max=(lo, hi)),
        ]
    )


def _torchio_subjects(ctx: Ctx) -> Any:
    import torchio as tio

    subjects = [tio.Subject(image=tio.ScalarImage(f)) for f in ctx.folders]
    return tio.SubjectsDataset(subjects, transform=torchio_transform(ctx))


def torchio_volumes(ctx: Ctx) -> dict[str, Any]:
    import torchio as tio

    loader = tio.SubjectsLoader(
        _torchio_subjects(ctx),
        batch_size=1,
        shuffle=True,
        num_workers=ctx.workers,
        persistent_workers=ctx.workers > 0,
    )
    times, n = run_epochs(loader, ctx.reference_epochs)
    shutdown(loader)
    return result("torchio_volumes", "volumes", times, n, cache_bytes=0, cache_note="none")


def torchio_queue(ctx: Ctx) -> dict[str, Any]:
    import torchio as tio

    t0 = time.perf_counter()
    queue = tio.Queue(
        _torchio_subjects(ctx),
        max_length=max(2 * ctx.per_volume * ctx.workers, 16),
        samples_per_volume=ctx.per_volume,
        sampler=tio.UniformSampler(tuple(ctx.patch_zyx[::-1])),  # TorchIO is x-y-z
        num_workers=ctx.workers,
        shuffle_subjects=True,
        shuffle_patches=True,
    )
    loader = tio.SubjectsLoader(queue, batch_size=1, num_workers=0)  # as TorchIO requires
    init_s = time.perf_counter() - t0
    times, n = run_epochs(loader, ctx.uncached_epochs)
    res = result(
        "torchio_queue",
        "patches",
        times,
        n,
        cache_bytes=0,
        cache_note="none",
        notes=[
            "outer DataLoader num_workers=0 (TorchIO's rule); the queue's own loader "
            f"has {ctx.workers} workers, restarted every epoch (not persistent)"
        ],
    )
    res["cold_s"] = init_s + times[0]
    return res


def npy_memmap(ctx: Ctx) -> dict[str, Any]:
    out_dir = ctx.work / "npy_memmap"
    shutil.rmtree(out_dir, ignore_errors=True)
    out_dir.mkdir(parents=True)
    paths = [str(out_dir / f"{i:04d}.npy") for i in range(len(ctx.folders))]
    t0 = time.perf_counter()
    jobs = [(f, p, ctx.target, ctx.window) for f, p in zip(ctx.folders, paths, strict=True)]
    with ProcessPoolExecutor(ctx.workers) as pool:
        list(pool.map(_npy_build_job, jobs))
    build_s = time.perf_counter() - t0
    loader = dataloader(NpyDataset(paths), ctx.workers)
    times, n = run_epochs(loader, ctx.epochs)
    shutdown(loader)
    res = result(
        "npy_memmap",
        "volumes",
        times,
        n,
        cache_bytes=dir_bytes(out_dir),
        cache_note="float16 .npy, no sidecar/index",
        breakdown={"build_s": build_s, "first_epoch_s": times[0]},
    )
    res["cold_s"] = build_s + times[0]
    return res
