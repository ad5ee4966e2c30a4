"""Tests for lightning_dicom.render: PNGs are written, decode, and show the right slices in the right place."""

from __future__ import annotations

import builtins
import importlib
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

pytest.importorskip("matplotlib")
import matplotlib.image as mpimg  # noqa: E402
import torch  # noqa: E402

from lightning_dicom import render  # noqa: E402
from lightning_dicom.render import mid_slices, save_batch_png, save_split_png, save_volume_png  # noqa: E402


def _read_png(path: Path) -> np.ndarray:
    """Decoded PNG as float RGB(A) [rows, cols, channels] in [0, 1]."""
    assert path.exists()
    assert path.stat().st_size > 0
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    img = mpimg.imread(path)
    assert img.ndim == 3
    assert img.shape[2] in (3, 4)
    return img


def _assert_not_constant(img: np.ndarray) -> None:
    rgb = img[..., :3]
    assert float(rgb.std()) > 0.01
    assert len(np.unique(rgb.reshape(-1, 3), axis=0)) > 10


def _cube_volume() -> np.ndarray:
    """[D=20, H=30, W=40] zeros with a bright cube near the top (small y) right (large x) of the mid axial slice."""
    vol = np.zeros((20, 30, 40), dtype=np.float32)
    vol[8:13, 2:9, 28:37] = 1000.0
    return vol


# -- mid_slices ---------------------------------------------------------------------------------------
def test_mid_slices_are_the_middle_planes_in_zyx_order() -> None:
    vol = np.arange(5 * 6 * 7, dtype=np.float32).reshape(5, 6, 7)
    axial, coronal, sagittal = mid_slices(vol)
    np.testing.assert_array_equal(axial, vol[2])
    np.testing.assert_array_equal(coronal, vol[:, 3, :])
    np.testing.assert_array_equal(sagittal, vol[:, :, 3])
    assert axial.shape == (6, 7)
    assert coronal.shape == (5, 7)
    assert sagittal.shape == (5, 6)


def test_mid_slices_first_channel_tensor_and_sitk_agree() -> None:
    vol = np.random.default_rng(0).normal(size=(2, 5, 6, 7)).astype(np.float32)
    for source in (vol, torch.from_numpy(vol).half().float(), sitk.GetImageFromArray(vol[0])):
        axial, coronal, sagittal = mid_slices(source)
        np.testing.assert_allclose(axial, vol[0, 2], rtol=1e-3, atol=1e-3)
        np.testing.assert_allclose(coronal, vol[0, :, 3], rtol=1e-3, atol=1e-3)
        np.testing.assert_allclose(sagittal, vol[0, :, :, 3], rtol=1e-3, atol=1e-3)


def test_mid_slices_rejects_wrong_rank() -> None:
    with pytest.raises(ValueError, match="z-y-x"):
        mid_slices(np.zeros((4, 4)))
    with pytest.raises(ValueError, match="save_batch_png"):
        mid_slices(np.zeros((1, 1, 4, 4, 4)))


# -- save_volume_png ----------------------------------------------------------------------------------
def test_save_volume_png_numpy(tmp_path: Path) -> None:
    out = save_volume_png(_cube_volume(), tmp_path / "sub" / "vol.png", spacing=(1.0, 1.0, 2.0), title="cube")
    assert out == tmp_path / "sub" / "vol.png"
    img = _read_png(out)
    assert img.shape[:2] == (420, 1200)  # three panels side by side
    _assert_not_constant(img)


def test_save_volume_png_sitk_image(tmp_path: Path, synthetic_dataset) -> None:
    from lightning_dicom import read_series

    root, series = synthetic_dataset
    image = read_series(Path(series[0].files[0]).parent)
    img = _read_png(save_volume_png(image, tmp_path / "ct.png"))
    assert img.shape[:2] == (420, 1200)
    _assert_not_constant(img)


def _panel_pixels(img: np.ndarray, fig, ax) -> np.ndarray:
    """The pixels of the PNG inside an axes' box (2 px inset to skip the spines), grey level [rows, cols]."""
    bb = ax.get_window_extent()
    height = img.shape[0]
    r0, r1 = int(np.ceil(height - bb.y1)) + 2, int(np.floor(height - bb.y0)) - 2
    c0, c1 = int(np.ceil(bb.x0)) + 2, int(np.floor(bb.x1)) - 2
    return img[r0:r1, c0:c1, :3].mean(axis=2)


def test_bright_cube_appears_top_right_of_axial_panel(tmp_path: Path) -> None:
    fig, axes = render._volume_figure(_cube_volume())
    path = render._save(fig, tmp_path / "cube.png")
    img = _read_png(path)
    axial = _panel_pixels(img, fig, axes[0])
    bright = axial > 0.9
    assert 0.02 < bright.mean() < 0.1  # cube is 9x7 of 40x30 voxels, about 5 % of the slice
    rows, cols = np.nonzero(bright)
    # cube centre: y = 5.5 of 30 (near the top), x = 32.5 of 40 (near the right)
    assert rows.mean() / axial.shape[0] == pytest.approx(5.5 / 30, abs=0.05)
    assert cols.mean() / axial.shape[1] == pytest.approx(32.5 / 40, abs=0.05)
    # the mid coronal (y=15) and sagittal (x=20) planes miss the cube: dark panels
    assert _panel_pixels(img, fig, axes[1]).max() < 0.1
    assert _panel_pixels(img, fig, axes[2]).max() < 0.1


