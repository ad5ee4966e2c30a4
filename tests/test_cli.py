"""The ``lightning-dicom`` console script, run as users run it (subprocesses, real files)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def run(*args: str, cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run(
        [sys.executable, "-m", "lightning_dicom.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


def test_index_lists_series_and_skipped_files_without_phi(synthetic_dataset, tmp_path):
    root, series = synthetic_dataset
    out = run("index", str(root), "--work-dir", str(tmp_path), "--quiet", cwd=tmp_path).stdout
    for s in series:
        assert s.series_uid in out
        assert s.patient_id not in out and s.patient_name.split("^")[-1] not in out
    assert f"{len(series)} volumes; 1 files skipped" in out
    assert "labels.csv" in out  # skipped, with its reason
    report = json.loads(run("index", str(root), "--work-dir", str(tmp_path), "--json", cwd=tmp_path).stdout)
    assert report["scan"]["headers_read"] == 0  # unchanged tree: nothing re-read
    assert len(report["series"]) == len(series)


def test_index_of_pydicom_dicomdir_tree(pydicom_files, tmp_path):
    report = json.loads(
        run(
            "index", str(pydicom_files / "dicomdirtests"), "--work-dir", str(tmp_path), "--json", cwd=tmp_path
        ).stdout
    )
    reasons = " ".join(report["skipped"])
    assert "DICOMDIR" in reasons
    ct5 = [s for s in report["series"] if s["n_slices"] == 5 and s["modality"] == "CT"]
    assert len(ct5) == 1


def test_schema_is_json_schema(tmp_path):
    schema = json.loads(run("schema", cwd=tmp_path).stdout)
    props = schema["properties"]
    assert {"root", "preprocessing", "split", "loader", "cache"} <= set(props)
    prep = schema["$defs"]["PreprocessingConfig"]["properties"]
    assert "mm" in prep["spacing"]["description"]


def test_bad_override_names_the_key(synthetic_dataset, tmp_path):
    root, _ = synthetic_dataset
    proc = run(
        "cache",
        "--config",
        str(REPO / "configs" / "demo.yaml"),
        "--data.root",
        str(root),
        "--data.preprocessing.window",
        "[300,-200]",
        cwd=tmp_path,
        check=False,
    )
    assert proc.returncode != 0
    assert "window" in proc.stderr


@pytest.mark.slow
def test_fit_from_yaml_with_command_line_overrides(training_dataset, tmp_path):
    root, _ = training_dataset
    proc = run(
        "fit",
        "--config",
        str(REPO / "configs" / "demo.yaml"),
        "--data.root",
        str(root),
        "--data.labels",
        str(root / "labels.csv"),
        "--data.work_dir",
        str(tmp_path / "work"),
        "--data.preprocessing.spacing",
        "[2.0,2.0,2.0]",
        "--data.preprocessing.size",
        "[8,16,16]",
        "--data.loader.num_workers",
        "0",
        "--trainer.max_epochs",
        "1",
        "--trainer.enable_progress_bar",
        "false",
        "--trainer.default_root_dir",
        str(tmp_path),
        cwd=tmp_path,
    )
    assert "max_epochs=1" in proc.stderr + proc.stdout
    split = json.loads((tmp_path / "work" / "split.json").read_text())
    assert split["counts"]["train"] + split["counts"]["val"] == 12
    cached = list((tmp_path / "work" / "cache").rglob("*.npy"))
    assert len(cached) == 12


def test_cache_command_builds_and_reports(training_dataset, tmp_path):
    root, _ = training_dataset
    out = run(
        "cache",
        "--config",
        str(REPO / "configs" / "demo.yaml"),
        "--data.root",
        str(root),
        "--data.labels",
        str(root / "labels.csv"),
        "--data.work_dir",
        str(tmp_path / "w"),
        "--data.preprocessing.size",
        "[8,16,16]",
        "--data.progress",
        "false",
        cwd=tmp_path,
    ).stdout
    assert "12 series ready, 0 failed" in out
    assert len(list((tmp_path / "w" / "cache").rglob("*.json"))) == 12


def test_index_flags_stacks_the_reader_refuses_and_a_missing_root(tmp_path):
    """``index`` lists irregular stacks (here a missing slice) with the setting that reads them, and a
    root that does not exist is one error line with exit status 2."""
    import subprocess
    import sys

    from lightning_dicom.demo.synthetic import write_dataset

    series = write_dataset(
        tmp_path / "d", n_patients=2, shape_zyx=(8, 12, 12), spacing=(1.0, 1.0, 2.0), seed=4
    )
    series[0].files[3].unlink()
    cmd = [sys.executable, "-m", "lightning_dicom.cli", "index", "--quiet", "--work-dir", str(tmp_path / "w")]
    out = subprocess.run([*cmd, str(tmp_path / "d")], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    line = next(ln for ln in out.stdout.splitlines() if ln.strip().startswith("irregular:"))
    assert series[0].series_uid in line and "1 missing slice" in line and "irregular_stacks: resample" in line
    assert sum(ln.strip().startswith("irregular:") for ln in out.stdout.splitlines()) == 1
    missing = subprocess.run([*cmd, str(tmp_path / "nope")], capture_output=True, text=True, timeout=120)
    assert missing.returncode == 2
    assert (
        missing.stderr.strip()
        .splitlines()[-1]
        .endswith("nope does not exist or is not a folder (expected a folder of DICOM files)")
    )


def test_index_prints_an_irregular_stack_reason_whole(tmp_path):
    """A gantry-tilted stack's reason (about 230 characters) is printed whole: it was cut at 200, in
    the middle of the tolerance's number ("tolerated up to 0.")."""
    import re

    import numpy as np

    from lightning_dicom.demo.synthetic_stacks import write_irregular_series

    write_irregular_series(tmp_path / "d", np.zeros((6, 12, 12)), tilt_deg=20.0, seed=1)
    out = run("index", str(tmp_path / "d"), "--quiet", "--work-dir", str(tmp_path / "w"), cwd=tmp_path).stdout
    line = next(ln for ln in out.splitlines() if ln.strip().startswith("irregular:"))
    assert len(line) > 200 + len("  irregular: ")
    assert re.search(r"rounding noise is tolerated up to \d+\.\d\d mm\) \(data\.preprocessing", line), line
