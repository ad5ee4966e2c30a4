"""Tests of lightning_dicom.inference.sliding_window (issue 11, the inferer).

Models are tiny and seeded; volumes are a few thousand voxels, so the whole file runs in seconds on CPU.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from torch import nn

from lightning_dicom.errors import ConfigError
from lightning_dicom.inference import (
    SlidingWindowInferer,
    gaussian_importance_map,
    sliding_window,
    sliding_window_inference,
)
from lightning_dicom.inference.sliding_window import window_starts

CONV_RADIUS = 2  # receptive-field radius of _conv_model: two 3x3x3 convolutions


def _pointwise_model(c_in: int = 2, k: int = 3, seed: int = 0) -> nn.Module:
    """A pointwise nonlinear model: 1x1x1 conv, tanh, 1x1x1 conv (random weights)."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv3d(c_in, 5, 1), nn.Tanh(), nn.Conv3d(5, k, 1)).eval()


def _conv_model(seed: int = 0) -> nn.Module:
    """Translation-equivariant: 3x3x3 conv (zero padding 1), ReLU, 3x3x3 conv; 1 -> 2 channels."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv3d(1, 4, 3, padding=1), nn.ReLU(), nn.Conv3d(4, 2, 3, padding=1)).eval()


def _whole(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(x)


# ------------------------------------------------------------------------------------------------
# (a) pointwise model: sliding window == whole volume, everywhere, to 1e-5
# ------------------------------------------------------------------------------------------------

SHAPES_ROIS = [
    ((13, 20, 7), (5, 8, 6)),  # roi divides nothing, odd shape
    ((16, 16, 16), (8, 8, 8)),  # roi divides
    ((9, 30, 11), (12, 7, 11)),  # smaller than roi in z (padded), roi == size in x
    ((3, 5, 4), (6, 6, 6)),  # smaller than roi in every axis
]


@pytest.mark.parametrize(("shape", "roi"), SHAPES_ROIS)
@pytest.mark.parametrize("overlap", [0.0, 0.25, 0.5, 0.75])
@pytest.mark.parametrize("blending", ["gaussian", "constant"])
def test_pointwise_model_equals_whole_volume(shape, roi, overlap, blending):
    model = _pointwise_model()
    x = torch.randn(2, 2, *shape, generator=torch.Generator().manual_seed(1))
    ref = torch.softmax(_whole(model, x), dim=1)
    out = sliding_window_inference(x, roi, model, overlap=overlap, blending=blending, sw_batch_size=3)
    assert out.shape == ref.shape and out.dtype == torch.float32
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=0)


def test_pointwise_logits_and_sigmoid():
    model = _pointwise_model(k=2)
    x = torch.randn(1, 2, 11, 9, 14, generator=torch.Generator().manual_seed(2))
    logits = _whole(model, x)
    out = sliding_window_inference(x, (4, 5, 6), model, output="logits")
    torch.testing.assert_close(out, logits, atol=1e-5, rtol=0)
    out = sliding_window_inference(x, (4, 5, 6), model, activation="sigmoid", overlap=0.25)
    torch.testing.assert_close(out, torch.sigmoid(logits), atol=1e-5, rtol=0)


def test_identity_predictor_with_flips_is_not_corrupted_in_place():
    """A predictor that returns its input must not see its windows scaled or summed in place."""
    x = torch.randn(1, 1, 10, 12, 9, generator=torch.Generator().manual_seed(3))
    out = sliding_window_inference(x, 6, lambda w: w, output="logits", tta_flips=True)
    torch.testing.assert_close(out, x, atol=1e-5, rtol=0)


# ------------------------------------------------------------------------------------------------
# (b) translation-equivariant conv model: Gaussian blend == whole volume away from window borders
# ------------------------------------------------------------------------------------------------


def _clean_mask(size: int, roi: int, overlap: float, r: int) -> np.ndarray:
    """Positions of one axis where every window covering them is at least ``r`` voxels from its
    interior faces (faces on the volume's own border do not count: there the window's zero padding is
    the whole volume's zero padding)."""
    starts = window_starts(size, roi, overlap)
    ok = np.ones(size, dtype=bool)
    for v in range(size):
        for s in (s for s in starts if s <= v < s + roi):
            if (s > 0 and v - s < r) or (s + roi < size and s + roi - 1 - v < r):
                ok[v] = False
    return ok


@pytest.mark.parametrize("overlap", [0.5, 0.75])
def test_conv_model_gaussian_matches_whole_volume(overlap):
    """Exact (1e-5) wherever no covering window sees its own edge within the receptive-field radius
    (2 voxels); elsewhere the Gaussian gives those windows little weight: max error <= 1% of max |logit|,
    and at most 1/20 of constant blending's error."""
    model = _conv_model()
    shape, roi = (40, 44, 36), (24, 24, 24)
    x = torch.randn(1, 1, *shape, generator=torch.Generator().manual_seed(4))
    ref = _whole(model, x)
    gauss = sliding_window_inference(x, roi, model, overlap=overlap, output="logits")
    const = sliding_window_inference(x, roi, model, overlap=overlap, blending="constant", output="logits")
    masks = [_clean_mask(n, r, overlap, CONV_RADIUS) for n, r in zip(shape, roi, strict=True)]
    exact = torch.from_numpy(masks[0][:, None, None] & masks[1][None, :, None] & masks[2][None, None, :])
    assert exact.float().mean() > 0.2
    err_g, err_c = (gauss - ref).abs(), (const - ref).abs()
    assert err_g[..., exact].max() <= 1e-5 and err_c[..., exact].max() <= 1e-5
    assert err_g.max() <= 0.01 * ref.abs().max()
    assert err_g.max() <= err_c.max() / 20


def test_conv_model_padded_axis_matches_away_from_volume_border():
    """z (10 voxels) is shorter than the roi (16): padded with 0, the window covers the whole axis;
    the padded input changes the second conv's input only within the receptive-field radius of the
    volume's z border, so that border (2 voxels) is left out."""
    model = _conv_model(seed=5)
    x = torch.randn(1, 1, 10, 32, 32, generator=torch.Generator().manual_seed(5))
    ref = _whole(model, x)
    out = sliding_window_inference(x, 16, model, overlap=0.5, output="logits")
    assert out.shape == ref.shape
    masks = [np.ones(10, bool)] + [_clean_mask(32, 16, 0.5, CONV_RADIUS)] * 2
    inner = torch.from_numpy(masks[0][:, None, None] & masks[1][None, :, None] & masks[2][None, None, :])
    inner[:CONV_RADIUS] = inner[-CONV_RADIUS:] = False
    assert (out - ref).abs()[..., inner].max() <= 1e-5
    assert (out - ref).abs().max() <= 0.01 * ref.abs().max() + (out - ref).abs()[
        ..., :CONV_RADIUS, :, :
    ].max()


# ------------------------------------------------------------------------------------------------
# (c) labels, (d) TTA, (e) accumulator placement and dtype
# ------------------------------------------------------------------------------------------------


def test_labels_are_argmax_of_probabilities():
    model = _conv_model(seed=6)
    x = torch.randn(2, 1, 17, 19, 23, generator=torch.Generator().manual_seed(6))
    kw = {"overlap": 0.5, "sw_batch_size": 5}
    probs = sliding_window_inference(x, (8, 9, 10), model, **kw)
    labels = sliding_window_inference(x, (8, 9, 10), model, output="labels", **kw)
    assert labels.dtype == torch.int64 and labels.shape == (2, 1, 17, 19, 23)
    assert torch.equal(labels, probs.argmax(1, keepdim=True))


def test_sigmoid_labels_are_probabilities_above_half():
    model = _conv_model(seed=7)
    x = torch.randn(1, 1, 12, 12, 12, generator=torch.Generator().manual_seed(7))
    kw = {"activation": "sigmoid", "overlap": 0.25}
    probs = sliding_window_inference(x, 8, model, **kw)
    labels = sliding_window_inference(x, 8, model, output="labels", **kw)
    assert labels.shape == (1, 2, 12, 12, 12) and labels.dtype == torch.int64
    assert torch.equal(labels, (probs > 0.5).long())


def _flip_equivariant_model(seed: int = 8) -> nn.Module:
    """Conv - ReLU - conv whose kernels are symmetric under every flip: model(flip(x)) == flip(model(x))."""
    model = _conv_model(seed)
    with torch.no_grad():
        for conv in (model[0], model[2]):
            w = conv.weight
            w.copy_(sum(torch.flip(w, d) for k in range(4) for d in itertools.combinations((2, 3, 4), k)) / 8)
    return model


@pytest.mark.parametrize("tta_flips", [True, [(2,)], [(0,), (1, 2)]])
def test_tta_with_flip_equivariant_model_equals_no_tta(tta_flips):
    model = _flip_equivariant_model()
    x = torch.randn(1, 1, 14, 18, 15, generator=torch.Generator().manual_seed(8))
    plain = sliding_window_inference(x, (8, 10, 9), model, output="logits")
    tta = sliding_window_inference(x, (8, 10, 9), model, output="logits", tta_flips=tta_flips)
    torch.testing.assert_close(tta, plain, atol=1e-5, rtol=0)


def test_tta_averages_flipped_predictions():
    """With a model that is not flip-equivariant, TTA along x equals the mean of the plain prediction and
    the flipped-back prediction of the flipped volume (pointwise-in-y/z model, so windows do not matter)."""
    torch.manual_seed(9)
    model = nn.Conv3d(1, 2, (1, 1, 3), padding=(0, 0, 1)).eval()
    x = torch.randn(1, 1, 6, 7, 8)
    expected = (_whole(model, x) + torch.flip(_whole(model, torch.flip(x, [4])), [4])) / 2
    out = sliding_window_inference(
        x, (3, 4, 8), model, output="logits", tta_flips=[(2,)], blending="constant"
    )
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=0)


