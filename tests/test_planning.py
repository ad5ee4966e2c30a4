"""Tests for lightning_dicom.planning: the stated rules on generated series with known spacing and HU."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from lightning_dicom.config import DataConfig, PreprocessingConfig
from lightning_dicom.demo.synthetic import direction_from_orientation, write_series
from lightning_dicom.dicom.index import DicomIndex
from lightning_dicom.planning import PlanSettings, patch_size, plan_dataset, target_spacing
from lightning_dicom.planning.fingerprint import oriented


def _body(shape_zyx: tuple[int, int, int], body_hu: float) -> np.ndarray:
    """Air (-1000 HU) around a box of ``body_hu`` holding a 'lung' block of -600 HU (below the body threshold)."""
    hu = np.full(shape_zyx, -1000, np.int16)
    hu[:, 4:-4, 4:-4] = body_hu
    hu[:, 8:12, 8:12] = -600
    return hu


@pytest.fixture(scope="module")
def known(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three CT series: body 0, 100 and 500 HU; spacings x-y-z (0.7, 0.7, 5), (0.8, 0.8, 5), (0.7, 0.7, 2);
    8 slices of 32 x 32 (few thick slices: nnU-Net's anisotropic case)."""
    root = tmp_path_factory.mktemp("plan_known")
    for i, (hu, sp) in enumerate([(0, (0.7, 0.7, 5.0)), (100, (0.8, 0.8, 5.0)), (500, (0.7, 0.7, 2.0))]):
        write_series(root / f"s{i}", _body((8, 32, 32), hu), spacing=sp, patient_id=f"SYNP{i}", seed=i)
    return root


def test_plan_on_known_spacings_and_hu_gives_the_rules_values(known: Path, tmp_path: Path) -> None:
    cfg = DataConfig(root=[known], work_dir=tmp_path / "work")
    result = plan_dataset(cfg, tmp_path / "plan", plan_settings=PlanSettings(memory_gb=8.0))
    inten = result.fingerprint["modalities"]["CT"]["intensity"]
    # equal samples per series (with replacement) of 0 / 100 / 500 HU; air and -600 HU excluded (HU > -500)
    assert inten["foreground"] == {"HU > -500": 3}
    assert inten["percentile_00_5"] == 0.0 and inten["percentile_99_5"] == 500.0 and inten["median"] == 100.0
    assert inten["mean"] == pytest.approx(200.0, abs=1e-3)
    assert inten["std"] == pytest.approx(np.sqrt((200**2 + 100**2 + 300**2) / 3), rel=1e-5)
    prep = result.plans["CT"].preprocessing
    # median x, y = 0.7; z: 5 > 3 x 0.7 and 8 x 3 < 32 -> anisotropic: 10th percentile of (2, 5, 5) = 2.6
    assert prep["spacing"] == [0.7, 0.7, 2.6]
    assert result.plans["CT"].anisotropic
    assert prep["window"] == [0.0, 500.0] and prep["normalize"] == "ct_zscore"
    assert prep["zscore_mean"] == pytest.approx(200.0) and prep["zscore_std"] == pytest.approx(
        216.025, abs=1e-3
    )
    doc = yaml.safe_load(result.files["CT"][0].read_text())
    PreprocessingConfig.model_validate(doc["data"]["preprocessing"])  # a valid --config fragment
    assert doc["data"]["selection"] == {"modalities": ["CT"]}
    assert doc["data"]["patches"]["size"] == result.plans["CT"].patch
    assert result.files["CT"][1].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "anisotropic" in (tmp_path / "plan" / "plan.txt").read_text()
    assert "SYNP" not in result.fingerprint_path.read_text()  # no patient ID in what is stored

    again = plan_dataset(cfg, tmp_path / "plan", figures=False)  # unchanged index and settings: stored
    assert again.fingerprint["cached"] and not result.fingerprint["cached"]
    assert again.plans["CT"].preprocessing == prep
    write_series(known / "s3", _body((8, 32, 32), 100), spacing=(0.7, 0.7, 5.0), patient_id="SYNP3", seed=3)
    grown = plan_dataset(cfg, tmp_path / "plan", figures=False)
    assert not grown.fingerprint["cached"] and grown.fingerprint["modalities"]["CT"]["n_series"] == 4
    (known / "s3").rename(tmp_path / "moved_out")  # leave the module fixture as it was


