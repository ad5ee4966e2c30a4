"""Process and thread setup for the processes that read and preprocess series.

Cache-building processes and DataLoader workers each run one thread per library (SimpleITK/ITK,
OpenMP/BLAS, torch), so that N workers on N cores do not start N x N threads.
"""

from __future__ import annotations

import os

import SimpleITK as sitk

__all__ = ["limit_threads", "worker_init_fn"]


def limit_threads(n: int = 1) -> None:
    """Limit SimpleITK/ITK, OpenMP/BLAS and torch to ``n`` threads in this process.

    Sets ``OMP_NUM_THREADS``, ``OPENBLAS_NUM_THREADS``, ``MKL_NUM_THREADS`` and
    ``ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS`` for libraries loaded later, and the live settings of
    SimpleITK and torch.
    """
    import torch

    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(n)
    for var in (
        "OMP_NUM_THREADS",
        "OPENBLAS_NUM_THREADS",
        "MKL_NUM_THREADS",
        "ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS",
    ):
        os.environ[var] = str(n)
    torch.set_num_threads(n)


def worker_init_fn(worker_id: int, threads: int = 1) -> None:
    """DataLoader ``worker_init_fn``: one thread per library per worker, so workers don't oversubscribe."""
    limit_threads(threads)
