"""Issue 11: predict on a folder of new scans (no labels, no masks) from a checkpoint, through the CLI.

Segmentation: ``fit`` on one synthetic folder, then ``predict --data.root NEW --ckpt_path CKPT`` writes
one DICOM SEG per new series on top of its source series (checked with highdicom and against the
source files' headers); a series that cannot be read is reported and the others predicted.
Classification: the same path writes the probabilities CSV; without a sliding window the classifier
sees training's crop/pad (a series thinner than its pooling is padded, not fed raw), and an error of
``predict_step`` on one series is one line naming it, or that series skipped (``on_error: skip``), with
no partial CSV left by a failed run. The checkpoint carries the data config as plain data, and a
command whose preprocessing differs predicts with the checkpoint's, saying so.
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest
import torch
import yaml

from lightning_dicom.cli import main
from lightning_dicom.config import DataConfig
from lightning_dicom.data.predict_config import (
    apply_checkpoint_data_config,
    checkpoint_data_config,
    differences,
    make_inferer,
    predict_view,
)
from lightning_dicom.datamodule import DicomDataModule
from lightning_dicom.demo.synthetic import write_dataset
from lightning_dicom.demo.synthetic_masks import write_segmentation_dataset
from lightning_dicom.errors import ConfigError, SeriesError

REPO = Path(__file__).resolve().parents[1]
PREP = {"orientation": "RAS", "spacing": [1.5, 1.5, 2.0], "window": [-200, 400], "size": [8, 16, 16]}


def _seg_config(tmp: Path, root: Path, work: Path, out: Path) -> Path:
    cfg = yaml.safe_load((REPO / "configs" / "ct_segmentation.yaml").read_text())
    cfg["trainer"].update(max_epochs=2, enable_progress_bar=False, enable_model_summary=False)
    cfg["trainer"]["callbacks"][0]["init_args"]["dirpath"] = str(tmp / "ckpt")
    cfg["trainer"]["callbacks"][1]["init_args"]["output_dir"] = str(out)
    cfg["data"].update(root=str(root), work_dir=str(work), progress=False)
    cfg["data"]["preprocessing"] = dict(PREP)
    cfg["data"]["patches"]["size"] = [8, 12, 12]
    cfg["data"]["loader"]["num_workers"] = 0
    path = tmp / f"seg-{out.name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict:
    tmp = tmp_path_factory.mktemp("predict_new")
    train = tmp / "train"
    write_segmentation_dataset(train, n_patients=4, shape_zyx=(12, 24, 24), spacing=(1.0, 1.0, 2.0), seed=5)
    config = _seg_config(tmp, train, tmp / "work", tmp / "pred_train")
    assert main(["fit", "--config", str(config)]) == 0
    ckpt = tmp / "ckpt" / "last.ckpt"
    assert ckpt.is_file()
    return {"tmp": tmp, "ckpt": ckpt}


def test_predict_new_folder_writes_one_seg_per_series_on_its_source(trained, caplog):
    tmp = trained["tmp"]
    new = tmp / "new"
    items = write_segmentation_dataset(
        new, n_patients=3, shape_zyx=(12, 24, 24), spacing=(1.0, 1.0, 2.0), seed=11, formats=()
    )
    assert not list(new.rglob("seg.dcm")) and not (new / "masks.csv").exists()  # no labels, no masks
    broken = items[2]
    Path(broken["files"][5]).unlink()  # a missing slice: the series cannot be read as a regular stack
    out = tmp / "pred_new"
    config = _seg_config(tmp, tmp / "train", tmp / "work", out)
    caplog.set_level(logging.INFO)
    args = [
        "predict",
        "--config",
        str(config),
        "--data.root",
        str(new),
        "--data.work_dir",
        str(tmp / "new_work"),
    ]
    assert main([*args, "--ckpt_path", str(trained["ckpt"]), "--return_predictions", "false"]) == 0
    assert f"series {broken['series_uid']} left out" in caplog.text  # reported, not fatal
    written = sorted(out.glob("*.seg.dcm"))
    assert [p.name for p in written] == sorted(f"{it['series_uid']}.seg.dcm" for it in items[:2])
    for it in items[:2]:
        seg = hd.seg.Segmentation.from_dataset(pydicom.dcmread(out / f"{it['series_uid']}.seg.dcm"))
        assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == it["series_uid"]
        sources = {pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID: f for f in it["files"]}
        source = pydicom.dcmread(it["files"][0], stop_before_pixels=True)
        assert (seg.Rows, seg.Columns) == (source.Rows, source.Columns)
        assert seg.FrameOfReferenceUID == source.FrameOfReferenceUID
        spacing = seg.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0].PixelSpacing
        assert [float(v) for v in spacing] == pytest.approx([float(v) for v in source.PixelSpacing])
        for frame in seg.PerFrameFunctionalGroupsSequence:  # every frame lies on its source slice
            ref = frame.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID
            position = frame.PlanePositionSequence[0].ImagePositionPatient
            src = pydicom.dcmread(sources[ref], stop_before_pixels=True)
            assert [float(v) for v in position] == pytest.approx([float(v) for v in src.ImagePositionPatient])


def test_checkpoint_data_config_is_plain_data_and_wins_over_the_command(trained, tmp_path, caplog):
    state = torch.load(trained["ckpt"], map_location="cpu", weights_only=True)
    saved = state["DicomDataModule"]["data_config"]
    assert saved["preprocessing"]["spacing"] == [1.5, 1.5, 2.0]
    assert saved == checkpoint_data_config(trained["ckpt"])
    DataConfig.model_validate(saved)  # a complete, valid data config
    root = tmp_path / "new"
    write_segmentation_dataset(root, n_patients=1, shape_zyx=(12, 24, 24), seed=12, formats=())
    other = {**PREP, "spacing": [2.0, 2.0, 2.0], "window": [-100, 300]}
    dm = DicomDataModule(root=root, work_dir=tmp_path / "w", preprocessing=other, progress=False)
    caplog.set_level(logging.WARNING)
    assert apply_checkpoint_data_config(dm, trained["ckpt"]) == [
        "preprocessing.spacing",
        "preprocessing.window",
    ]
    assert "using the checkpoint's preprocessing" in caplog.text and "preprocessing.window" in caplog.text
    assert dm.config.preprocessing.spacing == (1.5, 1.5, 2.0)
    same = DicomDataModule(root=root, work_dir=tmp_path / "w", preprocessing=PREP, progress=False)
    assert apply_checkpoint_data_config(same, trained["ckpt"]) == []  # size aside, nothing differs
    with pytest.raises(ConfigError, match="no such checkpoint"):
        checkpoint_data_config(tmp_path / "missing.ckpt")


def test_predict_dataset_has_whole_resampled_volumes(tmp_path):
    root = tmp_path / "ct"
    write_segmentation_dataset(root, n_patients=2, shape_zyx=(12, 24, 24), spacing=(1.0, 1.0, 2.0), seed=3)
    dm = DicomDataModule(
        root=root,
        work_dir=tmp_path / "work",
        preprocessing=PREP,
        masks={"structures": {"lesion": "(?i)lesion"}, "sources": ["seg"]},
        patches={"size": [8, 12, 12]},
        progress=False,
        loader={"num_workers": 0},
    )
    dm.setup("fit")
    assert tuple(dm.datasets["val"][0]["image"].shape) == (1, 8, 16, 16)  # training crop/pad
    dm.setup("predict")
    for k in range(2):  # 24 x 1.0 mm -> 16 x 1.5 mm; 12 x 2.0 mm -> 12 x 2.0 mm; no crop
        assert tuple(dm.datasets["predict"][k]["image"].shape) == (1, 12, 16, 16)
        assert "mask" not in dm.datasets["predict"][k]
    assert dm.config.preprocessing.size is None and dm.config.masks is None
    dm.setup("fit")
    assert dm.config.preprocessing.size == (8, 16, 16)  # the training view comes back
    inferer = dm.inferer()
    assert inferer.roi_size == (8, 12, 12) and inferer.output == "labels" and inferer.overlap == 0.5


def test_inference_block_validates_and_defaults():
    cfg = DataConfig(root=["x"], inference={"roi_size": [4, 8, 8], "overlap": 0.25, "tta_flips": True})
    inferer = make_inferer(cfg)
    assert inferer.roi_size == (4, 8, 8) and inferer.tta_flips is True
    assert make_inferer(DataConfig(root=["x"])) is None  # no roi, no patches: one whole-volume pass
    with pytest.raises(ValueError, match="overlap"):
        DataConfig(root=["x"], inference={"overlap": 1.0})
    prep = {"size": [4, 4, 4], "spacing": [1, 1, 1]}
    windowed = predict_view(DataConfig(root=["x"], preprocessing=prep, inference={"roi_size": [2, 2, 2]}))
    assert windowed.preprocessing.size is None and windowed.preprocessing.spacing == (1.0, 1.0, 1.0)
    once = predict_view(DataConfig(root=["x"], preprocessing=prep))  # no window: training's crop/pad
    assert once.preprocessing.size == (4, 4, 4) and once.masks is None and once.loader.batch_size == 1
    other = DataConfig(root=["x"], preprocessing={**prep, "size": [8, 8, 8]}).model_dump(mode="json")
    assert differences(DataConfig(root=["x"], preprocessing=prep), other) == ["preprocessing.size"]
    assert differences(DataConfig(root=["x"], preprocessing=prep, patches={"size": [2, 2, 2]}), other) == []


def _cls_config(tmp: Path, train: Path, size: list[int] | None) -> Path:
    cfg = yaml.safe_load((REPO / "configs" / "demo.yaml").read_text())
    cfg["trainer"].update(max_epochs=1, enable_progress_bar=False, enable_model_summary=False)
    name = "whole" if size is None else "crop"
    cfg["trainer"]["logger"]["init_args"]["save_dir"] = str(tmp / f"logs_{name}")
    cfg["data"].update(root=str(train), labels=str(train / "labels.csv"), work_dir=str(tmp / "w"))
    cfg["data"]["preprocessing"].update(size=size, spacing=[2, 2, 2])
    cfg["data"]["loader"]["num_workers"] = 0
    config = tmp / f"cls_{name}.yaml"
    config.write_text(yaml.safe_dump(cfg))
    return config


@pytest.fixture(scope="module")
def new_ct(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Training series (8x16x16 voxels of 1x1x2 mm), and a folder of new ones: 3 alike (``new/normal``)
    and one of 2 slices (``new/thin``: 2 voxels deep at 2 mm, thinner than Classifier3D's two poolings)."""
    tmp = tmp_path_factory.mktemp("predict_cls")
    train, new = tmp / "train", tmp / "new"
    write_dataset(train, n_patients=4, shape_zyx=(8, 16, 16), spacing=(1.0, 1.0, 2.0), seed=3)
    normal = write_dataset(
        new / "normal", n_patients=3, shape_zyx=(8, 16, 16), spacing=(1.0, 1.0, 2.0), seed=4, labels_csv=False
    )
    (thin,) = write_dataset(
        new / "thin", n_patients=1, shape_zyx=(2, 16, 16), spacing=(1.0, 1.0, 2.0), seed=9, labels_csv=False
    )
    return {"tmp": tmp, "train": train, "new": new, "normal": normal, "thin": thin}