@pytest.mark.parametrize(
    ("spacings", "sizes", "expected", "aniso"),
    [
        ([(1, 1, 1), (0.8, 0.8, 1.2), (0.9, 0.9, 3)], [(100, 100, 100)] * 3, [0.9, 0.9, 1.2], False),
        # anisotropic spacing but as many slices as pixels: median (nnU-Net needs both conditions)
        ([(0.5, 0.5, 5)] * 3, [(64, 64, 64)] * 3, [0.5, 0.5, 5.0], False),
        # anisotropic: z takes its 10th percentile, 1 + 0.3 x (6 - 1) = 2.5 (np.percentile, linear)
        ([(1.2, 1, 1.0), (1.2, 1, 6), (1.2, 1, 6), (1.2, 1, 6)], [(300, 300, 20)] * 4, [1.2, 1, 2.5], True),
        # ... unless that is below the other axes' largest spacing (1.2): then 1.2 + 1e-5
        ([(1.2, 1, 1.0)] * 2 + [(1.2, 1, 6)] * 3, [(300, 300, 20)] * 5, [1.2, 1, 1.20001], True),
    ],
)
def test_target_spacing_rule(spacings, sizes, expected, aniso) -> None:
    got, flagged = target_spacing(np.array(spacings, float), np.array(sizes, float))
    np.testing.assert_allclose(got, expected, rtol=1e-9)
    assert flagged == aniso


def test_patch_size_fits_the_budget_with_multiples_of_the_divisor() -> None:
    s = PlanSettings(memory_gb=8.0, batch_size=2, bytes_per_voxel=2000.0, divisor=16)
    assert patch_size([1.0, 1.0, 1.0], [64, 64, 64], s) == (
        [64, 64, 64],
        pytest.approx(2 * 64**3 * 2000 / 1e9),
    )
    patch, gb = patch_size([0.8, 0.8, 2.5], [120, 400, 400], s)  # z-y-x median size
    assert gb <= 8.0 and all(p % 16 == 0 for p in patch)
    assert 2 * np.prod(patch) * 2000 / 1e9 == pytest.approx(gb)
    assert (
        abs(patch[1] - patch[2]) <= 16 and patch[0] < patch[1] / 2
    )  # the aspect ratio of 1 / spacing, roughly
    assert 2 * (patch[0] + 16) * patch[1] * patch[2] * 2000 / 1e9 > 8.0  # shrunk no further than needed
    small = patch_size([1.0, 1.0, 1.0], [10, 300, 300], s)[0]
    assert small[0] == 16  # a side never below the divisor (the sampler pads thin volumes)


def test_oriented_spacing_follows_the_reorientation(tmp_path: Path) -> None:
    d = direction_from_orientation("sagittal")
    write_series(tmp_path / "sag", _body((6, 20, 24), 40), spacing=(0.5, 0.6, 3.0), direction=d, seed=1)
    with DicomIndex([tmp_path], tmp_path / "index.sqlite") as idx:
        idx.scan(workers=1)
        (rec,) = idx.series()
    assert oriented(rec, "none") == ([0.5, 0.6, 3.0], [24, 20, 6])
    # sagittal: columns run A-P (y), rows S-I (z), slices L-R (x)
    assert oriented(rec, "LPS") == ([3.0, 0.5, 0.6], [6, 24, 20])


def test_plan_cli_writes_a_config_fragment(known: Path, tmp_path: Path) -> None:
    from lightning_dicom.cli import main

    out = tmp_path / "cli_plan"
    argv = [
        "plan",
        "--data.root",
        str(known),
        "--data.work_dir",
        str(tmp_path / "w"),
        "--data.progress",
        "false",
    ]
    assert main([*argv, "--plan.out", str(out), "--plan.no_figures", "true"]) == 0
    doc = yaml.safe_load((out / "plan_CT.yaml").read_text())
    cfg = DataConfig.model_validate({"root": [str(known)], **doc["data"]})
    assert cfg.preprocessing.normalize == "ct_zscore" and cfg.preprocessing.window == (0.0, 500.0)
    assert json.loads(next(out.glob("fingerprint-*.json")).read_text())["modalities"]["CT"]["n_series"] == 3
