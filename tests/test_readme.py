"""The README's command blocks run as written, on a CPU, on a small generated dataset (issue 15).

Every ```bash block of README.md runs with bash (``set -euo pipefail``), in order, in one fresh working
directory holding a copy of ``configs/``, except blocks preceded by ``<!-- readme-test: skip (...) -->``
(GPU/cluster commands, the test suite itself). Each block must exit 0. The rules, stated once:

* data: ``/data/ct`` -> a generated CT dataset (8 patients, 16x16x16 voxels, labels.csv at its root);
  ``/data/labels.csv`` -> that labels.csv;
* epochs: ``lightning-dicom fit|validate|test|predict`` get ``--trainer.max_epochs 1`` appended;
  ``lightning-dicom demo`` gets ``--patients 4 --epochs 1`` unless it names ``--patients``;
  ``make demo`` is ``lightning-dicom demo --patients 8 --epochs 1`` (what the Makefile runs once the venv is
  built); ``make test`` is not run (it is this suite); ``pip install -e .`` is not run (installed);
* CPU time: with configs/ct_classification.yaml (128^3 voxels for real CT), ``--data.preprocessing.size
  [16,16,16]`` is appended;
* ``lightning-dicom`` is ``python -m lightning_dicom.cli`` of this interpreter, and ``python`` is this
  interpreter (a bash function and PATH).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from lightning_dicom.demo.synthetic import write_dataset

REPO = Path(__file__).resolve().parents[1]

PRELUDE = r"""
set -euo pipefail
lightning-dicom() {
  local extra=()
  case "${1:-}" in
    fit|validate|test|predict) extra+=(--trainer.max_epochs 1) ;;
    demo) if [[ " $* " != *" --patients "* ]]; then extra+=(--patients 4 --epochs 1); fi ;;
  esac
  if [[ " $* " == *" configs/ct_classification.yaml "* ]]; then extra+=(--data.preprocessing.size "[16,16,16]"); fi
  python -m lightning_dicom.cli "$@" "${extra[@]}"
}
"""


def readme_blocks(text: str) -> list[str]:
    """The README's bash blocks, skipped ones left out."""
    out = []
    for m in re.finditer(r"(?:^(<!--[^\n]*-->)\n)?^```bash\n(.*?)^```", text, re.S | re.M):
        if not (m.group(1) and "readme-test: skip" in m.group(1)):
            out.append(m.group(2))
    return out


def rewrite(block: str, data: Path) -> str:
    """Apply the module docstring's rules to a block's text."""
    paths = {"/data/ct": str(data), "/data/labels.csv": str(data / "labels.csv")}
    block = re.sub(r"/data/(?:ct|labels[.]csv)", lambda m: paths[m.group(0)], block)
    block = re.sub(r"^make demo\b", "lightning-dicom demo --patients 8 --epochs 1", block, flags=re.M)
    return re.sub(r"^(?:make test|pip install -e [.])(?:\s.*)?$", ":", block, flags=re.M)


def test_readme_blocks_are_found() -> None:
    blocks = readme_blocks((REPO / "README.md").read_text())
    text = "\n".join(blocks)
    for sub in ("index", "cache", "fit", "validate", "predict", "schema", "preview", "demo", "plan"):
        assert f"lightning-dicom {sub}" in text, sub
    assert "srun" not in text and "pytest" not in text  # the cluster and test-suite blocks are marked
    assert (
        rewrite("make test  # all\nmake demo\n", Path("/d"))
        == ":\nlightning-dicom demo --patients 8 --epochs 1\n"
    )


@pytest.mark.slow
def test_readme_commands_run_as_written(tmp_path: Path) -> None:
    data = tmp_path / "data" / "ct"
    write_dataset(data, n_patients=8, shape_zyx=(16, 16, 16), spacing=(1.0, 1.0, 2.0), seed=7)
    cwd = tmp_path / "user"
    shutil.copytree(REPO / "configs", cwd / "configs")
    env = {**os.environ, "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]])}
    for block in readme_blocks((REPO / "README.md").read_text()):
        proc = subprocess.run(
            ["bash", "-c", PRELUDE + rewrite(block, data)],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
        )
        assert proc.returncode == 0, f"{block}\n{proc.stderr[-4000:]}"
    assert list(cwd.glob("lightning_logs/version_*/predictions/predictions-*.csv"))
    assert list((cwd / "demo_data" / "seg_predictions").glob("*.nii.gz"))
    assert '"progress"' in (cwd / "data-config.schema.json").read_text()
    assert (cwd / "plan" / "plan_CT.yaml").exists()
    assert len(list(cwd.glob("runs/crossval/fold*/metrics.csv"))) == 5
