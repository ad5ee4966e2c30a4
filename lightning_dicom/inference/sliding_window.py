"""Sliding-window inference: run a patch model over a whole volume ``[B, C, D, H, W]`` (z-y-x).

The volume is covered by windows of ``roi_size`` voxels (z, y, x); the predictor runs on batches
of windows, and its outputs are blended into one full-volume prediction with a per-window
importance map (Gaussian or constant). The rules follow the two references users compare with:

* **window placement**: nnU-Net v2 ``compute_steps_for_sliding_window``
  (``nnunetv2/inference/sliding_window_prediction.py``): per axis,
  ``n = ceil((size - roi) / (roi * (1 - overlap))) + 1`` windows, the first at 0, the last flush
  with the end, the ones between evenly spread (``round(k * (size - roi) / (n - 1))``). MONAI's
  ``dense_patch_slices`` places the same number of windows (when ``roi * (1 - overlap)`` is an
  integer) at ``k * interval`` with only the last one pulled back; both coincide when the interval
  divides ``size - roi``.
* **Gaussian importance map**: nnU-Net v2 ``compute_gaussian``: a unit impulse at ``roi // 2``
  smoothed with sigma ``= roi * sigma_scale`` (scipy ``gaussian_filter``, truncated at 4 sigma),
  scaled so its maximum is 1, zeros raised to the smallest non-zero value (no division by zero).
* **volumes smaller than the roi** in an axis: padded with ``pad_value`` symmetrically (MONAI
  ``sliding_window_inference``: ``(roi - size) // 2`` before, the rest after), the output cropped back.
* **mirroring test-time augmentation**: nnU-Net's ``_internal_maybe_mirror_and_predict``: the
  predictor's outputs on flipped windows, flipped back, are averaged with the plain one.

Blending averages the predictor's raw outputs (logits, as nnU-Net does); ``activation`` is applied
once, to the blended volume.

Memory. Only one full-size array is allocated: the accumulator ``[B, K, D, H, W]`` (plus the
``int64`` label map when ``output="labels"``). Windows are copied from the input into one reused
buffer of ``sw_batch_size`` windows; each output is weighted and added into its slice of the
accumulator in one in-place ``addcmul_`` (from another device: weighted in place there, moved through
a reused pinned buffer, added). No weight (count) volume is stored and no final division pass is
needed: both importance maps are separable (a product ``g(z) g(y) g(x)`` of one 1-D profile per axis)
and the windows form a grid (every combination of per-axis starts), so the sum of the maps over all
windows is separable too,
``W(z, y, x) = Wz[z] Wy[y] Wx[x]`` (three vectors of D, H and W floats), and so is each window's
normalised weight ``g / W``. Each window's output is multiplied by its normalised weight before it is
added, so the accumulator holds the blended mean at every step, of the order of the outputs
themselves (no tiny Gaussian tails to underflow a float16 accumulator). The activation (or argmax)
then runs over z-slabs of the accumulator, in place.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import nn

from lightning_dicom.errors import ConfigError
from lightning_dicom.inference.windows import (
    _check_positive,
    _check_roi,
    _normalised_profiles,
    _profiles,
    _WindowWeights,
    gaussian_importance_map,
    window_starts,
)

__all__ = [
    "AUTO_DEVICE_FRACTION",
    "SlidingWindowInferer",
    "gaussian_importance_map",
    "sliding_window_inference",
    "window_starts",
]

Blending = Literal["gaussian", "constant"]
Output = Literal["probabilities", "logits", "labels"]
Activation = Literal["softmax", "sigmoid"]
DtypeName = Literal["float32", "float16", "bfloat16"]
Predictor = Callable[[torch.Tensor], torch.Tensor]
"""``[N, C, d, h, w]`` windows -> ``[N, K, d, h, w]`` outputs (same spatial size)."""

AUTO_DEVICE_FRACTION = 0.5
"""``accumulator_device="auto"`` keeps the accumulator on a CUDA window device when its bytes are
at most this fraction of the memory still available there."""

_SLAB_VOXELS = 1 << 22  # voxels per z-slab in the final activation pass (16 MiB of float32 per channel)


def _check_overlap(overlap: float | Sequence[float]) -> tuple[float, float, float]:
    ov = tuple(overlap) if isinstance(overlap, Sequence) else (overlap,) * 3
    if len(ov) != 3 or not all(isinstance(o, int | float) and 0.0 <= o < 1.0 for o in ov):
        raise ConfigError(f"overlap must be in [0, 1) (one value or z, y, x), got {overlap!r}")
    return ov  # type: ignore[return-value]


def _check_flips(tta_flips: bool | Sequence[Sequence[int]]) -> tuple[tuple[int, ...], ...]:
    """``True`` -> nnU-Net's 7 mirror combinations of (z, y, x); a list -> those axis tuples."""
    if tta_flips is True:
        return tuple(c for k in (1, 2, 3) for c in itertools.combinations((0, 1, 2), k))
    if tta_flips is False or tta_flips is None:
        return ()
    flips = []
    for axes in tta_flips:
        a = tuple(axes) if isinstance(axes, Sequence) else (axes,)
        if not a or len(set(a)) != len(a) or not all(isinstance(i, int) and 0 <= i <= 2 for i in a):
            raise ConfigError(
                f"tta_flips entries must be non-empty tuples of distinct spatial axes 0 (z), 1 (y), 2 (x), "
                f"got {axes!r}"
            )
        flips.append(tuple(sorted(a)))
    return tuple(flips)


