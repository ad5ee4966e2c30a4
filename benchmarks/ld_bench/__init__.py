"""Loader benchmark package behind ``benchmarks/run.py`` (see ``benchmarks/README.md``).

Modules, in the order a run uses them:

* :mod:`~ld_bench.cli`: the flags and the dispatch (parent, or ``--child`` loader process);
* :mod:`~ld_bench.orchestrate`: the parent: data, one loader process per group of rows, the report files;
* :mod:`~ld_bench.datasets`: the synthetic DICOM series and the NIfTI label masks;
* :mod:`~ld_bench.child`: a loader process: warm-up, then each row, results to JSON;
* :mod:`~ld_bench.context`: :class:`~ld_bench.context.Ctx`, the settings every row reads;
* :mod:`~ld_bench.peers`: naive, MONAI, TorchIO and hand-written memmap rows;
* :mod:`~ld_bench.loaders`: lightning_dicom's rows (volumes, patches, patches + masks);
* :mod:`~ld_bench.variants` and :mod:`~ld_bench.handoff`: the DataLoader hand-off variants;
* :mod:`~ld_bench.measure`: epoch timing, worker memory, the parent's RSS/PSS sampler;
* :mod:`~ld_bench.targets` and :mod:`~ld_bench.report`: the issues' targets and the Markdown report;
* :mod:`~ld_bench.common`: row names and labels, paths, formatting helpers.

The benchmark's optional dependencies (monai, torchio, itk, psutil: the ``bench`` extra) and torch are
imported inside the functions that use them.
"""