def test_predictor_calls_are_batched():
    model = _pointwise_model(c_in=1, k=2)
    sizes: list[int] = []

    def predictor(w: torch.Tensor) -> torch.Tensor:
        sizes.append(w.shape[0])
        return model(w)

    x = torch.randn(3, 1, 20, 20, 20)
    sliding_window_inference(x, 10, predictor, overlap=0.5, sw_batch_size=4, tta_flips=[(0,)])
    n_windows = 3 * len(window_starts(20, 10, 0.5)) ** 3  # 3 images x 27 windows
    assert max(sizes) == 4 and sum(sizes) == 2 * n_windows  # plain + one flip


@pytest.mark.parametrize("setting", ["cpu", "auto", None])
def test_accumulator_device_does_not_change_result(setting):
    model = _conv_model(seed=10)
    x = torch.randn(1, 1, 15, 17, 16, generator=torch.Generator().manual_seed(10))
    same = sliding_window_inference(x, 8, model)
    out = sliding_window_inference(x, 8, model, accumulator_device=setting)
    assert out.device.type == "cpu"
    torch.testing.assert_close(out, same, atol=1e-6, rtol=0)


def test_weighting_before_a_device_move_gives_the_same_result(monkeypatch):
    """The path for window outputs on another device (weighted in place there, moved, added) agrees with
    the fused one; forced on CPU."""
    model = _conv_model(seed=10)
    x = torch.randn(1, 1, 15, 9, 16, generator=torch.Generator().manual_seed(10))
    fused = sliding_window_inference(x, 8, model, tta_flips=[(1,)])
    monkeypatch.setattr(sliding_window._Accumulator, "_fused", lambda self, y: False)
    moved = sliding_window_inference(x, 8, model, tta_flips=[(1,)])
    torch.testing.assert_close(moved, fused, atol=1e-6, rtol=0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_accumulator_on_host_equals_on_device_cuda():
    model = _conv_model(seed=11).cuda()
    x = torch.randn(1, 1, 30, 34, 32, generator=torch.Generator().manual_seed(11))
    on_device = sliding_window_inference(x.cuda(), 16, model)
    on_host = sliding_window_inference(x, 16, model, accumulator_device="cpu")  # window device: the model's
    assert on_device.device.type == "cuda" and on_host.device.type == "cpu"
    torch.testing.assert_close(on_host, on_device.cpu(), atol=1e-5, rtol=0)
    auto = sliding_window_inference(x.cuda(), 16, model, accumulator_device="auto")
    assert auto.device.type == "cuda"  # a few MB fit


def test_half_precision_accumulator():
    model = _conv_model(seed=12)
    x = torch.randn(1, 1, 15, 17, 16, generator=torch.Generator().manual_seed(12))
    full = sliding_window_inference(x, 8, model)
    half = sliding_window_inference(x, 8, model, accumulator_dtype=torch.float16)
    assert half.dtype == torch.float16
    torch.testing.assert_close(half.float(), full, atol=2e-3, rtol=0)
    bf16 = SlidingWindowInferer(roi_size=8, accumulator_dtype="bfloat16")(x, model)  # names, as in YAML
    assert bf16.dtype == torch.bfloat16
    torch.testing.assert_close(bf16.float(), full, atol=2e-2, rtol=0)


def test_inferer_class_equals_function():
    model = _conv_model(seed=13)
    x = torch.randn(1, 1, 15, 17, 16, generator=torch.Generator().manual_seed(13))
    inferer = SlidingWindowInferer(roi_size=(8, 9, 10), overlap=0.25, output="labels", sw_batch_size=2)
    expected = sliding_window_inference(x, (8, 9, 10), model, overlap=0.25, output="labels", sw_batch_size=2)
    assert torch.equal(inferer(x, model), expected)


# ------------------------------------------------------------------------------------------------
# Rules against their sources: nnU-Net window steps and Gaussian, MONAI's sliding_window_inference
# ------------------------------------------------------------------------------------------------


def _nnunet_steps(image_size, tile_size, tile_step_size):
    """nnU-Net v2 ``compute_steps_for_sliding_window`` (nnunetv2/inference/sliding_window_prediction.py)."""
    target = [i * tile_step_size for i in tile_size]
    num_steps = [int(np.ceil((i - k) / j)) + 1 for i, j, k in zip(image_size, target, tile_size, strict=True)]
    steps = []
    for dim in range(len(tile_size)):
        max_step = image_size[dim] - tile_size[dim]
        actual = max_step / (num_steps[dim] - 1) if num_steps[dim] > 1 else 99999999999
        steps.append([int(np.round(actual * i)) for i in range(num_steps[dim])])
    return steps


@pytest.mark.parametrize("overlap", [0.0, 0.25, 0.5, 0.75])
def test_window_starts_follow_nnunet(overlap):
    for size, roi in itertools.product(range(1, 70, 3), (1, 5, 16, 24, 64)):
        if size < roi:
            continue
        starts = window_starts(size, roi, overlap)
        assert [starts] == _nnunet_steps((size,), (roi,), 1 - overlap)
        assert starts[0] == 0 and starts[-1] == size - roi
        # evenly spread steps are at most roi * (1 - overlap), then rounded to whole voxels
        assert all(b - a <= math.ceil(roi * (1 - overlap)) for a, b in itertools.pairwise(starts))


def _nnunet_gaussian_numpy(tile_size, sigma_scale=1.0 / 8):
    """nnU-Net's ``compute_gaussian`` with scipy's ``gaussian_filter`` (mode constant, truncate 4)
    written out in numpy: a normalised sampled kernel correlated with an impulse, per axis."""
    tmp = np.zeros(tile_size)
    tmp[tuple(i // 2 for i in tile_size)] = 1
    for axis, n in enumerate(tile_size):
        sd = n * sigma_scale
        radius = int(4.0 * sd + 0.5)
        kernel = np.exp(-0.5 / sd**2 * np.arange(-radius, radius + 1) ** 2)
        kernel /= kernel.sum()
        tmp = np.apply_along_axis(
            lambda v, k=kernel, r=radius: np.convolve(np.pad(v, r), k, "valid"), axis, tmp
        )
    tmp /= tmp.max()
    tmp[tmp == 0] = tmp[tmp > 0].min()
    return tmp


@pytest.mark.parametrize("roi", [(96, 96, 96), (5, 8, 13), (1, 7, 6), (24, 32, 40)])
def test_gaussian_importance_map_matches_nnunet(roi):
    got = gaussian_importance_map(roi, dtype=torch.float64).numpy()
    np.testing.assert_allclose(got, _nnunet_gaussian_numpy(roi), rtol=1e-9, atol=1e-12)
    assert got.max() == pytest.approx(1.0) and got.min() > 0
    assert np.unravel_index(got.argmax(), roi) == tuple(r // 2 for r in roi)


def test_gaussian_importance_map_matches_scipy():
    ndimage = pytest.importorskip("scipy.ndimage")
    roi = (9, 16, 23)
    tmp = np.zeros(roi)
    tmp[tuple(r // 2 for r in roi)] = 1
    ref = ndimage.gaussian_filter(tmp, [r / 8 for r in roi], 0, mode="constant", cval=0)
    ref /= ref.max()
    np.testing.assert_allclose(gaussian_importance_map(roi, dtype=torch.float64).numpy(), ref, atol=1e-9)


@pytest.mark.parametrize(
    ("shape", "roi", "overlap"),
    [
        ((32, 40, 16), (16, 16, 16), 0.5),  # (size - roi) a multiple of the interval: same windows
        ((24, 10, 30), (12, 16, 12), 0.5),  # y padded (10 < 16) as MONAI does
        ((16, 24, 40), (8, 8, 8), 0.75),
        ((24, 24, 24), (8, 8, 8), 0.0),
    ],
)
def test_matches_monai_constant_blending(shape, roi, overlap):
    monai_utils = pytest.importorskip("monai.inferers.utils")
    model = _conv_model(seed=14)
    x = torch.randn(2, 1, *shape, generator=torch.Generator().manual_seed(14))
    with torch.no_grad():
        ref = monai_utils.sliding_window_inference(x, roi, 3, model, overlap=overlap, mode="constant")
    out = sliding_window_inference(
        x, roi, model, overlap=overlap, blending="constant", output="logits", sw_batch_size=3
    )
    torch.testing.assert_close(out, torch.as_tensor(ref), atol=1e-5, rtol=0)


# ------------------------------------------------------------------------------------------------
# (g) bad arguments name the argument
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"roi_size": (8, 0, 8)}, "roi_size"),
        ({"roi_size": (8, 8)}, "roi_size"),
        ({"roi_size": 8.5}, "roi_size"),
        ({"overlap": 1.0}, "overlap"),
        ({"overlap": -0.1}, "overlap"),
        ({"overlap": (0.5, 0.5)}, "overlap"),
        ({"blending": "linear"}, "blending"),
        ({"sigma_scale": 0}, "sigma_scale"),
        ({"sw_batch_size": 0}, "sw_batch_size"),
        ({"tta_flips": [(3,)]}, "tta_flips"),
        ({"tta_flips": [()]}, "tta_flips"),
        ({"output": "mask"}, "output"),
        ({"activation": "relu"}, "activation"),
        ({"accumulator_device": "gpu0"}, "accumulator_device"),
        ({"accumulator_dtype": torch.int32}, "accumulator_dtype"),
        ({"accumulator_dtype": "half"}, "accumulator_dtype"),
    ],
)
def test_bad_arguments_raise_config_error_naming_them(kwargs, name):
    args = {"roi_size": 8, **kwargs}
    x = torch.zeros(1, 1, 8, 8, 8)
    with pytest.raises(ConfigError, match=name):
        sliding_window_inference(x, args.pop("roi_size"), _pointwise_model(c_in=1), **args)
    with pytest.raises(ConfigError, match=name):
        SlidingWindowInferer(**{"roi_size": 8, **kwargs})


@pytest.mark.parametrize("shape", [(8, 8, 8), (1, 8, 8, 8), (1, 1, 1, 8, 8, 8)])
def test_inputs_must_be_5d(shape):
    with pytest.raises(ConfigError, match=r"inputs must be a tensor \[B, C, D, H, W\]"):
        sliding_window_inference(torch.zeros(shape), 4, _pointwise_model(c_in=1))


def test_predictor_output_of_wrong_size_is_reported():
    with pytest.raises(ConfigError, match="predictor must map windows"):
        sliding_window_inference(torch.zeros(1, 1, 8, 8, 8), 4, lambda w: w[:, :, :2])


def test_window_counts_do_not_depend_on_float_rounding():
    # 1 - 0.9 == 0.09999999999999998: without a tolerance ceil() would add a window
    assert len(window_starts(15, 10, 0.9)) == math.ceil(5 / 1) + 1


def test_public_names():
    import lightning_dicom.inference as inference

    assert inference.__all__ == [
        "SlidingWindowInferer",
        "gaussian_importance_map",
        "sliding_window_inference",
    ]
