#!/usr/bin/env python
"""Loader benchmark: lightning_dicom against a naive loader, MONAI, TorchIO and a hand-written memmap loader.

One command, CPU only (GitHub issue 3, part 5)::

    .venv/bin/python benchmarks/run.py                      # reference size, ~10 min on 2 cores
    .venv/bin/python benchmarks/run.py --quick              # tiny CI smoke run, < 1 min
    .venv/bin/python benchmarks/run.py --series 16 --shape 120 512 512 --epochs 3 \\
        --out benchmarks/results/latest.md

It writes a synthetic CT dataset with :mod:`lightning_dicom.demo.synthetic` (``--series`` series of
``--shape`` z-y-x int16 slices at ``--spacing`` x-y-z mm), then measures every loader with the same
preprocessing (reorient to LPS/canonical, linear resample to ``--target-spacing`` mm isotropic, clip to
``--window`` HU, scale to [0, 1]) and the same DataLoader settings (batch 1, ``--workers`` persistent
workers, every batch touched by a float32 sum in the main process). See ``benchmarks/README.md`` for
what each row measures and what the numbers can and cannot say. The ``ld_patches_masks`` row adds a NIfTI
label mask per series (``masks.csv`` at the data root) to the patch row and reports what masks cost in warm
throughput, cold cache build and cache bytes (GitHub issue 5).

Each library runs in a fresh Python process (``--processes loader`` gives every loader its own,
``one`` runs all in one), after its libraries are imported and its pipeline has run once on a
4-slice series, so one-time import and lazy-loading costs (MONAI's ITK loads for seconds) are not
counted in anyone's cold epoch. The main process runs torch single-threaded (the touch step otherwise
fights the workers for the 2 cores: a 2.4 M-voxel sum goes from 0.5 ms to 15 ms), workers run torch and
ITK/SimpleITK single-threaded, so every loader gets its parallelism from ``--workers`` processes.
Memory is sampled from outside by this parent process: the sum of RSS (every 0.1 s) and PSS (every
1 s) over the loader's process and all its descendants (DataLoader workers, cache-building pools).

The DICOM files and caches are in the page cache (dropping it needs root): "cold" means the
first epoch of a fresh loader with nothing preprocessed, not a cold disk.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent

#: Every loader, in the order they run (lightning's cache is built by ld_volumes and reused after it).
METHODS = (
    "naive",
    "monai_dataset",
    "monai_persistent",
    "monai_cache",
    "torchio_volumes",
    "torchio_queue",
    "npy_memmap",
    "ld_volumes",
    "ld_patches",
    "ld_patches_masks",
    "variants",
)
#: lightning_dicom's own rows (not peers of one another in the ratio table)
LD_METHODS = ("ld_volumes", "ld_patches", "ld_patches_masks")
LABELS = {
    "naive": "naive (SimpleITK read + resample per item)",
    "monai_dataset": "MONAI Dataset (ITKReader)",
    "monai_persistent": "MONAI PersistentDataset",
    "monai_cache": "MONAI CacheDataset",
    "torchio_volumes": "TorchIO SubjectsDataset",
    "torchio_queue": "TorchIO Queue (patches)",
    "npy_memmap": "hand-written float16 .npy memmap",
    "ld_volumes": "lightning_dicom volumes",
    "ld_patches": "lightning_dicom patches (PatchDataset)",
    "ld_patches_masks": "lightning_dicom patches + label masks",
}
#: the benchmark's label mask: voxels above this HU (the spine-like disc, and the lesion where there is one)
MASK_HU = 150.0
#: what the masks row asks for: label value 1 of each NIfTI (read_mask names it ``label_1``)
MASK_STRUCTURES = {"dense": "(?i)^label_1$"}
#: issue 5's targets for masks
MASK_COST_MAX, MASK_BYTES_MAX = 0.15, 0.5
PHASE_MARK = "@@phase "

# ------------------------------------------------------------------------------------------------
# helpers shared by parent and child
# ------------------------------------------------------------------------------------------------


def resampled_shape(
    shape_zyx: Sequence[int],
    spacing_xyz: Sequence[float],
    target: float,
    rounding: Callable[[float], float] = round,
) -> list[int]:
    """z-y-x voxels after resampling (lightning_dicom rounds; TorchIO's grid can be one voxel smaller)."""
    return [max(1, int(rounding(n * s / target))) for n, s in zip(shape_zyx, spacing_xyz[::-1], strict=True)]


def dir_bytes(path: str | Path) -> int:
    path = Path(path)
    if not path.exists():
        return 0
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def mb(n: float | None) -> str:
    return "n/a" if n is None else f"{n / 2**20:,.0f} MB" if n >= 10 * 2**20 else f"{n / 2**20:,.1f} MB"


def _median_rate(n: int, seconds: Sequence[float]) -> float | None:
    warm = [n / s for s in seconds[1:] if s > 0]
    return statistics.median(warm) if warm else None


# ------------------------------------------------------------------------------------------------
# dataset generation (parent)
# ------------------------------------------------------------------------------------------------


def _synthetic() -> Any:
    """``lightning_dicom.demo.synthetic``, loaded by path when the package is not imported yet: the module needs
    only numpy and pydicom, while ``import lightning_dicom`` pulls torch and pytorch_lightning (~5 s per
    process, paid by every generation worker)."""
    if "lightning_dicom" in sys.modules:
        from lightning_dicom.demo import synthetic

        return synthetic
    if "_ld_synthetic" not in sys.modules:
        import importlib.util

        spec = importlib.util.spec_from_file_location(
            "_ld_synthetic", REPO / "lightning_dicom" / "demo" / "synthetic.py"
        )
        if spec is None or spec.loader is None:
            from lightning_dicom.demo import synthetic

            return synthetic
        module = importlib.util.module_from_spec(spec)
        sys.modules["_ld_synthetic"] = module
        spec.loader.exec_module(module)
    return sys.modules["_ld_synthetic"]


def _phantom_job(args: tuple) -> str:
    shape, lesion, seed, out = args
    np.save(out, _synthetic().make_phantom(tuple(shape), lesion=lesion, seed=seed))
    return out


def _write_job(args: tuple) -> str:
    i, phantom, folder, spacing, shape, seed = args
    from pydicom.uid import generate_uid

    write_series = _synthetic().write_series
    hu = np.load(phantom, mmap_mode="r")
    extent = (np.array(shape[::-1], dtype=float) - 1) * np.array(spacing)
    write_series(
        folder,
        np.asarray(hu),
        spacing=spacing,
        origin=tuple(np.round(-extent / 2, 3)),
        patient_id=f"BENCH{i:04d}",
        patient_name=f"BENCH^PATIENT{i:04d}",
        study_uid=generate_uid(entropy_srcs=["ld-bench", "study", str(seed), str(i)]),
        series_uid=generate_uid(entropy_srcs=["ld-bench", "series", str(seed), str(i)]),
        series_description="BENCHMARK CT",
        seed=seed + i,
    )
    return folder


def _map(fn: Callable, jobs: list, workers: int) -> Iterable:
    if workers <= 1 or len(jobs) <= 1:
        return map(fn, jobs)
    with ProcessPoolExecutor(workers) as pool:
        return list(pool.map(fn, jobs))


def make_dataset(
    root: Path, n_series: int, shape: Sequence[int], spacing: Sequence[float], workers: int, seed: int = 0
) -> tuple[list[str], float, bool]:
    """Write (or reuse) the benchmark dataset. Returns (series folders, seconds, reused).

    Only two phantoms (with/without lesion) are drawn and shared by the series (a 512x512x120
    phantom takes ~10 s to draw); every series has its own UIDs, patient and folder.
    """
    spec = {"series": n_series, "shape": list(shape), "spacing": list(spacing), "seed": seed, "v": 1}
    marker = root / "benchmark-dataset.json"
    folders = [str(root / f"patient{i:03d}" / "series") for i in range(n_series)]
    if marker.exists() and json.loads(marker.read_text()) == spec:
        return folders, 0.0, True
    t0 = time.perf_counter()
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    tmp = root / "_phantoms"
    tmp.mkdir()
    n_ph = min(n_series, 2)
    jobs = [(list(shape), k % 2 == 1, seed + k, str(tmp / f"ph{k}.npy")) for k in range(n_ph)]
    phantoms = list(_map(_phantom_job, jobs, min(workers, n_ph)))
    list(
        _map(
            _write_job,
            [(i, phantoms[i % n_ph], folders[i], tuple(spacing), list(shape), seed) for i in range(n_series)],
            workers,
        )
    )
    shutil.rmtree(tmp)
    marker.write_text(json.dumps(spec))
    return folders, time.perf_counter() - t0, False


def _mask_job(args: tuple) -> tuple[str, str, int, int]:
    """One series' label mask: 1 where HU > ``MASK_HU``, written as NIfTI on the series' own grid (geometry
    copied from the DICOM as SimpleITK reads it). Returns (SeriesInstanceUID, path, foreground, voxels)."""
    folder, out, threshold = args
    import pydicom
    import SimpleITK as sitk

    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)
    reader = sitk.ImageSeriesReader()
    files = sitk.ImageSeriesReader.GetGDCMSeriesFileNames(folder)
    reader.SetFileNames(files)
    img = reader.Execute()
    mask = (sitk.GetArrayViewFromImage(img) > threshold).astype(np.uint8)  # z-y-x
    out_img = sitk.GetImageFromArray(mask)
    out_img.CopyInformation(img)
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(out_img, out, useCompression=True)
    uid = str(
        pydicom.dcmread(
            files[0], stop_before_pixels=True, specific_tags=["SeriesInstanceUID"]
        ).SeriesInstanceUID
    )
    return uid, out, int(mask.sum()), int(mask.size)