def _new_args(data: dict, root: Path, work: str) -> list[str]:
    return ["--data.root", str(root), "--data.labels", "null", "--data.work_dir", str(data["tmp"] / work)]


def _rows(logs: Path) -> list[dict[str, str]]:
    (table,) = list(logs.rglob("predictions-*.csv"))
    with open(table, newline="") as fh:
        return list(csv.DictReader(fh))


def test_classification_predict_on_new_folder_writes_csv(new_ct):
    config = _cls_config(new_ct["tmp"], new_ct["train"], [8, 16, 16])
    assert main(["fit", "--config", str(config)]) == 0
    logs = new_ct["tmp"] / "logs_crop"
    ckpt = next(logs.rglob("last.ckpt"))
    args = _new_args(new_ct, new_ct["new"] / "normal", "w_normal")
    assert main(["predict", "--config", str(config), *args, "--ckpt_path", str(ckpt)]) == 0
    rows = _rows(logs)
    assert sorted(r["series_id"] for r in rows) == sorted(s.series_uid for s in new_ct["normal"])
    probs = np.array([[float(v) for k, v in r.items() if k.startswith("prob")] for r in rows])
    assert probs.shape == (3, 2) and np.allclose(probs.sum(1), 1.0, atol=1e-4)


def test_classifier_without_window_predicts_on_training_crop_and_names_the_checkpoint(new_ct, caplog):
    """No sliding window: predict keeps ``preprocessing.size``, so the thin series is padded to the
    8x16x16 the classifier was trained on (it used to be fed 2x8x8 and crash in its pooling), and
    ``--ckpt_path best`` logs the file it picked."""
    config = _cls_config(new_ct["tmp"], new_ct["train"], [8, 16, 16])
    logs = new_ct["tmp"] / "logs_crop"
    if not list(logs.rglob("last.ckpt")):  # run alone: fit here
        assert main(["fit", "--config", str(config)]) == 0
    for old in logs.rglob("predictions-*.csv"):
        old.unlink()
    caplog.set_level(logging.INFO)
    args = _new_args(new_ct, new_ct["new"], "w_all")
    assert main(["predict", "--config", str(config), *args, "--ckpt_path", "best"]) == 0
    picked = [r.getMessage() for r in caplog.records if r.getMessage().startswith("--ckpt_path best: ")]
    assert len(picked) == 1 and "/version_0/checkpoints/epoch=" in picked[0], picked
    rows = _rows(logs)
    expected = [s.series_uid for s in new_ct["normal"]] + [new_ct["thin"].series_uid]
    assert sorted(r["series_id"] for r in rows) == sorted(expected)
    assert "left out" not in caplog.text


