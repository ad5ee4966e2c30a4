"""benchmarks/gpu/run.py runs end to end on a CPU (``--device cpu --quick``), SimpleITK stubbed as on the
accelerator machine: every loader row delivers float16 images, and the pinned-ring reuse check passes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_gpu_benchmark_quick_on_cpu(tmp_path):
    out = tmp_path / "gpu.json"
    cmd = [sys.executable, str(ROOT / "benchmarks/gpu/run.py"), "--device", "cpu", "--quick", "--stub-sitk"]
    done = subprocess.run(
        [*cmd, "--seconds", "0.2", "--warm", "1", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["env"]["simpleitk_stub"] is True
    rows = {r["name"]: r for r in result["rows"]}
    loader_rows = [r for n, r in rows.items() if "(run " in n]
    assert len(loader_rows) >= 10  # 5-6 rows, each twice
    assert all(r["samples_per_s"] > 0 and r["dtype"] == "torch.float16" for r in loader_rows)
    check = rows["pinned ring reuse check (ring 7, 3 epochs)"]
    assert check["mismatches"] == 0 and check["batches"] == 12
    assert any(n.startswith("U-Net") and "batch resident" in n for n in rows)