def make_masks(root: Path, folders: Sequence[str], workers: int) -> tuple[dict[str, Any], bool]:
    """Write (or reuse) a label mask NIfTI per series under ``root/masks`` and ``root/masks.csv``
    (``SeriesInstanceUID,mask``, paths relative to the CSV). Returns (summary, reused).

    Kept beside the DICOM, with its own marker, so a ``--data-dir`` written before masks existed gets
    them added without rewriting the DICOM (a rewritten dataset removes them with everything else).
    """
    dataset = json.loads((root / "benchmark-dataset.json").read_text())
    spec = {"dataset": dataset, "threshold_hu": MASK_HU, "v": 1}
    marker = root / "benchmark-masks.json"
    csv_path = root / "masks.csv"
    if marker.exists() and csv_path.exists():
        saved = json.loads(marker.read_text())
        if saved.get("spec") == spec:
            return saved["summary"], True
    t0 = time.perf_counter()
    shutil.rmtree(root / "masks", ignore_errors=True)
    jobs = [(f, str(root / "masks" / f"{Path(f).parent.name}.nii.gz"), MASK_HU) for f in folders]
    rows = list(_map(_mask_job, jobs, workers))
    lines = [
        "SeriesInstanceUID,mask",
        *(f"{uid},{Path(p).relative_to(root).as_posix()}" for uid, p, _, _ in rows),
    ]
    csv_path.write_text("\n".join(lines) + "\n")
    summary = {
        "series": len(rows),
        "seconds": time.perf_counter() - t0,
        "nifti_bytes": sum(Path(p).stat().st_size for _, p, _, _ in rows),
        "foreground_fraction": sum(r[2] for r in rows) / max(1, sum(r[3] for r in rows)),
        "empty": sum(1 for r in rows if r[2] == 0),
    }
    marker.write_text(json.dumps({"spec": spec, "summary": summary}))
    return summary, False


# ------------------------------------------------------------------------------------------------
# memory sampling (parent, from outside the measured process tree)
# ------------------------------------------------------------------------------------------------


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


# ------------------------------------------------------------------------------------------------
# the loaders under test (child)
# ------------------------------------------------------------------------------------------------


def _sitk_preprocess(folder: str, target: float, window: Sequence[float]) -> np.ndarray:
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

        return {"image": torch.from_numpy(_sitk_preprocess(self.folders[i], self.target, self.window))}


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


def _collate_f32(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """lightning_dicom's collate, then the float32 cast, both in the worker."""
    from lightning_dicom.data.dataset import collate

    batch = collate(samples)
    batch["image"] = batch["image"].float()
    return batch


def _npy_build_job(args: tuple) -> str:
    folder, out, target, window = args
    import SimpleITK as sitk

    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)
    np.save(out, _sitk_preprocess(folder, target, window).astype(np.float16))
    return out


