"""benchmarks/gpu/run.py runs end to end on a CPU (``--device cpu --quick``), SimpleITK stubbed as on the
accelerator machine: every loader row delivers float16 images, and the pinned-ring reuse check passes; a
row that fails is reported and the others still run, with the JSON written."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CMD = [sys.executable, str(ROOT / "benchmarks/gpu/run.py"), "--device", "cpu", "--quick", "--stub-sitk"]


@pytest.mark.slow
def test_gpu_benchmark_quick_on_cpu(tmp_path):
    out = tmp_path / "gpu.json"
    done = subprocess.run(
        [*CMD, "--seconds", "0.2", "--warm", "1", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["env"]["simpleitk_stub"] is True
    assert result["env"]["args"]["seconds"] == 0.2  # --quick leaves what the command line sets
    rows = {r["name"]: r for r in result["rows"]}
    assert not [r for r in rows.values() if "error" in r]
    loader_rows = [r for n, r in rows.items() if "(run " in n]
    assert len(loader_rows) >= 10  # 5-6 rows, each twice
    assert all(r["samples_per_s"] > 0 and r["dtype"] == "torch.float16" for r in loader_rows)
    check = rows["pinned ring reuse check (ring 7, 3 epochs)"]
    assert check["mismatches"] == 0 and check["batches"] == 12
    assert rows["feed_loader wiring check (resident train, pinned-ring val)"]["ok"] is True
    assert any(n.startswith("U-Net") and "batch resident" in n for n in rows)


@pytest.mark.slow
def test_a_failing_row_is_reported_and_the_others_still_run(tmp_path):
    """Volumes thinner than the patch: the ceiling's crops (no padding) fail; the rows that pad run on."""
    out = tmp_path / "gpu.json"
    done = subprocess.run(
        [
            *CMD,
            "--shape",
            "12",
            "40",
            "40",
            "--only",
            "ceiling,resident patches b8 (,reuse",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 1, done.stderr[-3000:]
    assert "Traceback" in done.stderr and "FAILED" in done.stdout
    rows = {r["name"]: r for r in json.loads(out.read_text())["rows"]}
    failed = sorted(n for n, r in rows.items() if "error" in r)
    assert failed == [f"ceiling: crops sliced from device-resident volumes b8 (run {i})" for i in (1, 2)]
    assert rows["lightning_dicom resident patches b8 (run 2)"]["samples_per_s"] > 0  # after a failure
    assert rows["pinned ring reuse check (ring 7, 3 epochs)"]["mismatches"] == 0
    assert "FAILED: ValueError" in done.stdout  # the table notes it