def _check_choice(name: str, value: object, choices: Sequence[object]) -> None:
    if value not in choices:
        raise ConfigError(f"{name} must be one of {list(choices)}, got {value!r}")


@dataclass(frozen=True)
class _Settings:
    roi: tuple[int, int, int]
    overlap: tuple[float, float, float]
    blending: str
    sigma_scale: float
    sw_batch_size: int
    flips: tuple[tuple[int, ...], ...]
    output: str
    activation: str | None
    accumulator_device: str | torch.device | None
    accumulator_dtype: torch.dtype
    window_device: torch.device | None
    pad_value: float
    progress: bool


def _settings(
    roi_size: int | Sequence[int],
    *,
    overlap: float | Sequence[float],
    blending: str,
    sigma_scale: float,
    sw_batch_size: int,
    tta_flips: bool | Sequence[Sequence[int]],
    output: str,
    activation: str | None,
    accumulator_device: str | torch.device | None,
    accumulator_dtype: torch.dtype | str,
    window_device: str | torch.device | None,
    pad_value: float,
    progress: bool,
) -> _Settings:
    _check_choice("blending", blending, ("gaussian", "constant"))
    _check_choice("output", output, ("probabilities", "logits", "labels"))
    _check_choice("activation", activation, ("softmax", "sigmoid", None))
    dtypes = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
    acc_dtype = dtypes.get(accumulator_dtype) if isinstance(accumulator_dtype, str) else accumulator_dtype
    if not isinstance(acc_dtype, torch.dtype) or acc_dtype not in dtypes.values():
        raise ConfigError(
            f"accumulator_dtype must be one of {list(dtypes)} (or the torch dtypes), "
            f"got {accumulator_dtype!r}"
        )
    _check_positive("sigma_scale", sigma_scale)
    if not isinstance(sw_batch_size, int) or isinstance(sw_batch_size, bool) or sw_batch_size < 1:
        raise ConfigError(f"sw_batch_size must be an integer >= 1, got {sw_batch_size!r}")
    if not isinstance(pad_value, int | float):
        raise ConfigError(f"pad_value must be a number, got {pad_value!r}")
    acc_dev = accumulator_device
    if acc_dev is not None and acc_dev != "auto":
        try:
            acc_dev = torch.device(acc_dev)
        except (RuntimeError, TypeError) as e:
            raise ConfigError(f"accumulator_device must be None, 'auto' or a device, got {acc_dev!r}") from e
    try:
        win_dev = torch.device(window_device) if window_device is not None else None
    except (RuntimeError, TypeError) as e:
        raise ConfigError(f"window_device must be None or a device, got {window_device!r}") from e
    return _Settings(
        roi=_check_roi(roi_size),
        overlap=_check_overlap(overlap),
        blending=blending,
        sigma_scale=float(sigma_scale),
        sw_batch_size=sw_batch_size,
        flips=_check_flips(tta_flips),
        output=output,
        activation=activation,
        accumulator_device=acc_dev,
        accumulator_dtype=acc_dtype,
        window_device=win_dev,
        pad_value=float(pad_value),
        progress=bool(progress),
    )


