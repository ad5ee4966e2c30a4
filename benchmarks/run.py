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

This file is the entry point only; the benchmark is the ``ld_bench`` package beside it (its modules are
listed in ``ld_bench/__init__.py`` and ``benchmarks/README.md``).
"""

from __future__ import annotations

from ld_bench.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
