"""A loader process (``run.py --child ROWS --spec spec.json --result result.json``): runs rows, writes numbers.

Before each row's clock it imports the row's libraries and runs its pipeline once on a 4-slice series, so
one-time costs are not counted; it prints phase markers (:func:`~ld_bench.measure.phase`) so the parent's
memory sampler can attribute its samples. A row whose library is missing is reported as skipped, a row that
fails as an error, and the others still run.
"""

from __future__ import annotations

import gc
import json
import os
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import loaders, peers, variants
from .context import Ctx
from .measure import phase

#: every row, by its ``--only`` name
ROWS: dict[str, Callable[[Ctx], dict[str, Any]]] = {
    "naive": peers.naive,
    "monai_dataset": peers.monai_dataset,
    "monai_persistent": peers.monai_persistent,
    "monai_cache": peers.monai_cache,
    "torchio_volumes": peers.torchio_volumes,
    "torchio_queue": peers.torchio_queue,
    "npy_memmap": peers.npy_memmap,
    "ld_volumes": loaders.ld_volumes,
    "ld_patches": loaders.ld_patches,
    "ld_patches_masks": loaders.ld_patches_masks,
    "variants": variants.variants,
}


def warmup(ctx: Ctx, method: str) -> None:
    """Imports and lazy loading, outside timing: the row's pipeline once on a 4-slice series."""
    import torch  # noqa: F401

    tiny = ctx.spec["tiny"]
    if method == "naive" or method == "npy_memmap":
        peers.sitk_preprocess(tiny, ctx.target, ctx.window)
    elif method.startswith("monai"):
        peers.monai_transform(ctx)({"image": tiny})
    elif method.startswith("torchio"):
        import torchio as tio

        peers.torchio_transform(ctx)(tio.Subject(image=tio.ScalarImage(tiny)))
    else:
        from lightning_dicom import DicomDataModule  # noqa: F401
        from lightning_dicom.config import PreprocessingConfig
        from lightning_dicom.data.preprocess import preprocess
        from lightning_dicom.dicom.series import read_series

        preprocess(read_series(tiny), PreprocessingConfig(spacing=(ctx.target,) * 3, window=ctx.window))
        if method == "ld_patches_masks":
            from lightning_dicom.masks import association, pipeline, read  # noqa: F401


def child_main(spec_path: str, methods: list[str], result_path: str) -> int:
    """Run ``methods`` one after the other; the results so far are rewritten to ``result_path`` after each."""
    os.environ.setdefault("ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS", "1")
    warnings.filterwarnings("ignore")
    import logging

    import torch

    torch.set_num_threads(1)

    logging.disable(logging.WARNING)
    ctx = Ctx.from_spec(json.loads(Path(spec_path).read_text()))
    results = []
    for m in methods:
        phase(None)
        try:
            warmup(ctx, m)
            gc.collect()
            phase(m)
            t0 = time.perf_counter()
            res = ROWS[m](ctx)
            res["wall_s"] = time.perf_counter() - t0
        except ModuleNotFoundError as err:  # a peer library that is not installed (pip install -e ".[bench]")
            res = {"method": m, "skipped": f"{err.name} is not installed"}
        except Exception as err:  # one broken peer must not sink the whole benchmark
            import traceback

            traceback.print_exc()
            res = {"method": m, "error": f"{type(err).__name__}: {err}"}
        phase(None)
        results.append(res)
        Path(result_path).write_text(json.dumps(results))
    return 0
