"""The benchmark's data (parent process): synthetic CT series as DICOM, and a NIfTI label mask per series.

Series come from :mod:`lightning_dicom.demo.synthetic` (``make_phantom``, ``write_series``); both writers
keep a marker file beside the data so ``--data-dir`` reuses what a run with the same settings wrote.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from .common import MASK_HU, REPO


def _synthetic() -> Any:
    """``lightning_dicom.demo.synthetic``, loaded by path when the package is not imported yet: the module needs
    only numpy and pydicom, while ``import lightning_dicom`` pulls torch and pytorch_lightning (~5 s per
    process, paid by every generation worker)."""
    if "lightning_dicom" in sys.modules:
        from lightning_dicom.demo import synthetic

        return synthetic
    if "_ld_synthetic" not in sys.modules:
        import importlib.util

        path = REPO / "lightning_dicom" / "demo" / "synthetic.py"
        spec = importlib.util.spec_from_file_location("_ld_synthetic", path) if path.exists() else None
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
