"""Subjects benchmark (issue 14): cost of building a 2-input subject vs a 1-input series, and warm
throughput (bytes/s) of 2-channel entries vs 1-channel ones, in one run.

    python benchmarks/subjects_bench.py [--patients 8] [--shape 48 128 128]

Data: ``lightning_dicom.demo.synthetic_subjects`` studies (T1 axial, T2 oblique on another grid).
Preprocessing: spacing (1.5, 1.5, 2.0) mm, z-score (the typical config: channels go straight onto the
output grid). Build: the cache built from scratch (1 worker, so the ratio is per entry) for (a) the T1 series alone
and (b) T1+T2 subjects; ratio = time(b) / time(a), target <= 2.2. Warm: every cached entry read
through the DataModule's training loader for 3 epochs; bytes/s of (b) over (a), target ~1.0.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path


def _dm(root: Path, work: Path, subjects: bool):
    from lightning_dicom import DicomDataModule

    kwargs = {"subjects": {"inputs": {"t1": {"description": "(?i)t1"}, "t2": {"description": "(?i)t2"}}}} if subjects \
        else {"selection": {"modalities": ["MR"], "description": "(?i)t1"}}  # fmt: skip
    return DicomDataModule(
        root=root, work_dir=work, progress=False, preprocessing={"spacing": [1.5, 1.5, 2.0], "normalize": "zscore"},
        split={"val": 0.0}, loader={"batch_size": 1}, cache={"workers": 1}, **kwargs,
    )  # fmt: skip


def _warm(dm, epochs: int = 3) -> float:
    n_bytes, t0 = 0, time.perf_counter()
    for _ in range(epochs):
        for batch in dm.train_dataloader():
            n_bytes += batch["image"].numel() * batch["image"].element_size()
    return n_bytes / (time.perf_counter() - t0)


def main() -> None:
    from lightning_dicom.demo.synthetic_subjects import write_subject_dataset

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--patients", type=int, default=8)
    parser.add_argument("--shape", type=int, nargs=3, default=(48, 128, 128), help="T1 size z-y-x")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="subjects_bench_"))
    try:
        root = tmp / "data"
        write_subject_dataset(root, n_patients=args.patients, flair_every=0, t1_shape=args.shape)
        rows = {}
        for name, subjects in (("1 input (T1 series)", False), ("2 inputs (T1 + T2 subject)", True)):
            dm = _dm(root, tmp / name.split()[0], subjects)
            with dm.open_index() as idx:
                idx.scan(workers=1)
            t0 = time.perf_counter()
            dm.prepare_data()
            build = (time.perf_counter() - t0) / args.patients
            dm.setup("fit")
            rows[name] = (build, _warm(dm))
        (b1, w1), (b2, w2) = rows.values()
        print(f"| {args.patients} studies, T1 {tuple(args.shape)} | build s/entry | warm MB/s |")
        print("|---|---:|---:|")
        for name, (b, w) in rows.items():
            print(f"| {name} | {b:.3f} | {w / 1e6:.0f} |")
        print(f"| ratio 2-input / 1-input | {b2 / b1:.2f}x (target <= 2.2) | {w2 / w1:.2f}x (target ~1.0) |")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
