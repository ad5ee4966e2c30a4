"""Masks onto the preprocessed grid and back: exact when the grid is unchanged, Dice when it is not."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from lightning_dicom.config import MaskConfig, PreprocessingConfig
from lightning_dicom.data.preprocess import preprocess
from lightning_dicom.demo.synthetic import direction_from_orientation
from lightning_dicom.geometry import to_source_geometry
from lightning_dicom.masks.pipeline import foreground_coords, mask_on_grid, match_structures


def _ellipsoid(shape, centre, radii) -> np.ndarray:
    z, y, x = np.mgrid[: shape[0], : shape[1], : shape[2]]
    return (
        (
            ((z - centre[0]) / radii[0]) ** 2
            + ((y - centre[1]) / radii[1]) ** 2
            + ((x - centre[2]) / radii[2]) ** 2
        )
        <= 1
    ).astype(np.uint8)


def _on(img: sitk.Image, arr: np.ndarray) -> sitk.Image:
    out = sitk.GetImageFromArray(arr)
    out.CopyInformation(img)
    return out


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return float(2 * np.logical_and(a, b).sum() / (a.sum() + b.sum()))


@pytest.fixture(scope="module", params=[("axial", 0.0), ("sagittal", 0.0), ("axial", 20.0)], ids=str)
def reference(request) -> sitk.Image:
    img = sitk.Image(96, 112, 80, sitk.sitkInt16)
    img.SetDirection(direction_from_orientation(*request.param))
    img.SetOrigin((-40.0, -50.0, 12.0))
    return img


@pytest.mark.parametrize("interpolation", ["nearest", "linear"])
def test_unchanged_grid_is_identical(reference, interpolation):
    m = _ellipsoid((80, 112, 96), (40, 50, 47), (9, 11, 8))
    arr, meta = preprocess(reference, PreprocessingConfig(orientation="none", normalize="none"))
    lab = mask_on_grid(
        [_on(reference, m)], meta, arr.shape[1:], MaskConfig(structures=["a"], interpolation=interpolation)
    )
    np.testing.assert_array_equal(lab[0], m)
    back = sitk.GetArrayFromImage(to_source_geometry(lab.astype(np.int64), meta))
    np.testing.assert_array_equal(back, m)


def test_round_trip_through_1_5_mm_ras_and_crop(reference):
    """1 -> 1.5 mm, RAS, crop/pad, and back. A hard label map on a 1.5 mm grid cannot carry a 1 mm boundary:
    Dice is bounded by the grid (~0.98 for a 30 mm structure). Linear-on-one-hot then argmax beats nearest
    both ways, which is why it is the default."""
    m = _ellipsoid((80, 112, 96), (40, 55, 48), (30, 36, 27))
    cfg = PreprocessingConfig(orientation="RAS", spacing=(1.5, 1.5, 1.5), size=(56, 76, 66), normalize="none")
    arr, meta = preprocess(reference, cfg)
    dice = {}
    for interp in ("nearest", "linear"):
        lab = mask_on_grid(
            [_on(reference, m)], meta, arr.shape[1:], MaskConfig(structures=["a"], interpolation=interp)
        )
        back = sitk.GetArrayFromImage(to_source_geometry(lab.astype(np.int64), meta)) > 0
        dice[interp] = _dice(back, m > 0)
    assert dice["linear"] >= dice["nearest"]
    assert dice["linear"] >= 0.98


def test_labels_priority_channels_and_missing_structures(reference):
    a = _ellipsoid((80, 112, 96), (40, 50, 47), (10, 10, 10))
    b = _ellipsoid((80, 112, 96), (40, 50, 55), (10, 10, 10))  # overlaps a
    found = {"Liver": _on(reference, a), "Tumour 1": _on(reference, b), "other": _on(reference, b)}
    cfg = MaskConfig(
        structures={"tumour": "(?i)tumou?r", "liver": "(?i)liver", "lung": "lung"}, interpolation="nearest"
    )
    images, missing = match_structures(found, cfg)
    assert missing == ["lung"] and images[2] is None
    arr, meta = preprocess(reference, PreprocessingConfig(orientation="none", normalize="none"))
    labels = mask_on_grid(images, meta, arr.shape[1:], cfg)[0]
    assert set(np.unique(labels)) == {0, 1, 2}
    assert np.all(labels[b > 0] == 1)  # the first structure wins the overlap
    assert np.all(labels[(a > 0) & (b == 0)] == 2)
    channels = mask_on_grid(images, meta, arr.shape[1:], cfg.model_copy(update={"mode": "channels"}))
    assert channels.shape == (3, *arr.shape[1:])
    np.testing.assert_array_equal(channels[0], b)
    np.testing.assert_array_equal(channels[1], a)
    assert channels[2].sum() == 0
    fg = foreground_coords(channels, n=100)
    assert fg.shape == (100, 3) and np.all(channels.max(axis=0)[tuple(fg.T)] > 0)
