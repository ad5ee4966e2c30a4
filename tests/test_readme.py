"""The README's command blocks run as written, on a CPU, on a small generated dataset (issue 15).

Every ```bash block of README.md runs, in order, in one fresh working directory holding a copy of
``configs/``, except blocks preceded by ``<!-- readme-test: skip (...) -->`` (GPU/cluster commands, the
test suite itself). Each command must exit 0. Rules, applied to the commands and nothing else:

* data: ``/data/ct`` -> a generated CT dataset (8 patients, 16x16x16 voxels, labels.csv at its root);
  ``/data/labels.csv`` -> that labels.csv;
* epochs: fit/validate/test/predict get ``--trainer.max_epochs 1``; ``lightning-dicom demo`` gets
  ``--patients 4 --epochs 1``; ``make demo`` runs ``lightning-dicom demo --patients 8 --epochs 1`` (what
  the Makefile runs, after building the venv); ``make test`` is not run (it is this suite);
* configs/ct_classification.yaml's 128^3 volumes become ``--data.preprocessing.size [16,16,16]`` (CPU time);
* ``pip install -e .`` is skipped (the package is installed), ``lightning-dicom`` is ``python -m lightning_dicom.cli``.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from lightning_dicom.demo.synthetic import write_dataset

REPO = Path(__file__).resolve().parents[1]
LIGHTNING_SUBCOMMANDS = {"fit", "validate", "test", "predict"}


def readme_commands(text: str) -> list[list[str]]:
    """The README's bash commands (continuations joined, comments dropped), skipped blocks left out."""
    out = []
    for m in re.finditer(r"(?:^(<!--[^\n]*-->)\n)?^```bash\n(.*?)^```", text, re.S | re.M):
        if m.group(1) and "readme-test: skip" in m.group(1):
            continue
        for line in m.group(2).replace("\\\n", " ").splitlines():
            tokens = shlex.split(line, comments=True)
            if tokens:
                out.append(tokens)
    return out


def rewrite(cmd: list[str], data: Path) -> list[str] | None:
    """Apply the module docstring's rules; None = not run."""
    if cmd[:2] == ["make", "test"] or cmd[:3] == ["pip", "install", "-e"]:
        return None
    if cmd[:2] == ["make", "demo"]:
        cmd = ["lightning-dicom", "demo", "--patients", "8", "--epochs", "1"]
    assert cmd[0] == "lightning-dicom", f"the README runs something this test has no rule for: {cmd}"
    paths = {"/data/ct": str(data), "/data/labels.csv": str(data / "labels.csv")}
    cmd = [re.sub(r"/data/(?:ct|labels[.]csv)", lambda m: paths[m.group(0)], a) for a in cmd]
    if cmd[1] in LIGHTNING_SUBCOMMANDS:
        cmd += ["--trainer.max_epochs", "1"]
    if cmd[1] == "demo":
        cmd += [] if "--patients" in cmd else ["--patients", "4", "--epochs", "1"]
    if "configs/ct_classification.yaml" in cmd:
        cmd += ["--data.preprocessing.size", "[16,16,16]"]
    return [sys.executable, "-m", "lightning_dicom.cli", *cmd[1:]]


def test_readme_blocks_are_found() -> None:
    cmds = readme_commands((REPO / "README.md").read_text())
    subcommands = [c[1] for c in cmds if c[0] == "lightning-dicom"]
    assert {"index", "cache", "fit", "validate", "predict", "schema", "preview", "demo"} <= set(subcommands)
    assert not any(c[0] == "srun" for c in cmds)  # the cluster block is marked and skipped


@pytest.mark.slow
def test_readme_commands_run_as_written(tmp_path: Path) -> None:
    data = tmp_path / "data" / "ct"
    write_dataset(data, n_patients=8, shape_zyx=(16, 16, 16), spacing=(1.0, 1.0, 2.0), seed=7)
    cwd = tmp_path / "user"
    shutil.copytree(REPO / "configs", cwd / "configs")
    ran = []
    for cmd in readme_commands((REPO / "README.md").read_text()):
        argv = rewrite(cmd, data)
        if argv is None:
            continue
        stdout = None
        if ">" in argv:
            argv, target = argv[: argv.index(">")], argv[argv.index(">") + 1]
            stdout = cwd / target
        proc = subprocess.run(
            argv, cwd=cwd, capture_output=True, text=True, timeout=600, env=dict(os.environ)
        )
        assert proc.returncode == 0, f"{shlex.join(cmd)}\n{proc.stderr[-4000:]}"
        if stdout is not None:
            stdout.write_text(proc.stdout)
        ran.append(cmd[1])
    assert {"index", "cache", "fit", "validate", "predict", "schema", "preview"} <= set(ran)
    assert list(cwd.glob("lightning_logs/version_*/predictions/predictions-*.csv"))
    assert list((cwd / "demo_data" / "seg_predictions").glob("*.nii.gz"))
    assert '"progress"' in (cwd / "data-config.schema.json").read_text()