def test_predict_step_error_is_one_line_or_the_series_skipped(new_ct, caplog, capsys):
    """Trained on whole volumes (size null, no window): the thin series reaches Classifier3D raw and its
    pooling raises. on_error raise: one line naming the series (never the patient), exit 2, no CSV
    left; --debug: the traceback; on_error skip (the default): the others predicted, the series reported."""
    tmp = new_ct["tmp"]
    config = _cls_config(tmp, new_ct["train"], None)
    assert main(["fit", "--config", str(config)]) == 0
    logs = tmp / "logs_whole"
    ckpt = str(next(logs.rglob("last.ckpt")))
    thin = new_ct["thin"]
    base = [
        "predict",
        "--config",
        str(config),
        *_new_args(new_ct, new_ct["new"], "w_whole"),
        "--ckpt_path",
        ckpt,
    ]
    capsys.readouterr()
    assert main([*base, "--data.on_error", "raise"]) == 2
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.startswith("lightning-dicom: error:")]
    assert len(lines) == 1 and "Traceback" not in err, err[-3000:]
    assert lines[0].startswith(
        f"lightning-dicom: error: [series {thin.series_uid}] predict_step failed: RuntimeError"
    )
    assert thin.patient_id not in lines[0] and thin.patient_name.split("^")[0] not in lines[0]
    assert not list(logs.rglob("predictions-*.csv")) and not list(logs.rglob("*.part"))  # nothing partial

    with pytest.raises(SeriesError) as info:
        main([*base, "--data.on_error", "raise", "--debug"])
    assert isinstance(info.value.__cause__, RuntimeError)

    caplog.set_level(logging.INFO)
    assert main(base) == 0
    assert f"series {thin.series_uid} left out of prediction: RuntimeError" in caplog.text
    rows = _rows(logs)
    assert sorted(r["series_id"] for r in rows) == sorted(s.series_uid for s in new_ct["normal"])
