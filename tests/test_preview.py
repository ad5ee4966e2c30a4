"""``lightning-dicom preview`` (issue 15): PNGs of series (three planes, mask overlay), a batch and the split,
from the CLI in a subprocess on small generated datasets."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lightning_dicom.demo.synthetic import write_dataset
from lightning_dicom.demo.synthetic_masks import write_segmentation_dataset
from lightning_dicom.render import save_volume_png

REPO = Path(__file__).resolve().parents[1]


def _coloured_pixels(png: Path) -> int:
    import matplotlib.image as mpimg

    rgb = mpimg.imread(png)[..., :3]
    return int((rgb.max(-1) - rgb.min(-1) > 0.3).sum())  # coloured (the image and colorbar are grey)


def _preview(config: str, root: Path, out: Path, *extra: str) -> list[Path]:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "lightning_dicom.cli",
            "preview",
            "--config",
            str(REPO / "configs" / config),
            "--data.root",
            str(root),
            "--data.work_dir",
            "null",
            "--out",
            str(out),
            *extra,
        ],
        cwd=out.parent,
        capture_output=True,
        text=True,
        timeout=300,
        env=dict(os.environ),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return [Path(line) for line in proc.stdout.split() if line.endswith(".png")]


@pytest.mark.slow
def test_preview_of_a_segmentation_dataset_overlays_the_mask(tmp_path: Path) -> None:
    root = tmp_path / "seg"
    write_segmentation_dataset(root, n_patients=4, shape_zyx=(16, 32, 32), spacing=(1.0, 1.0, 2.0))
    paths = _preview("ct_segmentation.yaml", root, tmp_path / "out", "--n_series", "2")
    assert sorted(p.name.split("-")[0] for p in paths) == ["batch.png", "series", "series", "split.png"]
    series_png = [p for p in paths if p.name.startswith("series-")]
    assert len(series_png) == 2 and (tmp_path / "out" / "split.png").exists()
    assert all(_coloured_pixels(p) > 50 for p in series_png)  # the lesion drawn over the image


@pytest.mark.slow
def test_preview_of_a_classification_dataset(tmp_path: Path) -> None:
    root = tmp_path / "ct"
    write_dataset(root, n_patients=4, shape_zyx=(8, 16, 16), spacing=(1.0, 1.0, 2.0), seed=5)
    paths = _preview(
        "demo.yaml",
        root,
        tmp_path / "out",
        "--data.labels",
        str(root / "labels.csv"),
        "--data.preprocessing.size",
        "[8,16,16]",
        "--n_series",
        "1",
    )
    assert sorted(p.name.split("-")[0] for p in paths) == ["batch.png", "series", "split.png"]
    assert _coloured_pixels(next(p for p in paths if p.name.startswith("series"))) == 0  # no mask: no overlay


def test_mask_overlay_needs_the_volume_grid(tmp_path: Path) -> None:
    vol = np.zeros((4, 8, 8), np.float32)
    mask = np.zeros((2, 4, 8, 8), np.uint8)
    mask[1, 1:3, 2:6, 2:6] = 1
    assert _coloured_pixels(save_volume_png(vol, tmp_path / "a.png", mask=mask)) > 50
    with pytest.raises(ValueError, match="does not match"):
        save_volume_png(vol, tmp_path / "b.png", mask=mask[:, :2])
