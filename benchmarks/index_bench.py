"""Index benchmark: a generated tree of 20,000 DICOM files, cold scan and unchanged re-scan (files/s).

Standalone, one command (from the repository root)::

    python benchmarks/index_bench.py [--files 20000] [--data /tmp/ld_index_bench] [--workers N]

The tree (``demo.synthetic.write_dataset``: CT series of 16x16 slices, 40 slices each, hashed folder
names) is written once into ``--data`` and reused by later runs (delete it to regenerate). Each run
indexes it into a fresh SQLite file (cold: every header read), then scans again with nothing changed
(re-scan: no header read), and times ``DicomIndex.series()`` (grouping the rows into volumes). The
code measured is whatever ``lightning_dicom`` imports, so the same command measures another checkout
with ``PYTHONPATH=<checkout>``. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path


def _tree(data: Path, n_files: int, slices: int) -> int:
    from lightning_dicom.demo.synthetic import write_dataset

    stamp = data / f".complete_{n_files}_{slices}"
    if not stamp.exists():
        shutil.rmtree(data, ignore_errors=True)
        write_dataset(data, n_patients=max(1, n_files // slices), shape_zyx=(slices, 16, 16), seed=3)
        stamp.write_text("ok")
    return sum(1 for _, _, fs in os.walk(data) for f in fs if f.endswith(".dcm"))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--files", type=int, default=20000)
    p.add_argument("--slices", type=int, default=40, help="slices per series")
    p.add_argument("--data", type=Path, default=Path(tempfile.gettempdir()) / "ld_index_bench")
    p.add_argument("--workers", type=int, default=None, help="header-reading processes (default: CPUs)")
    a = p.parse_args(argv)
    import lightning_dicom
    from lightning_dicom.dicom.index import DicomIndex

    t0 = time.perf_counter()
    n = _tree(a.data, a.files, a.slices)
    gen = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "index.sqlite"
        with DicomIndex([a.data], db) as idx:
            cold = idx.scan(workers=a.workers)
            t1 = time.perf_counter()
            series = idx.series()
            grouping = time.perf_counter() - t1
        with DicomIndex([a.data], db) as idx:
            again = idx.scan(workers=a.workers)
    print(
        json.dumps(
            {
                "code": str(Path(lightning_dicom.__file__).parent.parent),
                "files": n,
                "volumes": len(series),
                "generate_s": round(gen, 2),
                "cold_scan_s": round(cold.seconds, 3),
                "cold_files_per_s": round(n / cold.seconds),
                "rescan_s": round(again.seconds, 3),
                "rescan_files_per_s": round(n / again.seconds),
                "series_s": round(grouping, 3),
                "cpus": os.cpu_count(),
                "load_avg_1min": round(os.getloadavg()[0], 2),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
