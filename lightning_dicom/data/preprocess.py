"""SimpleITK preprocessing: reorient, resample, clip, normalise, crop/pad.

Normalisation (``cfg.normalize``): ``minmax`` to [0, 1] over the window (or the image's range);
``zscore`` per image (mean/std of the whole image); ``ct_zscore`` clip to the window, then
``(x - zscore_mean) / zscore_std`` with fixed dataset statistics, as nnU-Net's ``CTNormalization``
(nnunetv2/preprocessing/normalization/default_normalization_schemes.py) with the window = the
foreground 0.5/99.5 percentiles.

Input: a 3D ``SimpleITK.Image`` in modality units (see :func:`lightning_dicom.read_series`).
Output: a float32 array ``[C, D, H, W]`` (z-y-x) and the geometry needed to place it in the
world (LPS, mm) and to map it back onto the source grid.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import SimpleITK as sitk

from lightning_dicom import io
from lightning_dicom.config import PreprocessingConfig

__all__ = ["crop_or_pad", "finish", "preprocess", "to_grid"]

_INTERPOLATORS = {"linear": sitk.sitkLinear, "bspline": sitk.sitkBSpline, "nearest": sitk.sitkNearestNeighbor}


def _resample(image: sitk.Image, spacing: tuple[float, float, float], interpolation: str) -> sitk.Image:
    old_size = np.array(image.GetSize(), dtype=float)
    old_spacing = np.array(image.GetSpacing(), dtype=float)
    new_size = [max(1, int(round(n))) for n in old_size * old_spacing / np.array(spacing)]
    background = float(io.array_view(image).min())  # outside the image: its minimum (air)
    return sitk.Resample(
        image,
        new_size,
        sitk.Transform(),
        _INTERPOLATORS[interpolation],
        image.GetOrigin(),
        tuple(spacing),
        image.GetDirection(),
        background,
        sitk.sitkFloat32 if image.GetNumberOfComponentsPerPixel() == 1 else sitk.sitkVectorFloat32,
    )


def crop_or_pad(
    array: np.ndarray, size: tuple[int, int, int], pad_value: float
) -> tuple[np.ndarray, list[int]]:
    """Centre-crop or pad a ``[C, D, H, W]`` array to ``size`` (z-y-x).

    Returns the new array and ``start``: for each axis, the source index of output voxel 0
    (negative where the output is padded).
    """
    start = [(s - t) // 2 for s, t in zip(array.shape[1:], size, strict=True)]
    out = np.full((array.shape[0], *size), pad_value, dtype=array.dtype)
    src, dst = [slice(None)], [slice(None)]
    for s0, n, t in zip(start, array.shape[1:], size, strict=True):
        a, b = max(s0, 0), min(s0 + t, n)
        src.append(slice(a, b))
        dst.append(slice(a - s0, b - s0))
    out[tuple(dst)] = array[tuple(src)]
    return out, start


def preprocess(image: sitk.Image, cfg: PreprocessingConfig) -> tuple[np.ndarray, dict[str, Any]]:
    """Apply ``cfg`` to one image: :func:`to_grid` (reorient, resample) then :func:`finish` (clip,
    normalise, crop/pad).

    Returns:
        ``(array, meta)``: ``array`` is float32 ``[C, D, H, W]``; ``meta`` holds ``spacing`` (x-y-z mm),
        ``origin`` (LPS mm of output voxel 0), ``direction`` (9 floats), ``source`` (the input's
        geometry) and ``crop_start`` (z-y-x index in the resampled grid of output voxel 0).
    """
    return finish(to_grid(image, cfg), cfg, io.geometry(image))


def to_grid(image: sitk.Image, cfg: PreprocessingConfig) -> sitk.Image:
    """The geometric steps of :func:`preprocess`: reorient to ``cfg.orientation`` (``sitk.DICOMOrient``,
    a permutation/flip of axes, no interpolation) and resample to ``cfg.spacing`` (x-y-z mm) with
    ``cfg.interpolation``; background (outside the image) = the image's minimum."""
    if cfg.orientation != "none" and (
        sitk.DICOMOrientImageFilter.GetOrientationFromDirectionCosines(image.GetDirection())
        != cfg.orientation
    ):
        image = sitk.DICOMOrient(image, cfg.orientation)
    if cfg.spacing is not None:
        image = _resample(image, cfg.spacing, cfg.interpolation)
    return image


def finish(
    image: sitk.Image, cfg: PreprocessingConfig, source: dict[str, Any]
) -> tuple[np.ndarray, dict[str, Any]]:
    """The intensity and size steps of :func:`preprocess` on an image already on its grid: clip to
    ``cfg.window``, normalise, centre crop/pad to ``cfg.size`` (z-y-x). ``source`` is the geometry of
    the series before :func:`to_grid` (stored in ``meta['source']`` for :func:`to_source_geometry`)."""
    array = io.array_view(image).astype(np.float32)
    array = array[None] if array.ndim == 3 else np.moveaxis(array, -1, 0)
    if cfg.window is not None:
        # float32 bounds, so that the window's ends map to exactly 0 and 1 below
        w_lo, w_hi = np.float32(cfg.window[0]), np.float32(cfg.window[1])
        np.clip(array, w_lo, w_hi, out=array)
    if cfg.normalize == "minmax":
        if cfg.window is not None:
            lo, hi = np.float32(cfg.window[0]), np.float32(cfg.window[1])
        else:
            lo, hi = (array.min(), array.max()) if array.size else (np.float32(0), np.float32(0))
        span = np.float32(hi - lo)
        if span > 0:
            # x - lo <= hi - lo in float32 for every x <= hi, so dividing (not multiplying by a
            # reciprocal) gives exactly 1 at the upper bound and never exceeds it
            array -= lo
            array /= span
        else:
            array[...] = 0.0
    elif cfg.normalize == "zscore":
        mean, std = float(array.mean()), float(array.std())
        array -= mean
        array *= 1.0 / std if std > 0 else 1.0
    elif cfg.normalize == "ct_zscore":  # nnU-Net's CTNormalization: window (the clip) applied above
        assert cfg.zscore_mean is not None and cfg.zscore_std is not None  # the config validator ensures it
        array -= np.float32(cfg.zscore_mean)
        array /= np.float32(cfg.zscore_std)
    origin = np.array(image.GetOrigin())
    crop_start = [0, 0, 0]
    if cfg.size is not None:
        array, crop_start = crop_or_pad(array, cfg.size, float(array.min()) if array.size else 0.0)
        direction = np.array(image.GetDirection()).reshape(3, 3)
        origin = origin + direction @ (np.array(crop_start[::-1], dtype=float) * np.array(image.GetSpacing()))
    meta = {
        "spacing": list(image.GetSpacing()),
        "origin": origin.tolist(),
        "direction": list(image.GetDirection()),
        "source": source,
        "crop_start": crop_start,
    }
    return np.ascontiguousarray(array), meta