# --------------------------------------------------------------------------------------------------
# The engine
# --------------------------------------------------------------------------------------------------


def _window_device(predictor: Predictor, inputs: torch.Tensor, explicit: torch.device | None) -> torch.device:
    """``window_device`` if given, else the device of an ``nn.Module`` predictor, else the input's."""
    if explicit is not None:
        return explicit
    if isinstance(predictor, nn.Module):
        first = next(itertools.chain(predictor.parameters(), predictor.buffers()), None)
        if first is not None:
            return first.device
    return inputs.device


def _accumulator_device(
    setting: str | torch.device | None, window: torch.device, nbytes: int
) -> torch.device:
    """Where the full-volume accumulator lives (see ``sliding_window_inference``, ``accumulator_device``)."""
    if setting is None:
        return window
    if setting != "auto":
        return torch.device(setting)
    if window.type != "cuda":
        return window
    free, _ = torch.cuda.mem_get_info(window)
    available = free + torch.cuda.memory_reserved(window) - torch.cuda.memory_allocated(window)
    return window if nbytes <= AUTO_DEVICE_FRACTION * available else torch.device("cpu")


def _spans(
    starts: Sequence[int], roi: Sequence[int], lo: Sequence[int], shape: Sequence[int]
) -> tuple[tuple[slice, ...], tuple[slice, ...], bool]:
    """Window at padded-frame ``starts`` (z, y, x) -> (slices in the volume, slices in the window,
    whether the window reaches into the padding); ``lo`` = padding before the volume per axis."""
    vol, win = [], []
    for s, r, p, n in zip(starts, roi, lo, shape, strict=True):
        a0, b0 = max(s - p, 0), min(s - p + r, n)
        vol.append(slice(a0, b0))
        win.append(slice(a0 - (s - p), b0 - (s - p)))
    return tuple(vol), tuple(win), any(w.stop - w.start != r for w, r in zip(win, roi, strict=True))


def _at(index: int, spatial: tuple[slice, ...]) -> tuple[int | slice, ...]:
    """Index of one item's spatial block, all channels: ``[index, :, *spatial]``."""
    return (index, slice(None), *spatial)


def _gather(
    inputs: torch.Tensor,
    windows: Sequence[tuple[int, ...]],
    roi: Sequence[int],
    lo: Sequence[int],
    pad_value: float,
    buf: torch.Tensor,
) -> torch.Tensor:
    """Copy the windows ``(b, z, y, x)`` (padded-frame starts) into ``buf[:N]`` ``[N, C, *roi]``."""
    shape = inputs.shape[2:]
    for i, (b, *starts) in enumerate(windows):
        vol, win, padded = _spans(starts, roi, lo, shape)
        dst = buf[i]
        if padded:
            dst.fill_(pad_value)
            dst = dst[(slice(None), *win)]
        dst.copy_(inputs[_at(b, vol)])
    return buf[: len(windows)]


