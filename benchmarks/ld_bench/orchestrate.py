"""The parent process: write the data, run each group of rows in a fresh loader process, write the report.

Every loader process is ``run.py --child`` (see :mod:`ld_bench.child`); this process samples its memory
from outside (:class:`~ld_bench.measure.TreeSampler`) and kills it after ``--timeout`` seconds.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .common import ENTRY, MASK_HU, METHODS, PHASE_MARK, REPO, dir_bytes, fmt, resampled_shape
from .datasets import make_dataset, make_masks
from .measure import TreeSampler
from .report import Peaks, report


def select_methods(args: argparse.Namespace) -> list[str]:
    """The rows to run, in ``METHODS`` order (``--only``, ``--no-variants``)."""
    methods = [m for m in METHODS if m != "variants" or args.variants]
    if args.only:
        wanted = [m.strip() for m in args.only.split(",") if m.strip()]
        unknown = set(wanted) - set(METHODS)
        if unknown:
            raise SystemExit(f"unknown --only entries: {sorted(unknown)}; choose from {', '.join(METHODS)}")
        methods = [m for m in METHODS if m in wanted]
    return methods


def process_groups(methods: list[str], mode: str) -> list[list[str]]:
    """Rows per loader process: all in one, one each, or one per library (the default)."""
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
) -> tuple[list[dict[str, Any]], Peaks]:
    """Run ``methods`` in a fresh loader process; returns their results and the memory peaks per phase."""
    env = dict(os.environ, ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS="1", PYTHONWARNINGS="ignore")
    cmd = [
        sys.executable,
        str(ENTRY),
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


def build_spec(
    args: argparse.Namespace, scratch: Path, data_root: Path, folders: list[str], masks: bool
) -> dict[str, Any]:
    """What every loader process reads (:class:`~ld_bench.context.Ctx`); writes the tiny warm-up series."""
    tiny = scratch / "tiny"
    make_dataset(tiny, 1, [4, 16, 16], args.spacing, 1, seed=99)
    return {
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
        "resampled_zyx": resampled_shape(args.shape, args.spacing, args.target_spacing),
        "masks_csv": str(data_root / "masks.csv") if masks else None,
    }


def _summary(x: dict[str, Any]) -> str:
    """One progress line's worth of a row's result."""
    if x.get("error") or x.get("skipped"):
        return x.get("error") or x.get("skipped") or ""
    msg = f"wall {x.get('wall_s', 0):.0f} s"
    if x.get("kind") != "variants":
        msg += f", cold {x.get('cold_s') or 0:.1f} s, warm {fmt(x.get('warm_per_s'), 2)}/s"
    return msg


def run_groups(
    args: argparse.Namespace, methods: list[str], scratch: Path, spec_path: Path, t_start: float, log: Any
) -> tuple[list[dict[str, Any]], Peaks]:
    """Every group of rows in its own loader process, one after the other, with a progress line per row."""
    results: list[dict[str, Any]] = []
    peaks: Peaks = {}
    for k, group in enumerate(process_groups(methods, args.processes)):
        print(f"[{time.perf_counter() - t_start:6.0f} s] running {', '.join(group)}", file=log, flush=True)
        r, p = run_child(spec_path, group, scratch / f"result{k}.json", args.timeout, log)
        results += r
        peaks.update(p)
        for x in r:
            print(f"    {x['method']}: {_summary(x)}", file=log, flush=True)
    return results, peaks


def run(args: argparse.Namespace, argv: Sequence[str] | None) -> int:
    """The whole benchmark; exit status 1 when a row failed (the report still lists the others)."""
    methods = select_methods(args)
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
        spec = build_spec(args, scratch, data_root, folders, masks_info is not None)
        Path(spec["work"]).mkdir(parents=True, exist_ok=True)
        spec_path = scratch / "spec.json"
        spec_path.write_text(json.dumps(spec))
        results, peaks = run_groups(args, methods, scratch, spec_path, t_start, log)
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