def test_panel_aspect_follows_spacing(tmp_path: Path) -> None:
    vol = np.random.default_rng(0).normal(size=(10, 20, 40)).astype(np.float32)
    fig, axes = render._volume_figure(vol, spacing=(0.5, 1.0, 4.0))  # x 20 mm, y 20 mm, z 40 mm
    render._save(fig, tmp_path / "aniso.png")
    ratios = []
    for ax in axes:
        bb = ax.get_window_extent()
        ratios.append(bb.height / bb.width)
    assert ratios[0] == pytest.approx(20 / 20, rel=0.03)  # axial: y mm / x mm
    assert ratios[1] == pytest.approx(40 / 20, rel=0.03)  # coronal: z mm / x mm
    assert ratios[2] == pytest.approx(40 / 20, rel=0.03)  # sagittal: z mm / y mm


def test_save_volume_png_bad_spacing(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="spacing"):
        save_volume_png(np.zeros((4, 4, 4)), tmp_path / "x.png", spacing=(1.0, 0.0, 1.0))


# -- save_batch_png -----------------------------------------------------------------------------------
def _batch(n: int) -> dict:
    images = torch.rand(n, 1, 8, 16, 16, dtype=torch.float32).half()
    return {
        "image": images,
        "label": torch.arange(n) % 2,
        "meta": {
            "series_id": [f"1.2.826.0.1.3680043.8.498.{1000 + i}" for i in range(n)],
            "spacing": torch.tensor([[1.0, 1.0, 2.0]] * n, dtype=torch.float64),
        },
    }


@pytest.mark.parametrize(
    ("n", "max_items", "shape"), [(2, 8, (320, 720)), (6, 8, (640, 1320)), (6, 3, (320, 1020))]
)
def test_save_batch_png(tmp_path: Path, n: int, max_items: int, shape: tuple[int, int]) -> None:
    img = _read_png(save_batch_png(_batch(n), tmp_path / "batch.png", max_items=max_items))
    assert img.shape[:2] == shape  # 4 panels per row, 3 in x 3.2 in each, plus the colorbar
    _assert_not_constant(img)


def test_save_batch_png_from_datamodule(tmp_path: Path, synthetic_dataset) -> None:
    from lightning_dicom import DicomDataModule

    root, _ = synthetic_dataset
    dm = DicomDataModule(
        root=root,
        labels=root / "labels.csv",
        work_dir=tmp_path / "work",
        progress=False,
        preprocessing={"window": [-1000, 400], "spacing": [2.0, 2.0, 2.0], "size": [8, 12, 12]},
        loader={"num_workers": 0, "batch_size": 3},
        cache={"workers": 1},
    )
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    img = _read_png(save_batch_png(batch, tmp_path / "batch.png"))
    assert img.shape[:2] == (320, 1020)
    _assert_not_constant(img)
    _assert_not_constant(_read_png(save_split_png(dm.work_dir / "split.json", tmp_path / "split.png")))


def test_save_batch_png_without_labels_or_meta(tmp_path: Path) -> None:
    img = _read_png(
        save_batch_png({"image": np.random.default_rng(0).random((1, 2, 4, 8, 8))}, tmp_path / "b.png")
    )
    assert img.shape[:2] == (320, 420)


def test_short_id_and_label_text() -> None:
    assert render._short_id("1.2.826.0.1.3680043.8.498.123456789") == "…23456789"
    assert render._short_id("1.2.3#2") == "1.2.3#2"
    assert render._short_id("1.2.826.0.1.3680043.8.498.123456789#2") == "…456789#2"
    assert render._label_text(torch.tensor(1)) == "1"
    assert render._label_text(np.float32(0.25)) == "0.25"
    assert render._label_text(torch.tensor([0.0, 1.0])) == "[0, 1]"


# -- save_split_png -----------------------------------------------------------------------------------
def test_save_split_png_from_json_and_dict(tmp_path: Path) -> None:
    doc = {
        "config": {},
        "counts": {"train": 6, "val": 2, "test": 1},
        "patients": {"train": 5, "val": 2, "test": 1},
        "train": [f"s{i}" for i in range(6)],
        "val": ["s6", "s7"],
        "test": ["s8"],
    }
    (tmp_path / "split.json").write_text(json.dumps(doc))
    a = _read_png(save_split_png(tmp_path / "split.json", tmp_path / "a.png"))
    b = _read_png(save_split_png(str(tmp_path / "split.json"), tmp_path / "b.png"))
    c = _read_png(save_split_png({"train": ["a", "b"], "val": ["c"], "test": []}, tmp_path / "c.png"))
    for img in (a, b, c):
        assert img.shape[:2] == (400, 600)
        _assert_not_constant(img)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


# -- optional dependency ------------------------------------------------------------------------------
def test_clear_error_without_matplotlib(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    real_import = builtins.__import__

    def no_matplotlib(name, *args, **kwargs):
        if name == "matplotlib" or name.startswith("matplotlib."):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    import lightning_dicom

    monkeypatch.setattr(lightning_dicom, "render", render)  # restored afterwards, like sys.modules
    monkeypatch.delitem(sys.modules, "lightning_dicom.render")
    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    mod = importlib.import_module("lightning_dicom.render")  # importing needs no matplotlib
    with pytest.raises(ImportError, match=r"pip install lightning-dicom\[viz\]"):
        mod.save_volume_png(np.zeros((4, 4, 4)), tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()
