"""configs/ct_segmentation.yaml through the real CLI: fit, then predict writes NIfTI + SEG on the source grid."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import SimpleITK as sitk
import yaml

from lightning_dicom import read_mask, read_series
from lightning_dicom.demo.synthetic_masks import write_segmentation_dataset

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_segmentation_config_fits_and_writes_predictions_back(tmp_path):
    root = tmp_path / "seg"
    records = write_segmentation_dataset(
        root, n_patients=4, shape_zyx=(12, 24, 24), spacing=(1.0, 1.0, 2.0), seed=5
    )
    cfg = yaml.safe_load((REPO / "configs" / "ct_segmentation.yaml").read_text())
    cfg["trainer"]["max_epochs"] = 1
    cfg["trainer"]["enable_progress_bar"] = False
    cfg["trainer"]["callbacks"][0]["init_args"]["dirpath"] = str(tmp_path / "ckpt")
    cfg["trainer"]["callbacks"][1]["init_args"]["output_dir"] = str(tmp_path / "pred")
    cfg["data"].update(root=str(root), work_dir=str(tmp_path / "work"))
    cfg["data"]["preprocessing"]["size"] = [8, 16, 16]
    cfg["data"]["patches"]["size"] = [8, 12, 12]
    cfg["data"]["loader"]["num_workers"] = 0
    config = tmp_path / "seg.yaml"
    config.write_text(yaml.safe_dump(cfg))
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    for cmd in (
        ["fit"],
        ["predict", "--ckpt_path", str(tmp_path / "ckpt" / "last.ckpt"), "--return_predictions", "false"],
    ):
        proc = subprocess.run(
            [sys.executable, "-m", "lightning_dicom.cli", *cmd, "--config", str(config)],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
    for r in records:
        nifti = tmp_path / "pred" / f"{r['series_uid']}.nii.gz"
        seg = tmp_path / "pred" / f"{r['series_uid']}.seg.dcm"
        source = read_series(r["files"])
        pred = sitk.ReadImage(str(nifti))
        assert pred.GetSize() == source.GetSize()
        assert pred.GetOrigin() == pytest.approx(source.GetOrigin(), abs=1e-4)
        assert pred.GetDirection() == pytest.approx(source.GetDirection(), abs=1e-6)
        masks = (
            read_mask(seg, read_series(r["files"]), series_uid=r["series_uid"])
            if sitk.GetArrayViewFromImage(pred).any()
            else {}
        )
        for m in masks.values():
            assert m.GetSize() == source.GetSize()
