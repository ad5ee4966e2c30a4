"""Sliding-window inference benchmark: lightning_dicom vs MONAI ``sliding_window_inference`` (issue 11).

Two cases, CPU, one run each, every run in its own subprocess (so ``ru_maxrss`` is that run's peak):

1. ``unet``: the segmentation demo's small 3D U-Net (``UNet3D`` defaults: width 8, depth 3, GroupNorm,
   LeakyReLU; copied below as a plain ``nn.Module``) on a 160x192x192 volume, roi 96^3, overlap 0.5,
   Gaussian blending, ``sw_batch_size`` 4: time and peak process memory, ours vs MONAI.
2. ``large``: a 600x512x512 volume and one small convolution (3x3x3, 1 -> 2 channels), overlap 0.5,
   roi 96^3 and 64^3: peak host memory beyond the input and the output; it must not grow with the
   number of windows (roi 64 has ~3x as many as roi 96).

A third row per setting runs the model alone on one batch of ``sw_batch_size`` windows: its peak
beyond the input is the floor of any sliding-window method (for the 3x3x3 convolution most of it is
PyTorch's CPU unfold buffer, ``sw_batch_size x 27 x roi^3`` floats, which grows with the roi, not with the
number of windows). Both methods return blended logits ``[1, 2, D, H, W]`` float32 (ours: ``output="logits"``). Every
worker imports both libraries before its baseline is read, so import costs are equal. Labels of the two
methods are compared in case 1 (they differ slightly by design: nnU-Net vs MONAI window placement
and Gaussian).

Usage::

    .venv/bin/pip install -c constraints-dev.txt monai psutil   # or: pip install -e ".[bench]"
    .venv/bin/python benchmarks/inference.py            # ~4 min on 2 cores
    .venv/bin/python benchmarks/inference.py --repeats 3  # interleaved repeats: best time, median peak
    .venv/bin/python benchmarks/inference.py --quick    # smoke test, small volumes, ~20 s
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MIB = 1 << 20


# --------------------------------------------------------------------------------------------------
# Models (the demo's U-Net, lightning_dicom.demo.networks, without Lightning; one small convolution)
# --------------------------------------------------------------------------------------------------


def _model(kind: str) -> nn.Module:
    from lightning_dicom.demo.networks import UNet3DNet

    torch.manual_seed(0)
    return (UNet3DNet() if kind == "unet" else nn.Conv3d(1, 2, 3, padding=1)).eval()


# --------------------------------------------------------------------------------------------------
# Worker: one run, in a fresh process
# --------------------------------------------------------------------------------------------------


def _rss() -> int:
    """Current resident set size in bytes (Linux /proc)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _worker(cfg: dict) -> dict:
    from lightning_dicom.inference import sliding_window_inference

    try:
        from monai.inferers import sliding_window_inference as monai_swi
    except ImportError:
        monai_swi = None
    model = _model(cfg["model"])
    roi, overlap, sw = tuple(cfg["roi"]), cfg["overlap"], cfg["sw_batch_size"]
    windows = 0

    def predictor(w: torch.Tensor) -> torch.Tensor:
        nonlocal windows
        windows += w.shape[0]
        return model(w)

    with torch.inference_mode():
        model(torch.zeros(1, 1, *roi))  # warm-up (oneDNN primitives), same for both methods
    baseline = _rss()
    x = torch.randn(1, 1, *cfg["shape"], generator=torch.Generator().manual_seed(1))
    t0, c0 = time.perf_counter(), time.process_time()
    with torch.inference_mode():
        if cfg["method"] == "model":  # the model alone on one window batch: its own memory peak
            out = predictor(torch.zeros(sw, 1, *roi))
        elif cfg["method"] == "ours":
            out = sliding_window_inference(
                x, roi, predictor, overlap=overlap, blending="gaussian", sw_batch_size=sw, output="logits"
            )
        else:
            out = monai_swi(x, roi, sw, predictor, overlap=overlap, mode="gaussian")
    seconds, cpu_seconds = time.perf_counter() - t0, time.process_time() - c0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
    result = {
        **cfg,
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        "threads": torch.get_num_threads(),
        "windows": windows,
        "peak_rss": peak,
        "baseline_rss": baseline,
        "input_bytes": x.nbytes,
        "output_bytes": out.nbytes,
        "peak_beyond_io": peak - baseline - x.nbytes - (0 if cfg["method"] == "model" else out.nbytes),
    }
    if cfg.get("labels_path") and cfg["method"] != "model":
        np.save(cfg["labels_path"], torch.as_tensor(out).argmax(1).to(torch.uint8).numpy())
    return result