class Child:
    """Runs loaders in this process and reports timings (memory is sampled by the parent)."""

    def __init__(self, spec: dict[str, Any]):
        self.spec = spec
        self.work = Path(spec["work"])
        self.folders: list[str] = spec["folders"]
        self.workers: int = spec["workers"]
        self.target: float = spec["target_spacing"]
        self.window: tuple[float, float] = tuple(spec["window"])
        self.epochs: int = spec["epochs"]
        self.patch_zyx: list[int] = spec["patch_zyx"]
        self.per_volume: int = spec["per_volume"]
        #: loaders that redo all the work every epoch run fewer epochs (their warm epoch = their cold one)
        self.uncached_epochs: int = min(self.epochs, spec["uncached_epochs"])
        #: uncached loaders that no target refers to (MONAI Dataset, TorchIO whole volumes) run this many
        self.reference_epochs: int = min(self.uncached_epochs, spec["reference_epochs"])
        self.mask_stats: dict[str, Any] = {"samples": 0, "with_foreground": 0, "dtype": None}

    # -- common machinery -------------------------------------------------------------------------
    @staticmethod
    def phase(name: str | None) -> None:
        print(f"{PHASE_MARK}{name or '-'}", flush=True)

    @staticmethod
    def image_of(batch: Any) -> Any:
        img = batch["image"]
        return img["data"] if isinstance(img, dict) else img

    def run_epochs(
        self,
        loader: Iterable,
        epochs: int,
        on_epoch: Callable[[int], None] | None = None,
        cast: Callable[[Any], Any] | None = None,
        to_f32: bool = True,
    ) -> tuple[list[float], int]:
        """Iterate ``epochs`` full passes; every batch is cast to float32 (unless ``to_f32`` is false:
        then a float32-accumulated sum reads it without a cast copy) and summed in this process. A ``mask``
        in the batch is read whole too, as ``cast`` leaves it (int64 after lightning_dicom's
        ``on_after_batch_transfer``, else the uint8 transport), by a per-sample max: every byte is read, as by
        a sum, without the integer sum's cost (torch's uint8 sum is ~10x its max), which is the consumer's
        arithmetic, not the loader's. ``self.mask_stats`` counts the samples whose mask has foreground."""
        import torch

        times, n = [], 0
        self.mask_stats = {"samples": 0, "with_foreground": 0, "dtype": None}
        for e in range(epochs):
            t0, n, acc = time.perf_counter(), 0, 0.0
            for batch in loader:
                if cast is not None:
                    batch = cast(batch)
                x = self.image_of(batch)
                acc += float(x.float().sum() if to_f32 else x.sum(dtype=torch.float32))
                n += int(x.shape[0])
                m = batch.get("mask") if isinstance(batch, dict) else None
                if isinstance(m, torch.Tensor):
                    fg = m.flatten(1).amax(1)  # reads every voxel; > 0: the sample has foreground
                    self.mask_stats["samples"] += int(fg.numel())
                    self.mask_stats["with_foreground"] += int((fg > 0).sum())
                    self.mask_stats["dtype"] = str(m.dtype).removeprefix("torch.")
            times.append(time.perf_counter() - t0)
            if not np.isfinite(acc):
                raise RuntimeError("non-finite batch sum")
            if on_epoch is not None:
                on_epoch(e)
        return times, n

    def dataloader(self, dataset: Any, **kw: Any) -> Any:
        """batch 1, shuffled, persistent workers. Workers run torch single-threaded (the DataLoader's
        default) and ITK/SimpleITK single-threaded (ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS=1)."""
        from torch.utils.data import DataLoader

        kw.setdefault("batch_size", 1)
        kw.setdefault("shuffle", True)
        return DataLoader(dataset, num_workers=self.workers, persistent_workers=self.workers > 0, **kw)

    @staticmethod
    def shutdown(loader: Any) -> None:
        it = getattr(loader, "_iterator", None)
        if it is not None and hasattr(it, "_shutdown_workers"):
            it._shutdown_workers()
        gc.collect()

    @staticmethod
    def worker_memory(loader: Any) -> list[dict[str, int]]:
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

    def result(self, method: str, kind: str, times: list[float], n: int, **extra: Any) -> dict[str, Any]:
        out = {
            "method": method,
            "kind": kind,
            "epoch_s": times,
            "samples_per_epoch": n,
            "cold_s": times[0] if times else None,
            "warm_per_s": _median_rate(n, times),
        }
        if len(times) == 1 and times[0] > 0:  # an uncached loader run once: its steady rate is its only rate
            out["warm_per_s"] = n / times[0]
            extra.setdefault("notes", []).append(
                "1 epoch (no cache: every epoch redoes the same work), warm = rate of that epoch"
            )
        out.update(extra)
        return out

    # -- warm-up (outside timing): imports and lazy loading on a 4-slice series ------------------
    def warmup(self, method: str) -> None:
        import torch  # noqa: F401

        tiny = self.spec["tiny"]
        if method == "naive" or method == "npy_memmap":
            _sitk_preprocess(tiny, self.target, self.window)
        elif method.startswith("monai"):
            self.monai_transform()({"image": tiny})
        elif method.startswith("torchio"):
            import torchio as tio

            self.torchio_transform()(tio.Subject(image=tio.ScalarImage(tiny)))
        else:
            from lightning_dicom import DicomDataModule  # noqa: F401
            from lightning_dicom.config import PreprocessingConfig
            from lightning_dicom.data.preprocess import preprocess
            from lightning_dicom.dicom.series import read_series

            preprocess(read_series(tiny), PreprocessingConfig(spacing=(self.target,) * 3, window=self.window))
            if method == "ld_patches_masks":
                from lightning_dicom.masks import association, pipeline, read  # noqa: F401

    # -- peers ------------------------------------------------------------------------------------
    def naive(self) -> dict[str, Any]:
        ds = NaiveDataset(self.folders, self.target, self.window)
        loader = self.dataloader(ds)
        times, n = self.run_epochs(loader, self.uncached_epochs)
        self.shutdown(loader)
        return self.result("naive", "volumes", times, n, cache_bytes=0, cache_note="none")

    def monai_transform(self) -> Any:
        from monai import transforms as mt
        from monai.data import ITKReader

        lo, hi = self.window
        return mt.Compose(
            [
                mt.LoadImaged("image", reader=ITKReader()),  # the series folder, via ITK's GDCM series reader
                mt.EnsureChannelFirstd("image"),
                mt.Orientationd("image", axcodes="LPS", labels=(("L", "R"), ("P", "A"), ("I", "S"))),
                mt.Spacingd("image", pixdim=(self.target,) * 3, mode="bilinear"),
                mt.ScaleIntensityRanged("image", a_min=lo, a_max=hi, b_min=0.0, b_max=1.0, clip=True),
            ]
        )

    def _monai(
        self,
        method: str,
        make: Callable[[list[dict[str, str]], Any], Any],
        cache_dir: Path | None,
        cache_note: str,
        epochs: int,
    ) -> dict[str, Any]:
        from monai.data import DataLoader

        t0 = time.perf_counter()
        ds = make([{"image": f} for f in self.folders], self.monai_transform())
        init_s = time.perf_counter() - t0
        loader = DataLoader(
            ds, batch_size=1, shuffle=True, num_workers=self.workers, persistent_workers=self.workers > 0
        )
        times, n = self.run_epochs(loader, epochs)
        self.shutdown(loader)
        extra: dict[str, Any] = {
            "cache_bytes": dir_bytes(cache_dir) if cache_dir else 0,
            "cache_note": cache_note,
        }
        if init_s > 0.05:
            extra["breakdown"] = {"init_s": init_s, "first_epoch_s": times[0]}
        if method == "monai_cache":
            extra["cache_ram_bytes"] = sum(int(d["image"].nbytes) for d in ds._cache if isinstance(d, dict))
        res = self.result(method, "volumes", times, n, **extra)
        res["cold_s"] = init_s + times[0]
        return res

    def monai_dataset(self) -> dict[str, Any]:
        from monai.data import Dataset

        return self._monai(
            "monai_dataset", lambda d, t: Dataset(d, transform=t), None, "none", self.reference_epochs
        )

    def monai_persistent(self) -> dict[str, Any]:
        from monai.data import PersistentDataset

        cache_dir = self.work / "monai_persistent"
        shutil.rmtree(cache_dir, ignore_errors=True)
        return self._monai(
            "monai_persistent",
            lambda d, t: PersistentDataset(d, transform=t, cache_dir=cache_dir),
            cache_dir,
            "torch.save of float32 MetaTensors",
            self.epochs,
        )

    def monai_cache(self) -> dict[str, Any]:
        from monai.data import CacheDataset

        def make(d: list, t: Any) -> Any:
            return CacheDataset(d, transform=t, cache_rate=1.0, num_workers=self.workers, progress=False)

        return self._monai("monai_cache", make, None, "in RAM only (rebuilt every run)", self.epochs)

    def torchio_transform(self) -> Any:
        import torchio as tio

        lo, hi = self.window
        return tio.Compose(
            [
                tio.ToCanonical(),
                tio.Resample(self.target),
                tio.Clamp(lo, hi),
                tio.RescaleIntensity(out_min_max=(0, 1), in_min_max=(lo, hi)),
            ]
        )

    def torchio_subjects(self) -> Any:
        import torchio as tio

        subjects = [tio.Subject(image=tio.ScalarImage(f)) for f in self.folders]
        return tio.SubjectsDataset(subjects, transform=self.torchio_transform())

    def torchio_volumes(self) -> dict[str, Any]:
        import torchio as tio

        loader = tio.SubjectsLoader(
            self.torchio_subjects(),
            batch_size=1,
            shuffle=True,
            num_workers=self.workers,
            persistent_workers=self.workers > 0,
        )
        times, n = self.run_epochs(loader, self.reference_epochs)
        self.shutdown(loader)
        return self.result("torchio_volumes", "volumes", times, n, cache_bytes=0, cache_note="none")

    def torchio_queue(self) -> dict[str, Any]:
        import torchio as tio

        t0 = time.perf_counter()
        queue = tio.Queue(
            self.torchio_subjects(),
            max_length=max(2 * self.per_volume * self.workers, 16),
            samples_per_volume=self.per_volume,
            sampler=tio.UniformSampler(tuple(self.patch_zyx[::-1])),  # TorchIO is x-y-z
            num_workers=self.workers,
            shuffle_subjects=True,
            shuffle_patches=True,
        )
        loader = tio.SubjectsLoader(queue, batch_size=1, num_workers=0)  # as TorchIO requires
        init_s = time.perf_counter() - t0
        times, n = self.run_epochs(loader, self.uncached_epochs)
        res = self.result(
            "torchio_queue",
            "patches",
            times,
            n,
            cache_bytes=0,
            cache_note="none",
            notes=[
                "outer DataLoader num_workers=0 (TorchIO's rule); the queue's own loader "
                f"has {self.workers} workers, restarted every epoch (not persistent)"
            ],
        )
        res["cold_s"] = init_s + times[0]
        return res

    def npy_memmap(self) -> dict[str, Any]:
        out_dir = self.work / "npy_memmap"
        shutil.rmtree(out_dir, ignore_errors=True)
        out_dir.mkdir(parents=True)
        paths = [str(out_dir / f"{i:04d}.npy") for i in range(len(self.folders))]
        t0 = time.perf_counter()
        jobs = [(f, p, self.target, self.window) for f, p in zip(self.folders, paths, strict=True)]
        with ProcessPoolExecutor(self.workers) as pool:
            list(pool.map(_npy_build_job, jobs))
        build_s = time.perf_counter() - t0
        loader = self.dataloader(NpyDataset(paths))
        times, n = self.run_epochs(loader, self.epochs)
        self.shutdown(loader)
        res = self.result(
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

    # -- lightning_dicom --------------------------------------------------------------------------
    def datamodule(
        self,
        patches: dict[str, Any] | None = None,
        work_dir: str = "lightning_dicom",
        masks: dict[str, Any] | None = None,
    ) -> Any:
        from lightning_dicom import DicomDataModule

        return DicomDataModule(
            root=Path(self.spec["data_root"]),
            work_dir=self.work / work_dir,
            preprocessing={"spacing": [self.target] * 3, "window": list(self.window), "normalize": "minmax"},
            split={"val": 0.0, "test": 0.0},
            loader={"batch_size": 1, "num_workers": self.workers, "persistent_workers": True},
            cache={"workers": self.workers},
            patches=patches,
            masks=masks,
            progress=False,
        )

    @staticmethod
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

    def _ld_epochs(self, dm: Any, method: str, kind: str, breakdown: dict[str, float]) -> dict[str, Any]:
        loader = dm.train_dataloader()
        mem: list[list[dict[str, int]]] = []
        epochs = max(self.epochs, self.spec["rss_epochs"])
        times, n = self.run_epochs(
            loader,
            epochs,
            on_epoch=lambda e: mem.append(self.worker_memory(loader)),
            cast=lambda b: dm.on_after_batch_transfer(b, 0),
        )
        mask_stats = dict(self.mask_stats)
        # the same loader, float16 batches read as they arrive (what a GPU run sees: the cast is on the device)
        nocast, _ = self.run_epochs(loader, 2, to_f32=False)
        self.shutdown(loader)
        cache = dm.volume_cache()
        index = dm.work_dir / "index.sqlite"
        extra_idx = sum(p.stat().st_size for p in index.parent.glob("index.sqlite*") if p.is_file())
        res = self.result(
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

    def ld_volumes(self) -> dict[str, Any]:
        shutil.rmtree(self.work / "lightning_dicom", ignore_errors=True)
        dm = self.datamodule()
        return self._ld_epochs(dm, "ld_volumes", "volumes", self._cold_start(dm))

    def ld_patches(self) -> dict[str, Any]:
        dm = self.datamodule({"size": self.patch_zyx, "per_volume": self.per_volume})
        if any(dm.volume_cache().dir.rglob("*.json")):  # the volumes row ran: its cache is reused
            t0 = time.perf_counter()
            dm.prepare_data()
            t1 = time.perf_counter()
            dm.setup("fit")
            t2 = time.perf_counter()
            res = self._ld_epochs(
                dm, "ld_patches", "patches", {"prepare_data_s": t1 - t0, "setup_s": t2 - t1}
            )
            res["notes"] = ["cache built by the volumes run (warm start: prepare_data + setup)"]
        else:
            res = self._ld_epochs(dm, "ld_patches", "patches", self._cold_start(dm))
            res["notes"] = ["cache built here (the volumes row did not run)"]
        return res

    def ld_patches_masks(self) -> dict[str, Any]:
        """``ld_patches`` plus a label mask per series (NIfTI through ``masks.csv``), in its own work dir:
        index, image + mask cache built from scratch (the masks' cold cost), then the same epochs."""
        shutil.rmtree(self.work / "lightning_dicom_masks", ignore_errors=True)
        masks = {
            "structures": MASK_STRUCTURES,
            "mode": "labels",
            "csv": self.spec["masks_csv"],
            "sources": ["csv"],
        }
        dm = self.datamodule(
            {"size": self.patch_zyx, "per_volume": self.per_volume},
            work_dir="lightning_dicom_masks",
            masks=masks,
        )
        breakdown = self._cold_start(dm)
        missing = dm.report.get("series_missing_structures") or {}
        n_train = len(dm.datasets["train"].volumes)
        if missing or n_train != len(self.folders):
            raise RuntimeError(
                f"masks did not reach every series: {n_train} of {len(self.folders)} in training, "
                f"{len(missing)} missing a structure"
            )
        res = self._ld_epochs(dm, "ld_patches_masks", "patches", breakdown)
        res.update(self._mask_bytes(dm.volume_cache().dir))
        # after the clock: the cached mask must lie on its image (voxels above the threshold, up to the edges)
        vols = dm.datasets["train"].volumes
        lo, hi = self.window
        agree = float(
            np.mean(
                (np.asarray(vols.volume(0)[0], np.float32) > (MASK_HU - lo) / (hi - lo))
                == (np.asarray(vols.mask(0)[0]) > 0)
            )
        )
        if agree < 0.99:
            raise RuntimeError(f"the cached mask does not match its image: {agree:.1%} of voxels agree")
        res["mask_agreement"] = agree
        fraction = dm.config.masks.foreground_fraction
        res["cache_note"] += " + uint8 .mask.npy + int32 .fg.npy"
        res["notes"] = [
            f"own work dir: index, image and mask cache built from scratch; structures "
            f"{MASK_STRUCTURES} ('labels', linear one-hot resampling), foreground_fraction "
            f"{fraction:.2f}; masks cast to int64 in on_after_batch_transfer, then read whole (max)"
        ]
        return res

    @staticmethod
    def _mask_bytes(cache_dir: Path) -> dict[str, int]:
        """File bytes and array (payload) bytes of the cached images, masks and foreground lists."""
        out = {f"{k}_{u}": 0 for k in ("image", "mask", "fg") for u in ("bytes", "payload")}
        for p in cache_dir.rglob("*.npy"):
            kind = "mask" if p.name.endswith(".mask.npy") else "fg" if p.name.endswith(".fg.npy") else "image"
            out[f"{kind}_bytes"] += p.stat().st_size
            out[f"{kind}_payload"] += int(np.load(p, mmap_mode="r", allow_pickle=False).nbytes)
        return out

    # -- DataLoader hand-off variants for patches -------------------------------------------------
    def variants(self) -> dict[str, Any]:
        """DataLoader hand-off options on the lightning_dicom cache: patches, then whole volumes."""
        dm = self.datamodule({"size": self.patch_zyx, "per_volume": self.per_volume})
        dm.prepare_data()
        dm.setup("fit")
        volumes = dm.datasets["train"].volumes
        paths = [str(p) for p in volumes.paths]
        out: dict[str, Any] = {
            "method": "variants",
            "kind": "variants",
            "batch_size": self.spec["variant_batch"],
            "patches_per_pass": len(paths) * self.spec["variant_per_volume"],
            "passes": self.spec["variant_passes"],
            "rows": [],
            "volume_rows": [],
        }
        self._patch_variants(volumes, out["rows"])
        out["volumes_per_pass"] = self._volume_variants(volumes, out["volume_rows"])
        out["floor"] = self.copy_floor(paths)
        return out

    def _measure(
        self, rows: list, key: str, label: str, make: Callable[[], Any], cast: Callable | None
    ) -> None:
        self.phase(f"variants:{key}")
        loader = make()
        try:
            times, n = self.run_epochs(loader, self.spec["variant_passes"] + 1, cast=cast)
            mem = self.worker_memory(loader)
        finally:
            if isinstance(loader, ThreadLoader):
                loader.close()
            self.shutdown(loader)
        rows.append(
            {
                "key": key,
                "label": label,
                "pass_s": times,
                "n": n,
                "per_s": _median_rate(n, times),
                "worker_mem": mem,
            }
        )
        self.phase("variants")

    def _patch_variants(self, volumes: Any, rows: list) -> None:
        import functools

        import torch
        from torch.utils.data import BatchSampler, RandomSampler

        from lightning_dicom.data.dataset import PatchDataset, collate

        paths, shapes = [str(p) for p in volumes.paths], volumes.shapes
        pv, bs, size = self.spec["variant_per_volume"], self.spec["variant_batch"], self.patch_zyx
        to_f32 = functools.partial(_cast_image, dtype=torch.float32)
        for dtype, tag in (("float16", "f16 -> f32 in main"), ("float32", "f32 from workers")):
            f16 = dtype == "float16"
            coll, cast = (collate, to_f32) if f16 else (_collate_f32, None)
            self._measure(
                rows,
                f"a_{dtype}",
                f"(a) PatchDataset per sample, collate in workers, {tag}",
                lambda coll=coll: self.dataloader(
                    PatchDataset(volumes, size, pv), batch_size=bs, collate_fn=coll
                ),
                cast,
            )
            self._measure(
                rows,
                f"a0_{dtype}",
                f"(a') as (a), image only (no per-sample meta tensors), {tag}",
                lambda coll=coll: self.dataloader(
                    ImageOnly(PatchDataset(volumes, size, pv)), batch_size=bs, collate_fn=coll
                ),
                cast,
            )
            self._measure(
                rows,
                f"b_{dtype}",
                f"(b) whole batch built in a worker (sampler yields index lists), {tag}",
                lambda dtype=dtype: self.dataloader(
                    WorkerBatchPatches(paths, shapes, size, pv, dtype),
                    batch_size=None,
                    shuffle=False,
                    sampler=BatchSampler(RandomSampler(range(len(paths) * pv)), bs, False),
                ),
                cast,
            )
            self._measure(
                rows,
                f"c_{dtype}",
                f"(c) main-process thread pool ({self.workers} threads) over open "
                "memmaps, " + ("f16 -> f32 in main" if f16 else "f32 cast in the threads"),
                lambda dtype=dtype: ThreadLoader(paths, size, pv, bs, self.workers, dtype),
                cast,
            )

    def _volume_variants(self, volumes: Any, rows: list) -> int:
        import functools

        import torch

        from lightning_dicom.data.dataset import CachedVolumeDataset, collate

        paths = [str(p) for p in volumes.paths]
        k = max(1, -(-self.spec["variant_volumes"] // len(paths)))  # passes of >= variant_volumes volumes
        to_f32 = functools.partial(_cast_image, dtype=torch.float32)
        metas = [json.loads(Path(p).with_suffix(".json").read_text()) for p in paths]
        shared = [torch.from_numpy(np.load(p, allow_pickle=False)).share_memory_() for p in paths]
        in_ram = CachedVolumeDataset(paths, metas, None, shared)
        w = self.workers
        self._measure(
            rows,
            "va",
            f"(a) CachedVolumeDataset, {w} workers (as the main table), f16 -> f32 in main",
            lambda: self.dataloader(Repeat(volumes, k), collate_fn=collate),
            to_f32,
        )
        self._measure(
            rows,
            "va0",
            "(a') as (a), image only (no per-sample meta tensors)",
            lambda: self.dataloader(Repeat(ImageOnly(volumes), k), collate_fn=collate),
            to_f32,
        )
        self._measure(
            rows,
            "vram",
            f"(a'') cache.in_memory=True (shared-memory tensors), {w} workers",
            lambda: self.dataloader(Repeat(in_ram, k), collate_fn=collate),
            to_f32,
        )
        self._measure(
            rows,
            "v0",
            "(0) CachedVolumeDataset in the main process (num_workers=0), f16 -> f32",
            lambda: torch.utils.data.DataLoader(
                Repeat(volumes, k), batch_size=1, shuffle=True, collate_fn=collate
            ),
            to_f32,
        )
        self._measure(
            rows,
            "vc_float16",
            f"(c) main-process thread pool ({w} threads) over open memmaps, f16 -> f32 in main",
            lambda: ThreadLoader(paths, None, k, 1, w, "float16"),
            to_f32,
        )
        self._measure(
            rows,
            "vc_float32",
            f"(c) main-process thread pool ({w} threads), f32 cast in the threads",
            lambda: ThreadLoader(paths, None, k, 1, w, "float32"),
            None,
        )
        return len(paths) * k

    def copy_floor(self, paths: list[str], n: int = 64) -> dict[str, float]:
        """Single-thread costs in this process: opening a memmap, copying one patch (f16, f16->f32)."""
        rng = np.random.default_rng(0)
        maps = [np.load(p, mmap_mode="r") for p in paths]
        out16 = np.empty((maps[0].shape[0], *self.patch_zyx), np.float16)
        out32 = out16.astype(np.float32)
        t0 = time.perf_counter()
        for i in range(n):
            np.load(paths[i % len(paths)], mmap_mode="r", allow_pickle=False)
        t1 = time.perf_counter()
        for i in range(n):
            crop_into(out16, maps[i % len(maps)], self.patch_zyx, rng)
        t2 = time.perf_counter()
        for i in range(n):
            crop_into(out32, maps[i % len(maps)], self.patch_zyx, rng)
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


def _cast_image(batch: dict[str, Any], dtype: Any) -> dict[str, Any]:
    if batch["image"].dtype != dtype:
        batch["image"] = batch["image"].to(dtype)
    return batch


def child_main(spec_path: str, methods: list[str], result_path: str) -> int:
    os.environ.setdefault("ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS", "1")
    warnings.filterwarnings("ignore")
    import logging

    import torch

    torch.set_num_threads(1)

    logging.disable(logging.WARNING)
    spec = json.loads(Path(spec_path).read_text())
    child = Child(spec)
    results = []
    for m in methods:
        Child.phase(None)
        try:
            child.warmup(m)
            gc.collect()
            Child.phase(m)
            t0 = time.perf_counter()
            res = getattr(child, m)()
            res["wall_s"] = time.perf_counter() - t0
        except ModuleNotFoundError as err:  # a peer library that is not installed (pip install -e ".[bench]")
            res = {"method": m, "skipped": f"{err.name} is not installed"}
        except Exception as err:  # one broken peer must not sink the whole benchmark
            import traceback

            traceback.print_exc()
            res = {"method": m, "error": f"{type(err).__name__}: {err}"}
        Child.phase(None)
        results.append(res)
        Path(result_path).write_text(json.dumps(results))
    return 0


# ------------------------------------------------------------------------------------------------
# parent: orchestration and report
# ------------------------------------------------------------------------------------------------


def process_groups(methods: list[str], mode: str) -> list[list[str]]:
    if mode == "one":
        return [methods]
    if mode == "loader":
        return [[m] for m in methods]
    groups: dict[str, list[str]] = {}
    for m in methods:
        groups.setdefault(m.split("_")[0] if m != "variants" else "ld", []).append(m)
    return list(groups.values())


def run_child(
    spec_path: Path, methods: list[str], result_path: Path, timeout: float, log: Any
) -> tuple[list[dict[str, Any]], dict[str, dict[str, int]]]:
    env = dict(os.environ, ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS="1", PYTHONWARNINGS="ignore")
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--child",
        ",".join(methods),
        "--spec",
        str(spec_path),
        "--result",
        str(result_path),
    ]
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=REPO
    )
    sampler = TreeSampler(proc.pid)
    sampler.start()
    killer = threading.Timer(timeout, proc.kill)
    killer.start()
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith(PHASE_MARK):
                name = line[len(PHASE_MARK) :].strip()
                sampler.set_phase(None if name == "-" else name)
            else:
                log.write(line)
        proc.wait()
    finally:
        killer.cancel()
        sampler.stop()
        if proc.poll() is None:  # interrupted: do not leave the loader process behind
            proc.kill()
            proc.wait()
    results = json.loads(result_path.read_text()) if result_path.exists() else []
    done = {r["method"] for r in results}
    for m in methods:
        if m not in done:
            results.append(
                {"method": m, "error": f"process ended (exit {proc.returncode}) before it reported"}
            )
    return results, sampler.peaks


def versions() -> dict[str, str]:
    from importlib import metadata

    out = {"python": platform.python_version()}
    for pkg in (
        "torch",
        "numpy",
        "SimpleITK",
        "pydicom",
        "pytorch-lightning",
        "monai",
        "torchio",
        "itk",
        "psutil",
        "lightning-dicom",
    ):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def _fmt(x: float | None, digits: int = 1) -> str:
    if x is None:
        return "n/a"
    return f"{x:,.{digits}f}" if abs(x) < 1000 else f"{x:,.0f}"


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{x * 100:+.1f}%"


def _ratio(a: Any, b: Any) -> float | None:
    return a / b if a is not None and b else None


def _growth(mem: list[list[dict[str, int]]], key: str, upto: int) -> float | None:
    """Largest per-worker growth of ``key`` from after epoch 1 to after epoch ``upto`` (fraction)."""
    if len(mem) < 2:
        return None
    last = mem[min(upto, len(mem)) - 1]
    first = {w["pid"]: w[key] for w in mem[0]}
    g = [(w[key] - first[w["pid"]]) / first[w["pid"]] for w in last if first.get(w["pid"])]
    return max(g) if g else None


def targets(res: dict[str, dict[str, Any]], rss_epochs: int) -> list[tuple[str, str, str, bool | None]]:
    """The issue's targets as (target, measured, threshold, met) rows (met is None when not measured)."""

    def get(m: str, k: str) -> Any:
        return res.get(m, {}).get(k)

    ld_v, ld_p = "ld_volumes", "ld_patches"
    checks = [
        (
            "warm whole-volume vs MONAI PersistentDataset",
            _ratio(get(ld_v, "warm_per_s"), get("monai_persistent", "warm_per_s")),
            2.0,
            True,
        ),
        (
            "warm whole-volume vs naive",
            _ratio(get(ld_v, "warm_per_s"), get("naive", "warm_per_s")),
            10.0,
            True,
        ),
        (
            "warm patches vs TorchIO Queue",
            _ratio(get(ld_p, "warm_per_s"), get("torchio_queue", "warm_per_s")),
            30.0,
            True,
        ),
        (
            "cold first epoch vs MONAI PersistentDataset first epoch",
            _ratio(get("monai_persistent", "cold_s"), get(ld_v, "cold_s")),
            5.0,
            True,
        ),
        (
            "cache on disk vs PersistentDataset's",
            _ratio(get(ld_v, "cache_bytes"), get("monai_persistent", "cache_bytes")),
            0.6,
            False,
        ),
    ]
    rows = []
    for name, v, thr, at_least in checks:
        ok = None if v is None else (v >= thr if at_least else v <= thr)
        rows.append((name, "n/a" if v is None else f"{v:.2f}x", f"{'>=' if at_least else '<='} {thr:g}x", ok))
    g = _growth(get(ld_v, "worker_mem") or [], "rss", rss_epochs)
    rows.append(
        (
            f"loader-process RSS growth over {rss_epochs} epochs (volumes)",
            _pct(g),
            "< 5%",
            None if g is None else g < 0.05,
        )
    )
    cost = mask_cost(res)
    rows.append(
        (
            "issue 5: masks' cost in warm patch throughput (1 - with / without masks)",
            "n/a" if cost is None else f"{cost * 100:.1f}%",
            f"<= {MASK_COST_MAX * 100:g}%",
            None if cost is None else cost <= MASK_COST_MAX,
        )
    )
    mr = _ratio(get("ld_patches_masks", "mask_payload"), get("ld_patches_masks", "image_payload"))
    fr = _ratio(get("ld_patches_masks", "mask_bytes"), get("ld_patches_masks", "image_bytes"))
    rows.append(
        (
            "issue 5: cached mask bytes vs image bytes (.mask.npy arrays / image .npy arrays)",
            "n/a" if mr is None else f"{mr:.3f}x (files incl. .npy headers {fr:.5f}x)",
            f"<= {MASK_BYTES_MAX:g}x",
            None if mr is None else mr <= MASK_BYTES_MAX,
        )
    )
    return rows


def mask_cost(res: dict[str, dict[str, Any]], key: str = "warm_per_s") -> float | None:
    """Share of lightning_dicom's warm patch rate that the masks take: 1 - with / without."""
    r = _ratio(res.get("ld_patches_masks", {}).get(key), res.get("ld_patches", {}).get(key))
    return None if r is None else 1.0 - r


def _header(args: argparse.Namespace, spec: dict[str, Any], info: dict[str, Any]) -> list[str]:
    made = "reused" if info["data_reused"] else f"written in {info['data_s']:.0f} s"
    x = "x".join
    return [
        "# lightning_dicom loader benchmark\n",
        f"{info['date']} · {info['cpus']} CPUs ({info['cpu']}) · load average {info['load_start']} at start, "
        f"{info['load_end']} at end (other processes share these cores) · total {info['total_s']:.0f} s\n",
        f"Dataset: {spec['n_series']} synthetic CT series of {x(map(str, args.shape))} (z-y-x) int16 slices, spacing "
        f"{x(map(str, args.spacing))} mm (x-y-z), {mb(info['dicom_bytes'])} of DICOM ({made}). Preprocessing for "
        f"every loader: reorient, linear resample to {args.target_spacing:g} mm isotropic "
        f"(-> {x(map(str, spec['resampled_zyx']))} z-y-x), clip [{args.window[0]:g}, {args.window[1]:g}], scale to "
        f"[0, 1]. DataLoader: batch 1, {args.workers} persistent workers, every batch cast to float32 and summed in "
        f"the main process. Patches: {x(map(str, spec['patch_zyx']))} (z-y-x; {args.patch}^3 capped at the volume), "
        f"{args.per_volume} per volume per epoch. Epochs: {args.epochs} (lightning_dicom: "
        f"{max(args.epochs, args.rss_epochs)}; loaders without a cache, which redo everything each epoch: naive and "
        f"TorchIO Queue {min(args.epochs, args.uncached_epochs)}, MONAI Dataset and TorchIO whole volumes "
        f"{min(args.epochs, args.uncached_epochs, args.reference_epochs)}); warm = median over the epochs after the "
        "first.\n",
        *_masks_header(info.get("masks")),
        "All files are in the page cache (dropping it needs root): cold = first epoch of a fresh loader with "
        "nothing preprocessed, not a cold disk. Imports and lazy library loading happen before timing. Peak "
        "memory: sum over the loader's process tree (main + workers + build pools); RSS counts shared pages once "
        "per process, PSS splits them (sampled every 1 s, so short peaks can be missed).\n",
    ]


def _masks_header(m: dict[str, Any] | None) -> list[str]:
    if not m:
        return []
    made = "reused" if m["reused"] else f"written in {m['seconds']:.0f} s"
    return [
        f"Masks (the patches + masks row): one NIfTI label image per series on the series' own grid, 1 where "
        f"HU > {MASK_HU:g} (the spine-like disc, and the lesion in every other series), "
        f"{m['foreground_fraction'] * 100:.2f}% of the voxels, {mb(m['nifti_bytes'])} of .nii.gz ({made}); "
        f"`masks.csv` at the data root lists them by SeriesInstanceUID.\n"
    ]


def _notes(r: dict[str, Any]) -> str:
    notes = [r.get("cache_note", "")] if r.get("cache_bytes") else []
    if r.get("cache_ram_bytes"):
        notes.append(f"{mb(r['cache_ram_bytes'])} cached in RAM")
    if r.get("warm_nocast_per_s"):
        notes.append(
            f"{r['warm_nocast_per_s']:.1f} {r['kind']}/s with the float16 batches left uncast (in a GPU run "
            "the cast happens on the device)"
        )
    if r.get("breakdown"):
        notes.append(
            "cold = " + " + ".join(f"{k.removesuffix('_s')} {v:.1f} s" for k, v in r["breakdown"].items())
        )
    return "; ".join(n for n in [*notes, *r.get("notes", [])] if n)


def _results_table(res: dict[str, dict[str, Any]]) -> list[str]:
    out = [
        "## Results\n",
        "| loader | cold first epoch (s) | warm volumes/s | warm patches/s | cache on disk | peak RSS (tree) | "
        "peak PSS (tree) | notes |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for m in METHODS[:-1]:
        r = res.get(m)
        if r is None:
            continue
        if "error" in r or "skipped" in r:
            what = f"error: {r['error'][:160]}" if "error" in r else f"skipped: {r['skipped']}"
            out.append(f"| {LABELS[m]} | | | | | | | {what} |")
            continue
        vol = _fmt(r.get("warm_per_s"), 2) if r["kind"] == "volumes" else ""
        pat = _fmt(r.get("warm_per_s"), 1) if r["kind"] == "patches" else ""
        cache = mb(r["cache_bytes"]) if r.get("cache_bytes") else "none"
        out.append(
            f"| {LABELS[m]} | {_fmt(r.get('cold_s'), 1)} | {vol} | {pat} | {cache} | {mb(r.get('peak_rss'))} | "
            f"{mb(r.get('peak_pss'))} | {_notes(r)} |"
        )
    return [*out, ""]


def _ratio_table(res: dict[str, dict[str, Any]]) -> list[str]:
    ld_v, ld_p = res.get("ld_volumes", {}), res.get("ld_patches", {})
    out = [
        "## lightning_dicom relative to each peer\n",
        "| peer | warm samples/s: lightning_dicom / peer | cold first epoch: peer / lightning_dicom |",
        "|---|---:|---:|",
    ]
    for m in METHODS:
        r = res.get(m, {})
        if m in LD_METHODS or m == "variants":
            continue
        if not r or "error" in r or "skipped" in r:
            continue
        patches = r.get("kind") == "patches"
        wr = _ratio((ld_p if patches else ld_v).get("warm_per_s"), r.get("warm_per_s"))
        cr = _ratio(r.get("cold_s"), ld_v.get("cold_s"))
        x = "n/a" if wr is None else f"{_fmt(wr, 2)}x"
        out.append(
            f"| {LABELS[m]} | {x} ({'patches' if patches else 'volumes'}) | "
            f"{'n/a' if cr is None else _fmt(cr, 2) + 'x'} |"
        )
    return [*out, ""]


def _targets_table(res: dict[str, dict[str, Any]], rss_epochs: int) -> list[str]:
    out = [
        "## Targets (issues 3 and 5)\n",
        "| target | measured | threshold | status |",
        "|---|---:|---:|---|",
    ]
    for name, measured, thr, ok in targets(res, rss_epochs):
        out.append(
            f"| {name} | {measured} | {thr} | {'n/a' if ok is None else 'met' if ok else '**not met**'} |"
        )
    out.append("")
    out += _masks_notes(res)
    for m in LD_METHODS:
        mem = res.get(m, {}).get("worker_mem")
        if not mem:
            continue
        per_epoch = " · ".join(
            f"e{e + 1}: "
            + ", ".join(f"{x['rss'] / 2**20:.0f}/{x['uss'] / 2**20:.0f}/{x['pss'] / 2**20:.0f}" for x in ws)
            for e, ws in enumerate(mem)
        )
        last = min(rss_epochs, len(mem))
        out.append(
            f"Loader process memory (DataLoader workers, or the main process for the threads backend) after each epoch, {LABELS[m]} (MB per process, RSS/USS/PSS): {per_epoch}. "
            f"Growth e1 -> e{last}: RSS {_pct(_growth(mem, 'rss', rss_epochs))}, "
            f"USS {_pct(_growth(mem, 'uss', rss_epochs))}.\n"
        )
    return out


def _masks_notes(res: dict[str, dict[str, Any]]) -> list[str]:
    """The masks row against the image-only patches row, in words (issue 5)."""
    m, p, v = res.get("ld_patches_masks", {}), res.get("ld_patches", {}), res.get("ld_volumes", {})
    if not m or "error" in m or "skipped" in m:
        return []
    out = []
    cost, cost_nc = mask_cost(res), mask_cost(res, "warm_nocast_per_s")
    if cost is not None:
        out.append(
            f"Masks (issue 5): warm {_fmt(m.get('warm_per_s'), 1)} patches/s with masks vs "
            f"{_fmt(p.get('warm_per_s'), 1)} without, so masks cost {cost * 100:.1f}% of warm patch throughput "
            f"(uint8 mask cropped beside the image in the loader threads, cast to int64 by "
            f"on_after_batch_transfer in the main process, then read whole); with the batches left uncast (on a GPU "
            f"the int64 cast happens on the device) {_fmt(m.get('warm_nocast_per_s'), 1)} vs "
            f"{_fmt(p.get('warm_nocast_per_s'), 1)} patches/s, a cost of "
            f"{'n/a' if cost_nc is None else f'{cost_nc * 100:.1f}%'}. Rows measured one after the other in "
            "one process: compare with the load average in mind."
        )
    else:
        out.append(
            "Masks (issue 5): the image-only patches row did not run, so the throughput cost is not measured."
        )
    b = m.get("breakdown", {})
    ref = (v.get("breakdown") or {}).get("cache_build_s") or (p.get("breakdown") or {}).get("cache_build_s")
    build = b.get("cache_build_s")
    if build is not None:
        extra = (
            (
                f"; the image-only cache build of this run took {ref:.1f} s, so masks add {build - ref:.1f} s "
                f"({_fmt(build / ref, 2)}x)"
            )
            if ref
            else ""
        )
        out.append(
            f"Mask cache, cold: index scan {b.get('index_scan_s', 0):.1f} s + cache build (images and masks) "
            f"{build:.1f} s + setup {b.get('setup_s', 0):.1f} s{extra}."
        )
    if m.get("image_bytes"):
        ib, mb_, fb = m["image_bytes"], m["mask_bytes"], m["fg_bytes"]
        out.append(
            f"Mask cache on disk: images {mb(ib)} (.npy), masks {mb(mb_)} (.mask.npy, "
            f"{mb_ / ib:.5f}x the image files, {m['mask_payload'] / m['image_payload']:.3f}x their arrays), "
            f"foreground lists {mb(fb)} (.fg.npy, {fb / ib * 100:.2f}% of the image files; with them the mask "
            f"side is {(mb_ + fb) / ib:.3f}x)."
        )
    st = m.get("mask_stats")
    if st:
        out.append(
            f"{st['with_foreground']} of {st['samples']} patches had foreground in their mask "
            f"({st['dtype']} in the batch)."
        )
    if m.get("mask_agreement") is not None:
        out.append(
            f"Check: the first cached mask agrees with its image thresholded at {MASK_HU:g} HU on "
            f"{m['mask_agreement']:.2%} of the voxels."
        )
    return [" ".join(out) + "\n"]


def _variant_rows(rows: list[dict[str, Any]], peaks: dict[str, dict[str, int]], unit: str) -> list[str]:
    out = [f"| variant | {unit}/s | peak PSS (tree) | worker RSS after (MB) |", "|---|---:|---:|---|"]
    for row in rows:
        pk = peaks.get(f"variants:{row['key']}", {})
        wm = ", ".join(f"{x['rss'] / 2**20:.0f}" for x in row["worker_mem"]) or "no workers"
        out.append(f"| {row['label']} | {_fmt(row['per_s'], 1)} | {mb(pk.get('peak_pss'))} | {wm} |")
    return [*out, ""]


def _variants_table(var: dict[str, Any] | None, peaks: dict[str, dict[str, int]]) -> list[str]:
    if not var:
        return []
    if "error" in var or "skipped" in var:
        return ["## DataLoader hand-off variants\n", f"{var.get('error') or var.get('skipped')}\n"]
    out = [
        f"## Patch hand-off variants (same cache, batch {var['batch_size']}, {var['patches_per_pass']} patches "
        f"per pass, median of {var['passes']} passes after a warm-up pass)\n",
        *_variant_rows(var["rows"], peaks, "patches"),
    ]
    if var.get("volume_rows"):
        out += [
            f"## Whole-volume hand-off variants (same cache, batch 1, {var['volumes_per_pass']} volumes per pass, "
            f"median of {var['passes']} passes after a warm-up pass)\n",
            *_variant_rows(var["volume_rows"], peaks, "volumes"),
        ]
    f = var.get("floor")
    if f:
        out.append(
            f"Single-thread costs in the main process: opening a .npy memmap {f['memmap_open_ms']:.3f} ms; "
            f"copying one {f['patch_mb_f16']:.1f} MB float16 patch out of it {f['crop_f16_ms']:.2f} ms, "
            f"copying it to float32 (torch cast) {f['crop_to_f32_ms']:.2f} ms; torch float16 -> float32 cast "
            f"of one patch already in memory {f['torch_cast_ms']:.2f} ms.\n"
        )
    return out


def report(
    args: argparse.Namespace,
    spec: dict[str, Any],
    results: list[dict[str, Any]],
    peaks: dict[str, dict[str, int]],
    info: dict[str, Any],
) -> str:
    res = {r["method"]: {**r, **peaks.get(r["method"], {})} for r in results}
    lines = [
        *_header(args, spec, info),
        *_results_table(res),
        *_ratio_table(res),
        *_targets_table(res, args.rss_epochs),
        *_variants_table(res.get("variants"), peaks),
        "## Versions\n",
        ", ".join(f"{k} {v}" for k, v in info["versions"].items()) + "\n",
        f"Command: `{' '.join(info['argv'])}`\n",
    ]
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--series", type=int, default=None, help="number of series (default 16; --quick 4)")
    p.add_argument(
        "--shape",
        type=int,
        nargs=3,
        default=None,
        metavar=("Z", "Y", "X"),
        help="slices x rows x columns of each series (default 120 512 512; --quick 24 96 96)",
    )
    p.add_argument(
        "--spacing",
        type=float,
        nargs=3,
        default=[0.7, 0.7, 1.25],
        metavar=("X", "Y", "Z"),
        help="source spacing in mm (default 0.7 0.7 1.25)",
    )
    p.add_argument("--target-spacing", type=float, default=2.0, help="isotropic resampling target, mm")
    p.add_argument("--window", type=float, nargs=2, default=[-1000.0, 1000.0], metavar=("LOW", "HIGH"))
    p.add_argument("--epochs", type=int, default=None, help="epochs per loader (default 3; --quick 2)")
    p.add_argument(
        "--rss-epochs",
        type=int,
        default=None,
        help="lightning_dicom runs max(epochs, this) epochs for the RSS check (default 5; --quick 3)",
    )
    p.add_argument(
        "--uncached-epochs",
        type=int,
        default=2,
        help="epochs for the loaders without a cache that a target compares against (naive, TorchIO "
        "Queue); capped at --epochs (default 2)",
    )
    p.add_argument(
        "--reference-epochs",
        type=int,
        default=1,
        help="epochs for the other loaders without a cache (MONAI Dataset, TorchIO whole volumes), "
        "whose warm rate is then their first epoch's (default 1)",
    )
    p.add_argument(
        "--patch", type=int, default=96, help="patch edge in voxels, capped at the volume (default 96)"
    )
    p.add_argument("--per-volume", type=int, default=8, help="patches per volume per epoch (default 8)")
    p.add_argument("--workers", type=int, default=2, help="DataLoader workers (default 2)")
    p.add_argument(
        "--variants",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="measure the patch hand-off variants (default on)",
    )
    p.add_argument("--variant-batch", type=int, default=4, help="batch size of the variants (default 4)")
    p.add_argument(
        "--variant-per-volume",
        type=int,
        default=None,
        help="patches per volume per variant pass (default 16; --quick 8)",
    )
    p.add_argument(
        "--variant-volumes",
        type=int,
        default=None,
        help="volumes per whole-volume variant pass (default 64; --quick 16)",
    )
    p.add_argument(
        "--variant-passes",
        type=int,
        default=None,
        help="measured passes per variant, after a warm-up pass (default 3; --quick 1)",
    )
    p.add_argument("--only", type=str, default=None, help=f"comma-separated subset of: {', '.join(METHODS)}")
    p.add_argument("--quick", action="store_true", help="tiny CI smoke run (< 1 min): 4 series of 24x96x96")
    p.add_argument(
        "--processes",
        choices=("library", "loader", "one"),
        default=None,
        help="a fresh Python process per library (default), per loader, or one for all (--quick)",
    )
    p.add_argument("--data-dir", type=Path, default=None, help="keep/reuse the DICOM dataset here")
    p.add_argument("--tmp", type=Path, default=None, help="scratch folder for caches (default: system temp)")
    p.add_argument("--keep", action="store_true", help="keep the scratch folder")
    p.add_argument("--timeout", type=float, default=1200, help="seconds per loader process")
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        help="Markdown report (default benchmarks/results/latest.md, quick.md with --quick)",
    )
    p.add_argument("--child", type=str, default=None, help=argparse.SUPPRESS)
    p.add_argument("--spec", type=str, default=None, help=argparse.SUPPRESS)
    p.add_argument("--result", type=str, default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    sizes = {
        "series": (16, 4),
        "shape": ([120, 512, 512], [24, 96, 96]),
        "epochs": (3, 2),
        "rss_epochs": (5, 3),
        "variant_per_volume": (16, 8),
        "variant_passes": (3, 1),
        "variant_volumes": (64, 16),
    }
    for attr, (full, quick) in sizes.items():
        if getattr(args, attr) is None:
            setattr(args, attr, quick if args.quick else full)
    if args.processes is None:
        args.processes = "one" if args.quick else "library"
    if args.out is None:
        args.out = HERE / "results" / ("quick.md" if args.quick else "latest.md")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        return child_main(args.spec, args.child.split(","), args.result)
    methods = [m for m in METHODS if m != "variants" or args.variants]
    if args.only:
        wanted = [m.strip() for m in args.only.split(",") if m.strip()]
        unknown = set(wanted) - set(METHODS)
        if unknown:
            raise SystemExit(f"unknown --only entries: {sorted(unknown)}; choose from {', '.join(METHODS)}")
        methods = [m for m in METHODS if m in wanted]
    t_start = time.perf_counter()
    load_start = " ".join(f"{x:.2f}" for x in os.getloadavg())
    scratch = Path(tempfile.mkdtemp(prefix="ld-bench-", dir=args.tmp))
    log = sys.stderr
    try:
        data_root = args.data_dir.resolve() if args.data_dir else scratch / "dicom"
        print(f"writing {args.series} series of {args.shape} to {data_root} ...", file=log, flush=True)
        folders, data_s, reused = make_dataset(data_root, args.series, args.shape, args.spacing, args.workers)
        masks_info: dict[str, Any] | None = None
        if "ld_patches_masks" in methods:
            print(f"writing label masks (HU > {MASK_HU:g}) and masks.csv ...", file=log, flush=True)
            summary, masks_reused = make_masks(data_root, folders, args.workers)
            masks_info = {**summary, "reused": masks_reused}
        tiny = scratch / "tiny"
        make_dataset(tiny, 1, [4, 16, 16], args.spacing, 1, seed=99)
        rz = resampled_shape(args.shape, args.spacing, args.target_spacing)
        spec = {
            "work": str(scratch / "work"),
            "data_root": str(data_root),
            "folders": folders,
            "tiny": str(tiny / "patient000" / "series"),
            "workers": args.workers,
            "target_spacing": args.target_spacing,
            "window": args.window,
            "epochs": args.epochs,
            "rss_epochs": args.rss_epochs,
            "uncached_epochs": args.uncached_epochs,
            "reference_epochs": args.reference_epochs,
            "patch_zyx": [
                min(args.patch, n)
                for n in resampled_shape(args.shape, args.spacing, args.target_spacing, math.floor)
            ],
            "per_volume": args.per_volume,
            "variant_batch": args.variant_batch,
            "variant_per_volume": args.variant_per_volume,
            "variant_passes": args.variant_passes,
            "variant_volumes": args.variant_volumes,
            "n_series": args.series,
            "resampled_zyx": rz,
            "masks_csv": str(data_root / "masks.csv") if masks_info else None,
        }
        Path(spec["work"]).mkdir(parents=True, exist_ok=True)
        spec_path = scratch / "spec.json"
        spec_path.write_text(json.dumps(spec))
        groups = process_groups(methods, args.processes)
        results: list[dict[str, Any]] = []
        peaks: dict[str, dict[str, int]] = {}
        for k, group in enumerate(groups):
            print(
                f"[{time.perf_counter() - t_start:6.0f} s] running {', '.join(group)}", file=log, flush=True
            )
            r, p = run_child(spec_path, group, scratch / f"result{k}.json", args.timeout, log)
            results += r
            peaks.update(p)
            for x in r:
                msg = (
                    x.get("error")
                    or x.get("skipped")
                    or (
                        f"wall {x.get('wall_s', 0):.0f} s"
                        + (
                            ""
                            if x.get("kind") == "variants"
                            else f", cold {x.get('cold_s') or 0:.1f} s, warm {_fmt(x.get('warm_per_s'), 2)}/s"
                        )
                    )
                )
                print(f"    {x['method']}: {msg}", file=log, flush=True)
        info = {
            "date": time.strftime("%Y-%m-%d %H:%M"),
            "cpus": os.cpu_count(),
            "cpu": platform.processor() or platform.machine(),
            "load_start": load_start,
            "load_end": " ".join(f"{x:.2f}" for x in os.getloadavg()),
            "total_s": time.perf_counter() - t_start,
            "dicom_bytes": dir_bytes(data_root) - (masks_info or {}).get("nifti_bytes", 0),
            "data_s": data_s,
            "data_reused": reused,
            "masks": masks_info,
            "versions": versions(),
            "argv": [
                Path(sys.executable).name,
                "benchmarks/run.py",
                *(sys.argv[1:] if argv is None else argv),
            ],
        }
        text = report(args, spec, results, peaks, info)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
        args.out.with_suffix(".json").write_text(
            json.dumps(
                {"spec": spec, "info": info, "results": results, "peaks": peaks}, indent=1, default=str
            )
        )
        print(text)
        print(f"\nwrote {args.out} and {args.out.with_suffix('.json')}", file=log)
        return 1 if any("error" in r for r in results) else 0
    finally:
        if args.keep:
            print(f"kept {scratch}", file=log)
        else:
            shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
