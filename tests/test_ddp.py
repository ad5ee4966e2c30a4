"""DDP on CPU with two processes: identical splits, every training sample once per epoch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lightning_dicom.demo.synthetic import make_phantom, write_dataset, write_series


@pytest.mark.slow
def test_ddp_two_ranks_split_and_see_each_sample_once(tmp_path):
    root = tmp_path / "data"
    series = write_dataset(root, n_patients=11, shape_zyx=(8, 16, 16), spacing=(1.0, 1.0, 2.0), seed=7)
    bad = write_series(
        root / "bad", make_phantom((8, 16, 16), seed=1), spacing=(1.0, 1.0, 2.0), patient_id="SYNBAD", seed=1
    )
    bad.files[4].unlink()  # a gap: this series must be skipped on both ranks, without a deadlock
    with open(root / "labels.csv", "a") as fh:
        fh.write(f"{bad.series_uid},1\n")
    out = tmp_path / "out"
    out.mkdir()
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run(
        [
            sys.executable,
            str(Path(__file__).with_name("ddp_fit.py")),
            str(root),
            str(tmp_path / "work"),
            str(out),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=400,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    docs = {(d["rank"], d["epoch"]): d for d in (json.loads(p.read_text()) for p in out.glob("*.json"))}
    assert set(docs) == {(0, 0), (1, 0), (0, 1), (1, 1)}
    assert docs[0, 0]["split"] == docs[1, 0]["split"]
    train = set(docs[0, 0]["split"]["train"]) - {bad.series_uid}
    assert [f[0] for f in docs[0, 0]["failed"]] == [bad.series_uid] == [f[0] for f in docs[1, 0]["failed"]]
    for epoch in (0, 1):
        a, b = docs[0, epoch]["seen"], docs[1, epoch]["seen"]
        assert sorted(a + b) == sorted(train), "each training series exactly once across ranks"
        assert abs(len(a) - len(b)) <= 1
    assert len(series) == 11