def _spawn(cfg: dict) -> dict:
    proc = subprocess.run(
        [sys.executable, __file__, "--worker", json.dumps(cfg)], capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise RuntimeError(f"worker {cfg} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------------------------------
# Driver
# --------------------------------------------------------------------------------------------------


def _plan(quick: bool, have_monai: bool, tmp: Path) -> list[dict]:
    methods = ["ours", "monai", "model"] if have_monai else ["ours", "model"]
    unet = {
        "case": "unet",
        "model": "unet",
        "shape": [64, 80, 80] if quick else [160, 192, 192],
        "roi": [48] * 3 if quick else [96] * 3,
        "overlap": 0.5,
        "sw_batch_size": 4,
    }
    large = {
        "case": "large",
        "model": "conv",
        "shape": [120, 128, 128] if quick else [600, 512, 512],
        "overlap": 0.5,
        "sw_batch_size": 4,
    }
    runs = [{**unet, "method": m, "labels_path": str(tmp / f"{m}.npy")} for m in methods]
    rois = [[32] * 3, [24] * 3] if quick else [[96] * 3, [64] * 3]
    runs += [{**large, "roi": r, "method": m} for r in rois for m in methods]
    return runs


def _combine(runs: list[dict]) -> dict:
    """Repeats of one setting -> best time (least disturbed by other processes), median peaks."""
    peaks = sorted(runs, key=lambda r: r["peak_rss"])
    mid = peaks[len(peaks) // 2]
    return {
        **mid,
        "seconds": min(r["seconds"] for r in runs),
        "cpu_seconds": min(r["cpu_seconds"] for r in runs),
        "peaks": [r["peak_rss"] for r in runs],
    }


def _table(results: list[dict]) -> str:
    monai = {(r["case"], tuple(r["roi"])): r for r in results if r["method"] == "monai"}
    names = {"ours": "lightning_dicom", "monai": "MONAI", "model": "model alone, 1 batch"}
    lines = [
        "| case | volume (z-y-x) | roi | method | windows | time (s) | speed vs MONAI | CPU time (s) "
        "| peak RSS (MiB) | peak beyond input+output (MiB) |",
        "|---|---|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        ref = monai.get((r["case"], tuple(r["roi"])))
        speed = f"{ref['seconds'] / r['seconds']:.2f}x" if ref and r["method"] != "model" else "-"
        lines.append(
            f"| {r['case']} | {'x'.join(map(str, r['shape']))} | {r['roi'][0]}^3 | {names[r['method']]} "
            f"| {r['windows']} | {r['seconds']:.1f} | {speed} | {r['cpu_seconds']:.1f} | {r['peak_rss'] / MIB:.0f} "
            f"| {r['peak_beyond_io'] / MIB:.0f} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small volumes (smoke test)")
    parser.add_argument(
        "--repeats",
        type=int,
        default=1,
        help="runs of every setting, interleaved; the table shows the best time and the median peak",
    )
    parser.add_argument("--threads", type=int, default=0, help="torch threads in each run (default: torch's)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        cfg = json.loads(args.worker)
        if cfg.get("threads"):
            torch.set_num_threads(cfg["threads"])
        print(json.dumps(_worker(cfg)))
        return 0
    try:
        import monai  # noqa: F401

        have_monai = True
    except ImportError:
        have_monai = False
        print(
            "monai is not installed: lightning_dicom rows only (pip install -e '.[bench]')", file=sys.stderr
        )
    load = os.getloadavg()[0]
    if load > 0.5 * (os.cpu_count() or 1):
        print(
            f"warning: load average {load:.1f} on {os.cpu_count()} cores; timings may be noisy",
            file=sys.stderr,
        )
    with tempfile.TemporaryDirectory() as tmp:
        plan = [{**cfg, "threads": args.threads} for cfg in _plan(args.quick, have_monai, Path(tmp))]
        runs: list[list[dict]] = [[] for _ in plan]
        for _ in range(max(1, args.repeats)):
            for cfg, done in zip(plan, runs, strict=True):
                r = _spawn(cfg)
                done.append(r)
                print(
                    f"  {r['case']} roi {r['roi'][0]} {r['method']}: {r['seconds']:.1f} s, "
                    f"peak {r['peak_rss'] / MIB:.0f} MiB, load {os.getloadavg()[0]:.1f}",
                    file=sys.stderr,
                )
        results = [_combine(r) for r in runs]
        agreement = None
        if have_monai:
            a, b = np.load(Path(tmp) / "ours.npy"), np.load(Path(tmp) / "monai.npy")
            agreement = float((a == b).mean())
    end_load = os.getloadavg()[0]
    print(
        f"torch {torch.__version__}, CPU, {results[0]['threads']} threads on {os.cpu_count()} cores; "
        f"{args.repeats} run(s) of each setting in fresh processes, interleaved (best wall and CPU time, "
        f"median peak); load average {load:.2f} at start, {end_load:.2f} at end\n"
    )
    print(_table(results))
    if agreement is not None:
        print(
            f"\nunet case: argmax labels of ours and MONAI agree on {100 * agreement:.3f}% of voxels "
            "(window placement and Gaussian differ slightly by design)."
        )
    large = [r for r in results if r["case"] == "large" and r["method"] == "ours"]
    if len(large) == 2:
        a, b = large
        print(
            f"\nlarge case, ours: {a['windows']} vs {b['windows']} windows -> peak beyond input+output "
            f"{a['peak_beyond_io'] / MIB:.0f} vs {b['peak_beyond_io'] / MIB:.0f} MiB."
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
