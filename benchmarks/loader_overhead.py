#!/usr/bin/env python
"""DataModule loader vs the bare thread-pool variant (c) of ``benchmarks/run.py``, same arrays, one run (issue 13).

    PYTHONPATH=. .venv/bin/python benchmarks/loader_overhead.py            # 16 volumes of 75x179x179, ~1 min
    PYTHONPATH=. .venv/bin/python benchmarks/loader_overhead.py --quick    # smoke run, seconds

It writes float16 cache entries (``.npy``, as the cache stores them; values need no DICOM) and measures, in
this process with torch single-threaded as ``run.py`` does:

- ``DataModule``: ``DicomDataModule.train_dataloader()`` (the loader the module builds for cached data on a
  CPU trainer) over these entries, each batch through ``on_after_batch_transfer``;
- ``(c)``: ``run.py``'s ``ThreadLoader`` ("main-process thread pool, f32 cast in the threads"), imported
  from ``ld_bench.handoff`` (the package behind ``run.py``) so the definition is the same;

for whole volumes and for patches at the same batch size and thread count. Every batch is summed as float32
(``run.py``'s touch). Rate = median over the epochs after the first; the rows alternate (DataModule, (c),
DataModule, (c)), and the ratio DataModule / (c) is the median over rounds of each round's own ratio (the
two loaders of a round ran seconds apart), so a change of machine speed between rounds -- common on a shared
2-core machine -- cancels instead of setting one row's median against the other's. Prints a table with the
rates, each round's ratio and that median.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ld_bench.handoff import ThreadLoader  # noqa: E402  the variant (c) definition (run.py's)

from lightning_dicom.data.dataset import CachedVolumeDataset, PatchDataset  # noqa: E402
from lightning_dicom.datamodule import DicomDataModule  # noqa: E402


def write_entries(
    folder: Path, n: int, shape: tuple[int, int, int]
) -> tuple[list[str], list[dict[str, Any]]]:
    rng = np.random.default_rng(0)
    base = rng.random(shape, dtype=np.float32).astype(np.float16)
    paths, metas = [], []
    for i in range(n):
        p = folder / f"vol{i:03d}.npy"
        np.save(p, np.roll(base, i, axis=0)[None])
        meta = {
            "series_id": f"series{i}",
            "spacing": [2.0, 2.0, 2.0],
            "origin": [0.0, 0.0, float(i)],
            "direction": [1, 0, 0, 0, 1, 0, 0, 0, 1],
            "shape": [1, *shape],
        }
        p.with_suffix(".json").write_text(json.dumps(meta))
        paths.append(str(p))
        metas.append(meta)
    return paths, metas


def epochs(loader: Any, n: int, after: Any = None) -> tuple[float, int]:
    rates = []
    for _ in range(n):
        t0, count, acc = time.perf_counter(), 0, 0.0
        for batch in loader:
            if after is not None:
                batch = after(batch, 0)
            x = batch["image"]
            acc += float(x.float().sum())
            count += int(x.shape[0])
        rates.append(count / (time.perf_counter() - t0))
        assert np.isfinite(acc)
    return statistics.median(rates[1:] if len(rates) > 1 else rates), count


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--volumes", type=int, default=16)
    p.add_argument(
        "--shape", type=int, nargs=3, default=[75, 179, 179], help="z y x (run.py's resampled size)"
    )
    p.add_argument("--patch", type=int, nargs=3, default=[75, 96, 96], help="z y x (run.py: 96^3 capped)")
    p.add_argument("--per-volume", type=int, default=8)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--repeats", type=int, default=2, help="alternating rounds of DataModule and (c)")
    p.add_argument("--quick", action="store_true", help="4 volumes of 24x64x64, 2 epochs, 1 round")
    args = p.parse_args(argv)
    if args.quick:
        args.volumes, args.shape, args.patch, args.epochs, args.repeats = 4, [24, 64, 64], [16, 32, 32], 2, 1
    torch.set_num_threads(1)
    rows: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        paths, metas = write_entries(Path(tmp), args.volumes, tuple(args.shape))
        vols = CachedVolumeDataset(paths, metas)
        for kind in ("volumes", "patches"):
            patches = {"size": args.patch, "per_volume": args.per_volume} if kind == "patches" else None
            dm = DicomDataModule(
                root=Path(tmp),
                work_dir=Path(tmp) / "work",
                loader={"batch_size": args.batch, "num_threads": args.threads},
                patches=patches,
                progress=False,
            )
            base = PatchDataset(vols, tuple(args.patch), args.per_volume) if patches else vols
            dm.datasets["train"] = base
            for _ in range(args.repeats):
                rate, n = epochs(dm.train_dataloader(), args.epochs, dm.on_after_batch_transfer)
                rows.setdefault(f"DataModule {kind}", []).append(rate)
                size = tuple(args.patch) if patches else None
                pv = args.per_volume if patches else 1
                c = ThreadLoader(paths, size, pv, args.batch, args.threads, "float32")
                try:
                    rate_c, n_c = epochs(c, args.epochs)
                finally:
                    c.close()
                assert n == n_c, (n, n_c)
                rows.setdefault(f"(c) {kind}", []).append(rate_c)
    print(
        f"| {args.volumes} volumes {args.shape}, patches {args.patch} x {args.per_volume}, batch {args.batch}, "
        f"{args.threads} threads | samples/s (each round) | median |"
    )
    print("|---|---|---:|")
    for k, v in rows.items():
        print(f"| {k} | {', '.join(f'{x:,.0f}' for x in v)} | {statistics.median(v):,.0f} |")
    for kind in ("volumes", "patches"):
        pairs = [a / b for a, b in zip(rows[f"DataModule {kind}"], rows[f"(c) {kind}"], strict=True)]
        each = ", ".join(f"{r:.2f}" for r in pairs)
        print(f"| ratio DataModule / (c), {kind} | {each} | {statistics.median(pairs):.2f}x |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