def _predict(predictor: Predictor, x: torch.Tensor, flips: Sequence[tuple[int, ...]]) -> torch.Tensor:
    """Sum of the predictor's outputs on ``x`` and on each flip of it (flipped back)."""
    y = predictor(x)
    if (
        not isinstance(y, torch.Tensor)
        or y.ndim != 5
        or y.shape[0] != x.shape[0]
        or y.shape[2:] != x.shape[2:]
    ):
        got = tuple(y.shape) if isinstance(y, torch.Tensor) else type(y).__name__
        raise ConfigError(
            f"predictor must map windows [N, C, d, h, w] = {tuple(x.shape)} to one tensor [N, K, d, h, w] "
            f"of the same N and spatial size, got {got}"
        )
    if flips and y.untyped_storage().data_ptr() == x.untyped_storage().data_ptr():
        y = y.clone()  # the flipped outputs are summed into y: never into the windows themselves
    for axes in flips:
        dims = [a + 2 for a in axes]
        y.add_(torch.flip(predictor(torch.flip(x, dims)), dims))
    return y


class _Accumulator:
    """The output volume ``[B, K, *shape]`` on its device: the running blended mean."""

    def __init__(self, shape: tuple[int, ...], channels: int, s: _Settings, window: torch.device) -> None:
        b = shape[0]
        nbytes = math.prod((b, channels, *shape[1:])) * s.accumulator_dtype.itemsize
        if s.output == "labels":
            nbytes += math.prod((b, *shape[1:])) * 8 * (channels if s.activation == "sigmoid" else 1)
        device = _accumulator_device(s.accumulator_device, window, nbytes)
        self.out = torch.zeros((b, channels, *shape[1:]), dtype=s.accumulator_dtype, device=device)
        self.device = self.out.device
        self._staging: torch.Tensor | None = None

    def _fused(self, y: torch.Tensor) -> bool:
        """Whether window outputs can be weighted and added in one op (same device)."""
        return y.device == self.device

    def _to_device(self, y: torch.Tensor) -> torch.Tensor:
        """Window outputs onto the accumulator's device (through a reused pinned buffer from CUDA)."""
        if y.device == self.device:
            return y
        if y.device.type == "cuda" and self.device.type == "cpu":
            if (
                self._staging is None
                or self._staging.shape[1:] != y.shape[1:]
                or self._staging.dtype != y.dtype
            ):
                self._staging = torch.empty(y.shape, dtype=y.dtype, pin_memory=True)
            buf = self._staging[: y.shape[0]]
            buf.copy_(y, non_blocking=True)
            torch.cuda.current_stream(y.device).synchronize()
            return buf
        return y.to(self.device)

    def add(
        self,
        y: torch.Tensor,
        windows: Sequence[tuple[int, ...]],
        roi: Sequence[int],
        lo: Sequence[int],
        weights: _WindowWeights,
    ) -> None:
        """Add window outputs ``[N, K, *roi]`` times their normalised weights into their places (the
        padding cropped): one ``addcmul_`` per window on the same device; from another device, the
        weighting is done in place there, then the batch is moved and added."""
        shape = self.out.shape[2:]
        spans = [_spans(starts, roi, lo, shape) for _, *starts in windows]
        if self._fused(y):
            for i, ((b, *starts), (vol, win, _)) in enumerate(zip(windows, spans, strict=True)):
                self.out[_at(b, vol)].addcmul_(y[_at(i, win)], weights(starts)[win])
            return
        for i, (_, *starts) in enumerate(windows):
            y[i].mul_(weights(starts))
        y = self._to_device(y)
        for i, ((b, *_), (vol, win, _)) in enumerate(zip(windows, spans, strict=True)):
            self.out[_at(b, vol)].add_(y[_at(i, win)])

    def finish(self, s: _Settings) -> torch.Tensor:
        """Apply the activation or take labels, z-slab by z-slab (in place for probabilities)."""
        out = self.out
        d, h, w = out.shape[2:]
        labels = None
        if s.output == "labels":
            k = (
                out.shape[1]
                if s.activation == "sigmoid" or (s.activation is None and out.shape[1] == 1)
                else 1
            )
            labels = torch.empty((out.shape[0], k, d, h, w), dtype=torch.int64, device=self.device)
        elif s.output == "logits" or s.activation is None:
            return out
        step = max(1, _SLAB_VOXELS // max(1, h * w))
        for z0 in range(0, d, step):
            zs = slice(z0, min(z0 + step, d))
            slab = out[:, :, zs]
            if labels is not None:
                labels[:, :, zs] = _labels(slab, s.activation)
            elif s.output == "probabilities" and s.activation == "softmax":
                slab.copy_(torch.softmax(slab, dim=1, dtype=torch.float32))
            elif s.output == "probabilities" and s.activation == "sigmoid":
                slab.sigmoid_()
        if labels is not None:
            self.out = out = labels
        return out


def _labels(slab: torch.Tensor, activation: str | None) -> torch.Tensor:
    """Labels of blended logits: argmax over channels (softmax), logit > 0 per channel (sigmoid);
    without an activation the slab holds probabilities: argmax, or > 0.5 for one channel."""
    if activation == "sigmoid":
        return slab > 0
    if activation is None and slab.shape[1] == 1:
        return slab > 0.5
    return slab.argmax(dim=1, keepdim=True)


def _batches(it: Iterator[tuple[int, ...]], size: int) -> Iterator[list[tuple[int, ...]]]:
    while chunk := list(itertools.islice(it, size)):
        yield chunk


def _run(inputs: torch.Tensor, predictor: Predictor, s: _Settings) -> torch.Tensor:
    if not isinstance(inputs, torch.Tensor) or inputs.ndim != 5:
        got = f"shape {tuple(inputs.shape)}" if isinstance(inputs, torch.Tensor) else type(inputs).__name__
        raise ConfigError(f"inputs must be a tensor [B, C, D, H, W] (z-y-x), got {got}")
    if min(inputs.shape) == 0:
        raise ConfigError(f"inputs must not be empty, got shape {tuple(inputs.shape)}")
    if not callable(predictor):
        raise ConfigError(f"predictor must be callable, got {type(predictor).__name__}")
    batch, shape = inputs.shape[0], tuple(inputs.shape[2:])
    padded = [max(n, r) for n, r in zip(shape, s.roi, strict=True)]
    lo = [(p - n) // 2 for p, n in zip(padded, shape, strict=True)]
    starts = [window_starts(p, r, o) for p, r, o in zip(padded, s.roi, s.overlap, strict=True)]
    window_dev = _window_device(predictor, inputs, s.window_device)
    profiles = _profiles(s.roi, s.blending, s.sigma_scale)
    scales = (1.0 / (1 + len(s.flips)), 1.0, 1.0)  # the mean over the flips, folded into z
    axes = [
        _normalised_profiles(p, r, st, g, c, window_dev)
        for p, r, st, g, c in zip(padded, s.roi, starts, profiles, scales, strict=True)
    ]

    weights = _WindowWeights(axes, s.roi, window_dev)
    n_windows = batch * math.prod(len(st) for st in starts)
    # one reused window buffer; pinned when it feeds a GPU (the copy is synchronous: it is refilled next)
    pin = inputs.device.type == "cpu" and window_dev.type == "cuda"
    buf = torch.empty(
        (min(s.sw_batch_size, n_windows), inputs.shape[1], *s.roi),
        dtype=inputs.dtype,
        device=inputs.device,
        pin_memory=pin,
    )
    acc: _Accumulator | None = None
    progress = None
    if s.progress:
        from tqdm.auto import tqdm

        progress = tqdm(total=n_windows, desc="sliding window", unit="window")
    for chunk in _batches(itertools.product(range(batch), *starts), s.sw_batch_size):
        x = _gather(inputs, chunk, s.roi, lo, s.pad_value, buf).to(window_dev)
        y = _predict(predictor, x, s.flips)
        del x
        if acc is None:
            acc = _Accumulator((batch, *shape), y.shape[1], s, window_dev)
        acc.add(y, chunk, s.roi, lo, weights)
        del y
        if progress is not None:
            progress.update(len(chunk))
    if progress is not None:
        progress.close()
    assert acc is not None  # at least one window per image
    return acc.finish(s)


# --------------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------------


def sliding_window_inference(
    inputs: torch.Tensor,
    roi_size: int | Sequence[int],
    predictor: Predictor,
    *,
    overlap: float | Sequence[float] = 0.5,
    blending: Blending = "gaussian",
    sigma_scale: float = 0.125,
    sw_batch_size: int = 4,
    tta_flips: bool | Sequence[Sequence[int]] = False,
    output: Output = "probabilities",
    activation: Activation | None = "softmax",
    accumulator_device: str | torch.device | None = None,
    accumulator_dtype: torch.dtype | DtypeName = torch.float32,
    window_device: str | torch.device | None = None,
    pad_value: float = 0.0,
    progress: bool = False,
) -> torch.Tensor:
    """Predict a whole volume with a window model, blending overlapping windows.

    Runs under ``torch.inference_mode()``: the result is an inference tensor (``.clone()`` it outside
    inference mode before using it in autograd). Put the model in ``eval()`` mode first.

    Args:
        inputs: ``[B, C, D, H, W]`` volumes, axes z-y-x. Windows are copied from it into one reused
            batch buffer (never a copy of the volume); it may live on the host while the model runs on a
            GPU.
        roi_size: window size (z, y, x) in voxels, or one int for all axes; usually the training
            patch size. An axis shorter than the roi is padded with ``pad_value`` (MONAI's symmetric
            rule) and the output cropped back.
        predictor: ``[N, C, *roi]`` -> ``[N, K, *roi]`` (a model, or any callable), raw outputs
            (logits) when an ``activation`` is set. The window buffer it receives is refilled for the
            next batch and its returned tensor may be changed in place: it must keep neither.
        overlap: least fraction of the roi that neighbouring windows share, in [0, 1), one value or
            (z, y, x). Window starts follow nnU-Net (see :func:`window_starts`).
        blending: ``"gaussian"`` (nnU-Net's importance map, :func:`gaussian_importance_map`) or
            ``"constant"`` (plain mean of the overlapping windows).
        sigma_scale: Gaussian sigma as a fraction of the roi (default 1/8, as nnU-Net and MONAI).
        sw_batch_size: windows per predictor call (windows of several images in ``B`` are batched
            together).
        tta_flips: mirroring test-time augmentation. ``True``: all 7 combinations of flips along z, y, x
            (nnU-Net's ``mirror_axes=(0, 1, 2)``); a list such as ``[(2,), (1, 2)]``: those flips of the
            spatial axes (0 = z, 1 = y, 2 = x). Outputs on the flipped windows are flipped back and
            averaged with the plain one (``1 + len(flips)`` predictor calls per window batch).
        output: ``"probabilities"`` (the activation of the blended outputs), ``"logits"`` (the blended
            outputs, no activation) or ``"labels"``.
        activation: ``"softmax"`` (over channels), ``"sigmoid"`` (per channel) or ``None`` (the
            predictor already returns probabilities). Labels: softmax -> argmax ``[B, 1, D, H, W]``;
            sigmoid -> probability > 0.5 per channel ``[B, K, D, H, W]``; None -> argmax, or > 0.5 when
            ``K == 1``. Labels are ``int64`` (the :class:`~lightning_dicom.writer.PredictionWriter`
            contract).
        accumulator_device: where the full-volume output is accumulated and returned. ``None``: the
            window device. A device (e.g. ``"cpu"``): there; from a CUDA window device, window outputs
            reach the host through one reused pinned buffer. ``"auto"``: the window device unless it
            is CUDA and the accumulator (plus labels) needs more than ``AUTO_DEVICE_FRACTION`` (half)
            of the memory available there (``torch.cuda.mem_get_info`` free bytes plus PyTorch's
            cached, unallocated bytes), in which case the host.
        accumulator_dtype: ``torch.float32`` (default), ``torch.float16`` or ``torch.bfloat16`` (or
            their names, ``"float16"``, as in YAML)
            (halves the accumulator, as nnU-Net's ``perform_everything_on_device`` half precision);
            also the dtype of returned probabilities or logits.
        window_device: where the predictor runs; default the device of the predictor's parameters
            when it is an ``nn.Module``, else the device of ``inputs``.
        pad_value: constant that pads axes shorter than the roi (e.g. the intensity of air after
            normalisation).
        progress: show a tqdm progress bar (windows done).

    Returns:
        ``[B, K, D, H, W]`` probabilities or logits in ``accumulator_dtype``, or ``int64`` labels
        (``[B, 1, D, H, W]``, or ``[B, K, D, H, W]`` for sigmoid), on the accumulator device.

    Raises:
        ConfigError: an argument is invalid (the message names it), or the predictor's output is not
            ``[N, K, *roi]``.

    Memory: the accumulator ``B x K x D x H x W x itemsize`` (plus 8 bytes a voxel for labels), the
    window batch and its outputs, and z-slabs of at most ``2**22`` voxels per channel at the end. No
    weight volume and no division pass: each window's weight is normalised before it is added (the
    weight sums are three vectors, see the module docstring).
    """
    s = _settings(
        roi_size,
        overlap=overlap,
        blending=blending,
        sigma_scale=sigma_scale,
        sw_batch_size=sw_batch_size,
        tta_flips=tta_flips,
        output=output,
        activation=activation,
        accumulator_device=accumulator_device,
        accumulator_dtype=accumulator_dtype,
        window_device=window_device,
        pad_value=pad_value,
        progress=progress,
    )
    with torch.inference_mode():
        return _run(inputs, predictor, s)


@dataclass(frozen=True)
class SlidingWindowInferer:
    """Sliding-window settings held by a model; ``inferer(inputs, predictor)`` runs them.

    The arguments are those of :func:`sliding_window_inference` (checked here, at construction, so a
    bad YAML value fails before any data is read). In a LightningModule::

        self.inferer = SlidingWindowInferer(roi_size=(96, 96, 96), overlap=0.5, output="labels")

        def predict_step(self, batch, batch_idx):
            return {"mask": self.inferer(batch["image"], self), "meta": batch["meta"]}
    """

    roi_size: int | tuple[int, int, int]
    overlap: float | tuple[float, float, float] = 0.5
    blending: Blending = "gaussian"
    sigma_scale: float = 0.125
    sw_batch_size: int = 4
    tta_flips: bool | list[tuple[int, ...]] = False
    output: Output = "probabilities"
    activation: Activation | None = "softmax"
    accumulator_device: str | None = None
    accumulator_dtype: DtypeName | torch.dtype = "float32"
    window_device: str | None = None
    pad_value: float = 0.0
    progress: bool = False
    _settings: _Settings = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        s = _settings(
            self.roi_size,
            overlap=self.overlap,
            blending=self.blending,
            sigma_scale=self.sigma_scale,
            sw_batch_size=self.sw_batch_size,
            tta_flips=self.tta_flips,
            output=self.output,
            activation=self.activation,
            accumulator_device=self.accumulator_device,
            accumulator_dtype=self.accumulator_dtype,
            window_device=self.window_device,
            pad_value=self.pad_value,
            progress=self.progress,
        )
        object.__setattr__(self, "_settings", s)

    def __call__(self, inputs: torch.Tensor, predictor: Predictor) -> torch.Tensor:
        """Blended prediction of ``inputs`` ``[B, C, D, H, W]``; see :func:`sliding_window_inference`."""
        with torch.inference_mode():
            return _run(inputs, predictor, self._settings)
