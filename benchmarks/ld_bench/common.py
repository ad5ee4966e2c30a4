"""Names, paths and small helpers shared by the parent (orchestration, report) and the loader processes."""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

#: ``benchmarks/``: the entry point ``run.py`` (re-run with ``--child`` for every loader process) and ``results/``
BENCH = Path(__file__).resolve().parent.parent
#: the repository root (the loader processes' working directory)
REPO = BENCH.parent
#: the entry point the loader processes run
ENTRY = BENCH / "run.py"

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
#: a loader process prints this, then a phase name (``-``: none), so the parent attributes memory samples
PHASE_MARK = "@@phase "


def resampled_shape(
    shape_zyx: Sequence[int],
    spacing_xyz: Sequence[float],
    target: float,
    rounding: Callable[[float], float] = round,
) -> list[int]:
    """z-y-x voxels after resampling (lightning_dicom rounds; TorchIO's grid can be one voxel smaller)."""
    return [max(1, int(rounding(n * s / target))) for n, s in zip(shape_zyx, spacing_xyz[::-1], strict=True)]


def dir_bytes(path: str | Path) -> int:
    """Bytes of every file under ``path`` (0 when it does not exist)."""
    path = Path(path)
    if not path.exists():
        return 0
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def median_rate(n: int, seconds: Sequence[float]) -> float | None:
    """Median of ``n / s`` over the epochs after the first (None with fewer than two)."""
    warm = [n / s for s in seconds[1:] if s > 0]
    return statistics.median(warm) if warm else None


def mb(n: float | None) -> str:
    return "n/a" if n is None else f"{n / 2**20:,.0f} MB" if n >= 10 * 2**20 else f"{n / 2**20:,.1f} MB"


def fmt(x: float | None, digits: int = 1) -> str:
    if x is None:
        return "n/a"
    return f"{x:,.{digits}f}" if abs(x) < 1000 else f"{x:,.0f}"


def pct(x: float | None) -> str:
    return "n/a" if x is None else f"{x * 100:+.1f}%"


def ratio(a: Any, b: Any) -> float | None:
    return a / b if a is not None and b else None
