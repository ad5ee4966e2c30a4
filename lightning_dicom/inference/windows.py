"""Where the windows of a sliding-window pass go and how much each voxel of each counts.

Window starts follow nnU-Net's ``compute_steps_for_sliding_window``
(``nnunetv2/inference/sliding_window_prediction.py``): ``ceil((size - roi) / (roi * (1 - overlap))) + 1``
windows per axis, spread evenly, the first at 0 and the last flush with the end. The Gaussian
importance map is nnU-Net's ``compute_gaussian`` (sigma = roi x ``sigma_scale``, 1/8 by default, peak 1,
zeros replaced by the smallest non-zero value). Both are separable: one profile per axis.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from lightning_dicom.errors import ConfigError

__all__ = ["gaussian_importance_map", "window_starts"]

_STEP_EPS = 1e-9  # keeps ceil() from adding a window when roi * (1 - overlap) is rounded up in float


def window_starts(size: int, roi: int, overlap: float) -> list[int]:
    """Start indices of the windows along one axis (nnU-Net ``compute_steps_for_sliding_window``).

    Args:
        size: length of the (padded) axis in voxels; ``size >= roi``.
        roi: window length in voxels.
        overlap: fraction of ``roi`` shared by neighbouring windows at least, in [0, 1).

    Returns:
        ``n = ceil((size - roi) / (roi * (1 - overlap))) + 1`` starts, the first 0, the last
        ``size - roi``, evenly spread (rounded half to even, as ``np.round``).
    """
    if size < roi:
        raise ConfigError(f"window_starts: size {size} is smaller than roi {roi}; pad first")
    if size == roi:
        return [0]
    n = math.ceil((size - roi) / (roi * (1.0 - overlap)) - _STEP_EPS) + 1
    step = (size - roi) / (n - 1)
    return [round(step * k) for k in range(n)]


def _gaussian_profile(length: int, sigma_scale: float) -> torch.Tensor:
    """One axis of nnU-Net's ``compute_gaussian``: float64 ``[length]``, maximum 1, no zeros.

    scipy's ``gaussian_filter`` of an impulse at ``length // 2`` is the sampled kernel
    ``exp(-x**2 / (2 sigma**2))`` on ``|x| <= int(4 * sigma + 0.5)`` (zero beyond), divided by its
    sum; dividing by the maximum removes that sum. Zeros (beyond the truncation) are raised to the
    smallest non-zero value.
    """
    sigma = length * sigma_scale
    x = torch.arange(length, dtype=torch.float64) - length // 2
    g = torch.exp(-0.5 * (x / sigma) ** 2)
    g[x.abs() > int(4.0 * sigma + 0.5)] = 0.0
    g /= g.max()
    return g.clamp_min(g[g > 0].min())


def _profiles(roi: Sequence[int], blending: str, sigma_scale: float) -> list[torch.Tensor]:
    if blending == "constant":
        return [torch.ones(r, dtype=torch.float64) for r in roi]
    return [_gaussian_profile(r, sigma_scale) for r in roi]


def gaussian_importance_map(
    roi_size: Sequence[int],
    sigma_scale: float = 0.125,
    *,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """nnU-Net's Gaussian importance map ``[d, h, w]`` for windows of ``roi_size`` (z, y, x) voxels.

    As nnU-Net v2 ``compute_gaussian(tile_size, sigma_scale)``: an impulse at ``roi // 2`` smoothed
    with sigma ``roi * sigma_scale`` per axis (truncated at 4 sigma), scaled so the maximum is 1.
    The map is the outer product of one such profile per axis; a profile's zeros (only where
    ``sigma_scale`` is small enough that 4 sigma falls inside the window) are raised to its
    smallest non-zero value, so no weight is 0 (nnU-Net raises the zeros of the product instead).

    Args:
        roi_size: window size (z, y, x) in voxels, each >= 1.
        sigma_scale: sigma as a fraction of the window size (nnU-Net and MONAI default 1/8).
        dtype: dtype of the returned map.
        device: device of the returned map.
    """
    roi = _check_roi(roi_size)
    _check_positive("sigma_scale", sigma_scale)
    pz, py, px = _profiles(roi, "gaussian", sigma_scale)
    out = pz[:, None, None] * py[None, :, None] * px[None, None, :]
    return out.to(dtype=dtype, device=device)


def _normalised_profiles(
    size: int, roi: int, starts: Sequence[int], profile: torch.Tensor, scale: float, device: torch.device
) -> dict[int, torch.Tensor]:
    """Per window start along one axis, ``scale * profile / W[start : start + roi]``, float32 ``[roi]``,
    where ``W[v]`` is the sum over windows of the profile at ``v`` (float64 until the end)."""
    total = torch.zeros(size, dtype=torch.float64)
    for s in starts:
        total[s : s + roi] += profile
    return {s: (scale * profile / total[s : s + roi]).to(device=device, dtype=torch.float32) for s in starts}


class _WindowWeights:
    """Normalised weight ``[d, h, w]`` of each window, computed on demand into one reused buffer."""

    def __init__(
        self, axes: Sequence[dict[int, torch.Tensor]], roi: Sequence[int], device: torch.device
    ) -> None:
        self.axes = axes
        self.buf = torch.empty(tuple(roi), dtype=torch.float32, device=device)

    def __call__(self, starts: Sequence[int]) -> torch.Tensor:
        """Weights of the window at padded-frame ``starts`` (z, y, x); valid until the next call."""
        z, y, x = (a[s] for a, s in zip(self.axes, starts, strict=True))
        return torch.mul(z[:, None, None], y[:, None] * x[None, :], out=self.buf)


# --------------------------------------------------------------------------------------------------
# Argument checks (shared by the function and the class): each error names its argument
# --------------------------------------------------------------------------------------------------


def _check_roi(roi_size: int | Sequence[int]) -> tuple[int, int, int]:
    roi = tuple(roi_size) if isinstance(roi_size, Sequence) else (roi_size,) * 3
    if len(roi) != 3 or not all(isinstance(r, int) and not isinstance(r, bool) and r >= 1 for r in roi):
        raise ConfigError(f"roi_size must be 3 positive integers (z, y, x) or one, got {roi_size!r}")
    return roi  # type: ignore[return-value]


def _check_positive(name: str, value: float) -> None:
    if not (isinstance(value, int | float) and value > 0 and math.isfinite(value)):
        raise ConfigError(f"{name} must be a positive number, got {value!r}")
