"""The command line of ``benchmarks/run.py``: its flags, their ``--quick`` defaults, and the dispatch."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from .common import BENCH, METHODS

#: the first line of ``--help``
DESCRIPTION = "Loader benchmark: lightning_dicom against a naive loader, MONAI, TorchIO and a hand-written memmap loader."
#: flags whose default depends on ``--quick``: (full run, quick run)
SIZES = {
    "series": (16, 4),
    "shape": ([120, 512, 512], [24, 96, 96]),
    "epochs": (3, 2),
    "rss_epochs": (5, 3),
    "variant_per_volume": (16, 8),
    "variant_passes": (3, 1),
    "variant_volumes": (64, 16),
}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
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
    _variant_flags(p)
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
    # a loader process: run.py --child ROWS --spec spec.json --result result.json
    p.add_argument("--child", type=str, default=None, help=argparse.SUPPRESS)
    p.add_argument("--spec", type=str, default=None, help=argparse.SUPPRESS)
    p.add_argument("--result", type=str, default=None, help=argparse.SUPPRESS)
    return p


def _variant_flags(p: argparse.ArgumentParser) -> None:
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


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The flags, with the sizes, ``--processes`` and ``--out`` that depend on ``--quick`` filled in."""
    args = _parser().parse_args(argv)
    for attr, (full, quick) in SIZES.items():
        if getattr(args, attr) is None:
            setattr(args, attr, quick if args.quick else full)
    if args.processes is None:
        args.processes = "one" if args.quick else "library"
    if args.out is None:
        args.out = BENCH / "results" / ("quick.md" if args.quick else "latest.md")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """``run.py``: the benchmark (parent), or with ``--child`` one loader process."""
    args = parse_args(argv)
    if args.child:
        from .child import child_main

        return child_main(args.spec, args.child.split(","), args.result)
    from .orchestrate import run

    return run(args, argv)
