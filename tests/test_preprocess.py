"""Tests for lightning_dicom.data.preprocess on images of known geometry (synthetic DICOM and SimpleITK)."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from lightning_dicom.config import PreprocessingConfig
from lightning_dicom.data.preprocess import crop_or_pad, preprocess
from lightning_dicom.demo.synthetic import direction_from_orientation, write_series
from lightning_dicom.dicom.series import read_series


def make_image(
    arr_zyx: np.ndarray,
    spacing: Sequence[float],
    origin: Sequence[float],
    direction: Sequence[float] = (1, 0, 0, 0, 1, 0, 0, 0, 1),
) -> sitk.Image:
    img = sitk.GetImageFromArray(arr_zyx)
    img.SetSpacing(tuple(float(s) for s in spacing))
    img.SetOrigin(tuple(float(o) for o in origin))
    img.SetDirection(tuple(float(d) for d in direction))
    return img


def world(meta: dict, index_zyx: Sequence[int]) -> np.ndarray:
    """LPS position of an output voxel from the geometry in ``meta``."""
    d = np.array(meta["direction"]).reshape(3, 3)
    return np.array(meta["origin"]) + d @ (np.array(index_zyx[::-1], dtype=float) * np.array(meta["spacing"]))


RAW = PreprocessingConfig(orientation="none", normalize="none")


@pytest.fixture(scope="module")
def axial_series(tmp_path_factory: pytest.TempPathFactory) -> tuple[sitk.Image, np.ndarray]:
    """A written and re-read axial CT series (7 x 9 x 11 voxels, every value distinct)."""
    hu = (np.arange(7 * 9 * 11).reshape(7, 9, 11) - 300).astype(np.int16)
    s = write_series(tmp_path_factory.mktemp("axial"), hu, spacing=(0.7, 0.9, 2.5), origin=(-12.0, 30.0, 5.0))
    return read_series(s.files), s.hu


def test_lps_of_axial_series_is_identity(axial_series: tuple[sitk.Image, np.ndarray]) -> None:
    img, hu = axial_series
    arr, meta = preprocess(img, PreprocessingConfig(orientation="LPS", normalize="none"))
    assert arr.dtype == np.float32
    assert arr.shape == (1, 7, 9, 11)
    np.testing.assert_array_equal(arr[0], hu.astype(np.float32))
    np.testing.assert_allclose(meta["direction"], np.eye(3).ravel())
    np.testing.assert_allclose(meta["origin"], (-12.0, 30.0, 5.0), atol=1e-4)
    np.testing.assert_allclose(meta["spacing"], (0.7, 0.9, 2.5), atol=1e-6)
    assert meta["crop_start"] == [0, 0, 0]
    assert meta["source"]["size"] == [11, 9, 7]


def test_ras_flips_x_and_y(axial_series: tuple[sitk.Image, np.ndarray]) -> None:
    img, _ = axial_series
    lps, m_lps = preprocess(img, PreprocessingConfig(orientation="LPS", normalize="none"))
    ras, m_ras = preprocess(img, PreprocessingConfig(orientation="RAS", normalize="none"))
    np.testing.assert_array_equal(ras, np.flip(lps, axis=(3, 2)))  # [C, D, H, W]: W = x, H = y
    np.testing.assert_allclose(np.array(m_ras["direction"]).reshape(3, 3), np.diag([-1.0, -1.0, 1.0]))
    # RAS voxel 0 is the LPS voxel at the far x and y corner: same world point
    np.testing.assert_allclose(world(m_ras, (0, 0, 0)), world(m_lps, (0, 8, 10)), atol=1e-4)
    for idx in [(0, 0, 0), (3, 4, 5), (6, 8, 10)]:
        flipped = (idx[0], 8 - idx[1], 10 - idx[2])
        assert ras[(0, *idx)] == lps[(0, *flipped)]
        np.testing.assert_allclose(world(m_ras, idx), world(m_lps, flipped), atol=1e-4)


@pytest.mark.parametrize("oblique", [0.0, 20.0])
def test_reorientation_keeps_world_positions(tmp_path: Path, oblique: float) -> None:
    hu = np.full((6, 8, 10), -1000, np.int16)
    hu[4, 2, 7] = 1500  # distinctive voxel at z=4, y=2, x=7
    direction = direction_from_orientation("sagittal", oblique)
    s = write_series(tmp_path, hu, spacing=(0.8, 1.1, 2.0), origin=(15.0, -20.0, 40.0), direction=direction)
    img = read_series(s.files)
    expected = np.array(img.TransformIndexToPhysicalPoint((7, 2, 4)))
    for orientation in ("none", "LPS", "RAS"):
        arr, meta = preprocess(img, PreprocessingConfig(orientation=orientation, normalize="none"))
        hits = np.argwhere(arr[0] == 1500)
        assert len(hits) == 1
        np.testing.assert_allclose(world(meta, hits[0]), expected, atol=1e-3)
        if orientation == "LPS" and oblique == 0.0:
            np.testing.assert_allclose(np.array(meta["direction"]).reshape(3, 3), np.eye(3), atol=1e-6)
        if orientation == "none":
            np.testing.assert_allclose(meta["direction"], direction, atol=1e-6)
            assert tuple(hits[0]) == (4, 2, 7)
    # a sagittal stack reoriented to LPS: x (left) is the slice axis, so W = number of slices
    lps, _ = preprocess(img, PreprocessingConfig(orientation="LPS", normalize="none"))
    assert lps.shape[3] == 6


@pytest.mark.parametrize(
    ("spacing", "target", "size_xyz", "expected"),
    [
        ((0.8, 1.0, 2.5), (0.4, 2.0, 1.25), (10, 8, 6), (20, 4, 12)),
        ((0.8, 1.0, 2.5), (0.3, 0.7, 3.0), (10, 8, 6), (27, 11, 5)),
        ((1.0, 1.0, 1.0), (1.0, 1.0, 1.0), (5, 6, 7), (5, 6, 7)),
    ],
)
def test_resampling_size_extent_origin(
    spacing: tuple, target: tuple, size_xyz: tuple, expected: tuple
) -> None:
    direction = direction_from_orientation("coronal", 10.0)
    zz, yy, xx = np.indices(size_xyz[::-1], dtype=np.float32)
    # a field that is linear in world coordinates: linear interpolation must reproduce it exactly
    d = np.array(direction).reshape(3, 3)
    pts = np.stack([xx * spacing[0], yy * spacing[1], zz * spacing[2]], -1) @ d.T + np.array([3.0, -4.0, 5.0])
    field = (2.0 * pts[..., 0] + 3.0 * pts[..., 1] - pts[..., 2]).astype(np.float32)
    img = make_image(field, spacing, (3.0, -4.0, 5.0), direction)
    arr, meta = preprocess(img, PreprocessingConfig(orientation="none", normalize="none", spacing=target))
    assert arr.shape == (1, *expected[::-1])
    np.testing.assert_allclose(meta["spacing"], target)
    np.testing.assert_allclose(meta["origin"], (3.0, -4.0, 5.0))
    np.testing.assert_allclose(meta["direction"], direction, atol=1e-12)
    extent_in = np.array(size_xyz) * np.array(spacing)
    extent_out = np.array(expected) * np.array(target)
    assert np.all(np.abs(extent_out - extent_in) <= np.array(target) / 2 + 1e-9)
    # values at output voxels inside the source's grid of voxel centres
    last = (np.array(size_xyz) - 1) * np.array(spacing)
    checked = 0
    for idx in itertools.product(*(range(n) for n in expected[::-1])):
        local = np.array(idx[::-1]) * np.array(target)
        if np.all(local <= last - 1e-6):
            p = world(meta, idx)
            assert arr[(0, *idx)] == pytest.approx(2 * p[0] + 3 * p[1] - p[2], abs=1e-3)
            checked += 1
    assert checked >= np.prod(expected) // 3


def test_nearest_resampling_keeps_values() -> None:
    rng = np.random.default_rng(0)
    vals = rng.integers(-1000, 1000, (6, 7, 8)).astype(np.int16)
    img = make_image(vals, (1.0, 1.0, 2.0), (0, 0, 0))
    arr, meta = preprocess(
        img, PreprocessingConfig(normalize="none", spacing=(0.5, 0.5, 1.0), interpolation="nearest")
    )
    assert arr.shape == (1, 12, 14, 16)
    assert set(np.unique(arr)) <= set(np.unique(vals).astype(np.float32))
    assert arr[0, 0, 0, 0] == vals[0, 0, 0]
    assert arr[0, 4, 6, 8] == vals[2, 3, 4]


def test_window_and_minmax_exact_at_bounds() -> None:
    lo, hi = -160.3, 240.7  # not representable in float32
    vals = np.array([lo, hi, lo - 500, hi + 800, 40.2, (lo + hi) / 2], np.float32).reshape(1, 2, 3)
    img = make_image(vals, (1, 1, 1), (0, 0, 0))
    arr, _ = preprocess(img, PreprocessingConfig(window=(lo, hi), normalize="minmax"))
    out = arr.ravel()
    assert out[0] == 0.0
    assert out[2] == 0.0
    assert out[1] == 1.0
    assert out[3] == 1.0
    assert out.min() == 0.0
    assert out.max() == 1.0
    assert out[4] == pytest.approx((40.2 - lo) / (hi - lo), abs=1e-6)
    assert out[5] == pytest.approx(0.5, abs=1e-6)
    clipped, _ = preprocess(img, PreprocessingConfig(window=(lo, hi), normalize="none"))
    np.testing.assert_allclose(clipped.ravel(), np.clip(vals.ravel(), np.float32(lo), np.float32(hi)))


@pytest.mark.parametrize("seed", range(20))
def test_minmax_never_leaves_unit_interval(seed: int) -> None:
    rng = np.random.default_rng(seed)
    lo = float(rng.uniform(-2000, 500))
    hi = lo + float(rng.uniform(0.01, 3000))
    vals = np.concatenate([rng.uniform(lo - 100, hi + 100, 58), [lo, hi]]).astype(np.float32).reshape(3, 4, 5)
    a, _ = preprocess(make_image(vals, (1, 1, 1), (0, 0, 0)), PreprocessingConfig(window=(lo, hi)))
    assert a.min() == 0.0
    assert a.max() == 1.0
    b, _ = preprocess(make_image(vals, (1, 1, 1), (0, 0, 0)), PreprocessingConfig())  # image min/max
    assert b.min() == 0.0
    assert b.max() == 1.0


def test_constant_image_minmax_is_zero() -> None:
    a, _ = preprocess(
        make_image(np.full((2, 3, 4), 7, np.int16), (1, 1, 1), (0, 0, 0)), PreprocessingConfig()
    )
    assert np.all(a == 0.0)


def test_zscore() -> None:
    rng = np.random.default_rng(1)
    vals = rng.normal(300.0, 80.0, (8, 9, 10)).astype(np.float32)
    arr, _ = preprocess(make_image(vals, (1, 1, 1), (0, 0, 0)), PreprocessingConfig(normalize="zscore"))
    assert abs(float(arr.mean())) < 1e-5
    assert float(arr.std()) == pytest.approx(1.0, abs=1e-5)
    np.testing.assert_allclose(arr[0], (vals - vals.mean()) / vals.std(), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(
    ("shape", "size"),
    [
        ((5, 6, 7), (3, 8, 7)),
        ((4, 4, 4), (1, 2, 3)),
        ((2, 3, 1), (5, 4, 1)),
        ((3, 5, 6), (4, 2, 9)),
        ((1, 1, 1), (2, 3, 4)),
    ],
)
def test_crop_or_pad(shape: tuple, size: tuple) -> None:
    arr = (np.arange(np.prod(shape) * 2, dtype=np.float32) + 1).reshape(2, *shape)
    out, start = crop_or_pad(arr, size, -5.0)
    assert out.shape == (2, *size)
    assert out.dtype == arr.dtype
    assert start == [(s - t) // 2 for s, t in zip(shape, size, strict=False)]
    for o in itertools.product(*(range(t) for t in size)):
        src = tuple(a + b for a, b in zip(o, start, strict=False))
        if all(0 <= i < n for i, n in zip(src, shape, strict=False)):
            np.testing.assert_array_equal(out[(slice(None), *o)], arr[(slice(None), *src)])
        else:
            assert np.all(out[(slice(None), *o)] == -5.0)
    # centred: the number of voxels removed/added before and after differ by at most one
    for s, t, s0 in zip(shape, size, start, strict=False):
        before, after = -s0, t - s - (-s0)
        assert abs(before - after) <= 1


@pytest.mark.parametrize("size", [(5, 5, 5), (4, 6, 3), (9, 12, 14), (10, 3, 13), (1, 2, 2), (1, 1, 1)])
@pytest.mark.parametrize("orientation", ["none", "LPS"])
def test_crop_pad_moves_origin_with_the_voxels(size: tuple, orientation: str) -> None:
    direction = direction_from_orientation("sagittal", 25.0)
    vals = np.zeros((7, 8, 9), np.int16)
    vals[3, 4, 4] = 900  # index x=4, y=4, z=3
    src = make_image(vals, (0.6, 0.9, 1.7), (-31.0, 12.5, 80.0), direction)
    expected = np.array(src.TransformIndexToPhysicalPoint((4, 4, 3)))
    ref, ref_meta = preprocess(src, PreprocessingConfig(orientation=orientation, normalize="none"))
    (ref_idx,) = np.argwhere(ref[0] == 900)
    np.testing.assert_allclose(world(ref_meta, ref_idx), expected, atol=1e-6)

    arr, meta = preprocess(src, PreprocessingConfig(orientation=orientation, normalize="none", size=size))
    assert arr.shape == (1, *size)
    assert meta["crop_start"] == [(s - t) // 2 for s, t in zip(ref.shape[1:], size, strict=False)]
    # the origin is the world position of the grid voxel at crop_start ...
    np.testing.assert_allclose(meta["origin"], world(ref_meta, meta["crop_start"]), atol=1e-9)
    # ... so the distinctive voxel keeps its world position wherever it lands
    out_idx = ref_idx - np.array(meta["crop_start"])
    hits = np.argwhere(arr[0] == 900)
    if np.all((out_idx >= 0) & (out_idx < np.array(size))):
        assert [tuple(h) for h in hits] == [tuple(out_idx)]
        np.testing.assert_allclose(world(meta, hits[0]), expected, atol=1e-6)
        assert np.sum(arr == 0) == arr.size - 1  # padding uses the minimum (0 here)
    else:
        assert len(hits) == 0
        assert np.all(arr == 0)


def test_real_series_full_pipeline(axial_series: tuple[sitk.Image, np.ndarray]) -> None:
    img, hu = axial_series
    cfg = PreprocessingConfig(spacing=(1.4, 1.8, 2.5), window=(-300, 300), size=(8, 4, 4))
    arr, meta = preprocess(img, cfg)
    assert arr.shape == (1, 8, 4, 4)
    assert arr.dtype == np.float32
    assert arr.flags["C_CONTIGUOUS"]
    assert arr.min() >= 0.0
    assert arr.max() <= 1.0
    # resampled grid: z 7, y round(9 * 0.9 / 1.8) = 4, x round(11 * 0.7 / 1.4) = 6 (Python rounds halves to even)
    assert meta["crop_start"] == [-1, 0, 1]
    np.testing.assert_allclose(meta["spacing"], (1.4, 1.8, 2.5))
    np.testing.assert_allclose(meta["origin"], np.array([-12.0, 30.0, 5.0]) + [1.4, 0.0, -2.5], atol=1e-4)


def test_vector_image_gives_channels() -> None:
    rgb = np.stack([np.full((3, 4, 5), c, np.uint8) for c in (10, 20, 30)], axis=-1)
    img = sitk.GetImageFromArray(rgb, isVector=True)
    arr, _ = preprocess(img, PreprocessingConfig(normalize="none", size=(3, 4, 4)))
    assert arr.shape == (3, 3, 4, 4)
    assert [float(arr[c].mean()) for c in range(3)] == [10.0, 20.0, 30.0]


def test_ct_zscore_clips_to_the_window_then_uses_the_fixed_statistics() -> None:
    """nnU-Net's CTNormalization: clip to [p0.5, p99.5] of the foreground, then (x - mean) / std."""
    from lightning_dicom import io

    hu = np.array([[[-1000, -100, 0], [40, 300, 2000]]], dtype=np.int16)  # z-y-x
    cfg = PreprocessingConfig(
        orientation="none", window=(-100.0, 300.0), normalize="ct_zscore", zscore_mean=50.0, zscore_std=100.0
    )
    out, _ = preprocess(io.from_array(hu), cfg)
    expected = (np.clip(hu.astype(np.float32), -100, 300) - 50) / 100
    np.testing.assert_allclose(out[0], expected, rtol=1e-6)
    with pytest.raises(ValueError, match="'ct_zscore' needs window"):
        PreprocessingConfig(normalize="ct_zscore", zscore_mean=0.0, zscore_std=1.0)
    with pytest.raises(ValueError, match="used only by normalize 'ct_zscore', not 'minmax'"):
        PreprocessingConfig(zscore_mean=0.0)
    with pytest.raises(ValueError, match="greater than 0"):
        PreprocessingConfig(window=(0, 1), normalize="ct_zscore", zscore_mean=0.0, zscore_std=0.0)
