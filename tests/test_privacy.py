"""DICOM carries PHI: no patient name or ID in logs, errors, reports, split files or cache sidecars."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytorch_lightning as pl

from lightning_dicom import DicomDataModule
from lightning_dicom.demo.models import Classifier3D
from lightning_dicom.demo.synthetic import make_phantom, write_dataset, write_series

NAME, PID = "DOE^JANE^Q", "PHI-ID-31337"


def test_a_full_run_never_writes_patient_names_or_ids(tmp_path, caplog, capsys):
    root = tmp_path / "data"
    series = write_dataset(root, n_patients=4, shape_zyx=(8, 16, 16), spacing=(1.0, 1.0, 2.0), seed=11)
    bad = write_series(
        root / "bad",
        make_phantom((8, 16, 16), seed=2),
        spacing=(1.0, 1.0, 2.0),
        patient_id=PID,
        patient_name=NAME,
        seed=4,
    )
    bad.files[3].unlink()  # a gap: this series fails and is reported, with its UID only
    with open(root / "labels.csv", "a") as fh:
        fh.write(f"{bad.series_uid},0\n")
    (root / "junk.dcm").write_bytes(b"\x00" * 300)
    secrets = {NAME, PID, *(s.patient_name for s in series), *(s.patient_id for s in series)}
    secrets |= {n.replace("^", " ") for n in secrets}
    caplog.set_level(logging.DEBUG)
    dm = DicomDataModule(
        root=root,
        labels=root / "labels.csv",
        work_dir=tmp_path / "work",
        progress=True,
        preprocessing={"spacing": [2.0, 2.0, 2.0], "size": [4, 8, 8]},
        loader={"batch_size": 2},
        split={"val": 0.25},
    )
    trainer = pl.Trainer(
        max_epochs=1, accelerator="cpu", logger=False, enable_checkpointing=False, enable_model_summary=False
    )
    trainer.fit(Classifier3D(width=4), datamodule=dm)
    assert [sid for sid, _ in dm.report["series_failed"]] == [bad.series_uid]
    out = capsys.readouterr()
    texts = [caplog.text, out.out, out.err, json.dumps(dm.report, default=str)]
    texts += [p.read_text(errors="replace") for p in (tmp_path / "work").rglob("*.json")]
    for text in texts:
        for secret in secrets:
            assert secret not in text
    assert bad.series_uid in caplog.text  # the failure is logged, by UID
    assert any(Path(p).name == "split.json" for p in (tmp_path / "work").rglob("*.json"))
