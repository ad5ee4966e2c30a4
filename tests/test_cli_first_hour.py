"""The first hour of a new user (issue 15): every mistake gets one line, the README's workflow works
in new processes (fit, then validate/predict with ``--ckpt_path best|last``), nothing is overwritten.

The CLI runs as users run it: ``python -m lightning_dicom.cli`` in a subprocess, in its own working
directory, on a small generated dataset (8 patients, 8x16x16 voxels), with a real Trainer on the CPU.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lightning_dicom.cli import COMMANDS
from lightning_dicom.demo.synthetic import write_dataset

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "configs" / "demo.yaml"
SMALL = [
    "--data.preprocessing.size",
    "[8,16,16]",
    "--data.preprocessing.spacing",
    "[2,2,2]",
    "--data.work_dir",
    "null",
]


def cli(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "lightning_dicom.cli", *args],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("first_hour") / "ct"
    write_dataset(root, n_patients=8, shape_zyx=(8, 16, 16), spacing=(1.0, 1.0, 2.0), seed=3)
    return root


def one_line_error(proc: subprocess.CompletedProcess) -> str:
    """The error a user sees: exit status 2, one ``lightning-dicom: error:`` message, no traceback."""
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if "lightning-dicom: error:" in ln]
    assert len(lines) == 1, proc.stderr[-3000:]
    return proc.stderr[proc.stderr.index("lightning-dicom: error:") :].strip()


def test_help_lists_every_command_one_line_each(tmp_path: Path) -> None:
    proc = cli("--help", cwd=tmp_path)
    assert proc.returncode == 0
    for name in ("fit", "validate", "test", "predict", "index", "cache", "schema", "demo", "plan", "preview"):
        assert sum(line.split()[:1] == [name] for line in proc.stdout.splitlines()) == 1, name
    assert set(COMMANDS) >= {
        "fit",
        "validate",
        "test",
        "predict",
        "index",
        "cache",
        "schema",
        "demo",
        "preview",
    }
    assert "--debug" in proc.stdout and "LIGHTNING_DICOM_DEBUG" in proc.stdout
    assert cli("flt", cwd=tmp_path).returncode == 2  # a typo of a command: usage, non-zero


def test_mistakes_print_one_line(data: Path, tmp_path: Path) -> None:
    base = ["fit", "--config", str(DEMO), "--data.root", str(data), *SMALL]
    missing = one_line_error(cli(*base, "--data.root", str(tmp_path / "nope"), cwd=tmp_path))
    assert (
        missing
        == f"lightning-dicom: error: data.root {tmp_path / 'nope'} does not exist (expected a folder of DICOM files)"
    )

    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "a.txt").write_text("not DICOM")
    (tmp_path / "notes" / "b.txt").write_text("not DICOM either")
    empty = one_line_error(cli(*base, "--data.root", str(tmp_path / "notes"), cwd=tmp_path))
    assert f"data.root {tmp_path / 'notes'}: 2 files, 0 usable series (2 x not a DICOM file" in empty

    window = one_line_error(cli(*base, "--data.preprocessing.window", "[300,-200]", cwd=tmp_path))
    assert "data.preprocessing.window: window must be [low, high] with low < high" in window

    typo = one_line_error(cli(*base, "--data.preprocesing.window", "[-200,300]", cwd=tmp_path))
    assert "data.preprocesing.window" in typo and "lightning-dicom fit --help" in typo

    (tmp_path / "bad.csv").write_text("id,label\n1.2.3,1\n")
    labels = one_line_error(cli(*base, "--data.labels", str(tmp_path / "bad.csv"), cwd=tmp_path))
    assert str(tmp_path / "bad.csv") in labels and "key column" in labels and "SeriesInstanceUID" in labels

    debug = cli(
        *base, "--data.root", str(tmp_path / "nope"), cwd=tmp_path, env={"LIGHTNING_DICOM_DEBUG": "1"}
    )
    assert debug.returncode != 0 and "Traceback" in debug.stderr and "ConfigError" in debug.stderr


@pytest.mark.slow
def test_fit_validate_predict_in_new_processes(data: Path, tmp_path: Path) -> None:
    """The README's sequence on a CPU: fit (pin_memory asked for), then validate with ``best`` and
    predict with ``last`` in new processes; the user's ./config.yaml survives."""
    (tmp_path / "config.yaml").write_text("mine: true\n")
    common = ["--config", str(DEMO), "--data.root", str(data), *SMALL]
    fit = cli(
        "fit",
        *common,
        "--data.labels",
        str(data / "labels.csv"),
        "--trainer.max_epochs",
        "2",
        "--data.loader.pin_memory",
        "true",
        cwd=tmp_path,
    )
    assert fit.returncode == 0, fit.stderr[-3000:]
    assert "args parameter is intended" not in fit.stderr  # no warning of the project's own making
    assert (tmp_path / "config.yaml").read_text() == "mine: true\n"
    saved = tmp_path / "lightning_logs" / "version_0" / "config.yaml"
    assert "max_epochs: 2" in saved.read_text()
    ckpts = sorted(p.name for p in (saved.parent / "checkpoints").glob("*.ckpt"))
    assert "last.ckpt" in ckpts and len(ckpts) == 2  # the best epoch and the last one
    (where,) = [ln for ln in fit.stderr.splitlines() if "checkpoints in" in ln]  # fit says where they went
    best = next(n for n in ckpts if n != "last.ckpt")
    assert (
        str(saved.parent / "checkpoints") in where and f"best: {best}" in where and "last: last.ckpt" in where
    )

    no_labels = one_line_error(
        cli("validate", *common, "--data.labels", "null", "--ckpt_path", "best", cwd=tmp_path)
    )
    assert "needs labels" in no_labels and "--data.labels" in no_labels

    val = cli(
        "validate", *common, "--data.labels", str(data / "labels.csv"), "--ckpt_path", "best", cwd=tmp_path
    )
    assert val.returncode == 0, val.stderr[-3000:]
    assert "val_acc" in val.stdout
    restored = [ln for ln in val.stderr.splitlines() if "Restoring states from the checkpoint path at" in ln]
    assert restored and "epoch=" in restored[0] and "version_0/checkpoints" in restored[0]

    pred = cli(
        "predict", *common, "--data.labels", str(data / "labels.csv"), "--ckpt_path", "last", cwd=tmp_path
    )
    assert pred.returncode == 0, pred.stderr[-3000:]
    (csv_path,) = tmp_path.glob("lightning_logs/version_*/predictions/predictions-*.csv")
    rows = list(csv.DictReader(csv_path.open()))
    assert len(rows) == 8
    assert list(rows[0]) == ["series_uid", "series_id", "predicted_class", "prob_0", "prob_1", "label"]
    probs = np.array([[float(r["prob_0"]), float(r["prob_1"])] for r in rows])
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-5)
    assert [r["predicted_class"] for r in rows] == [str(int(p.argmax())) for p in probs]
    truth = dict(csv.reader((data / "labels.csv").open()))
    assert all(r["label"] == truth[r["series_uid"]] for r in rows)

    again = one_line_error(
        cli(
            "validate",
            *common,
            "--ckpt_path",
            "best",
            "--trainer.default_root_dir",
            "elsewhere",
            "--trainer.logger",
            "false",
            cwd=tmp_path,
        )
    )
    assert "no checkpoint found in" in again and "--ckpt_path path/to/file.ckpt" in again


def test_same_roots_same_index_from_any_folder(data: Path, tmp_path: Path, cache_home: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = json.loads(cli("index", str(data), "--json", cwd=tmp_path / "a").stdout)
    rel = os.path.relpath(data, tmp_path / "b")
    second = json.loads(cli("index", rel, "--json", cwd=tmp_path / "b").stdout)
    assert first["scan"]["index"] == second["scan"]["index"]
    assert Path(first["scan"]["index"]).parent.parent == cache_home / "lightning_dicom"
    assert second["scan"]["headers_read"] == 0  # reused, not rebuilt
    assert not any((tmp_path / d / ".lightning_dicom").exists() for d in "ab")


def test_schema_is_generated_from_the_models(tmp_path: Path) -> None:
    import inspect

    from lightning_dicom.config import DataConfig
    from lightning_dicom.datamodule import DicomDataModule

    schema = json.loads(cli("schema", cwd=tmp_path).stdout)
    assert schema == json.loads(json.dumps(DataConfig.model_json_schema()))
    params = set(inspect.signature(DicomDataModule.__init__).parameters) - {"self"}
    assert set(schema["properties"]) == params == set(DataConfig.model_fields)
    assert "progress" in schema["properties"]


def test_a_gpu_or_cuda_cache_on_a_cpu_machine_is_one_line_before_any_work(data: Path, tmp_path: Path) -> None:
    """``--trainer.accelerator gpu`` without a GPU is Lightning's MisconfigurationException: one line
    (the traceback under --debug); ``cache.device: cuda`` on a CPU trainer fails in prepare_data, before
    indexing and caching, and leaves no ``lightning_logs/version_N`` behind."""
    import torch

    if torch.cuda.is_available():
        pytest.skip("needs a machine without CUDA")
    base = ["fit", "--config", str(DEMO), "--data.root", str(data), *SMALL, "--trainer.max_epochs", "1"]
    gpu = one_line_error(cli(*base, "--trainer.accelerator", "gpu", cwd=tmp_path))
    assert gpu.startswith("lightning-dicom: error: trainer: ") and "--trainer.accelerator auto" in gpu
    debug = cli("--debug", *base, "--trainer.accelerator", "gpu", cwd=tmp_path)
    assert (
        debug.returncode != 0 and "Traceback" in debug.stderr and "MisconfigurationException" in debug.stderr
    )

    work = tmp_path / "work"
    cuda = cli(
        *base,
        "--data.cache.device",
        "cuda",
        "--data.work_dir",
        str(work),
        "--trainer.accelerator",
        "cpu",
        cwd=tmp_path,
    )
    assert one_line_error(cuda) == (
        "lightning-dicom: error: cache.device 'cuda' needs a trainer on a CUDA accelerator (or use 'auto')"
    )
    assert not (work / "index.sqlite").exists()  # raised before indexing (and so before caching)
    assert not list(tmp_path.rglob("version_*"))  # no almost-empty log folder


def test_checkpoint_mistakes_are_one_line_for_every_subcommand(
    data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--ckpt_path nope.ckpt`` is the same one line for validate, test and predict (validate/test used to
    raise Lightning's FileNotFoundError), and ``best`` with no run yet names the folders searched."""
    from lightning_dicom.cli import main

    monkeypatch.chdir(tmp_path)  # the logger's ./lightning_logs: no run here
    common = [
        "--config",
        str(DEMO),
        "--data.root",
        str(data),
        "--data.labels",
        str(data / "labels.csv"),
        *SMALL,
    ]
    for command in ("validate", "test", "predict"):
        capsys.readouterr()
        assert main([command, *common, "--ckpt_path", "nope.ckpt"]) == 2, command
        err = capsys.readouterr().err
        lines = [ln for ln in err.splitlines() if "lightning-dicom: error:" in ln]
        assert lines == ["lightning-dicom: error: [file nope.ckpt] --ckpt_path: no such checkpoint file"], err
        assert "Traceback" not in err
    assert main(["validate", *common, "--ckpt_path", "best"]) == 2
    err = capsys.readouterr().err
    assert "no checkpoint found in lightning_logs/version_*/checkpoints;" in err, err
    assert "no checkpoint folder configured" not in err
