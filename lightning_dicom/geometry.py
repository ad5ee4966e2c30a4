"""Back to the source grid: undo crop/pad, resampling and reorientation of a prediction.

Preprocessing only ever changes the grid (reorientation, spacing, crop/pad), and a sample's
``meta`` records the output grid (``spacing`` x-y-z mm, ``origin`` LPS mm of voxel 0, ``direction``)
and the source grid (``source_*``). Putting the prediction on its output grid and resampling it onto
the source grid therefore inverts all three steps at once, with no bookkeeping of the individual
steps. Voxels of the source grid that the (cropped) prediction does not cover get ``default``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import SimpleITK as sitk

from lightning_dicom import io

__all__ = ["sample_meta", "to_source_geometry"]


def _floats(v: Any) -> list[float]:
    return [float(x) for x in (v.tolist() if hasattr(v, "tolist") else v)]


def sample_meta(batch_meta: Mapping[str, Any], i: int) -> dict[str, Any]:
    """The ``i``-th sample's metadata from a collated batch ``meta`` dict."""
    out = {}
    for k, v in batch_meta.items():
        out[k] = v[i]
    return out


def to_source_geometry(
    prediction: Any, meta: Mapping[str, Any], *, interpolation: str | None = None, default: float = 0.0
) -> sitk.Image:
    """Resample a prediction from the preprocessed grid onto the original series' grid.

    Args:
        prediction: ``[D, H, W]`` or ``[C, D, H, W]`` (z-y-x) array or tensor on the grid of ``meta``.
        meta: one sample's metadata (``spacing``, ``origin``, ``direction``, ``source_spacing``,
            ``source_origin``, ``source_direction``, ``source_size``); see :func:`sample_meta`.
        interpolation: 'nearest' (default for integer data: labels) or 'linear' (default for floats).
        default: value outside the prediction's extent.

    Returns:
        A SimpleITK image with exactly the source series' size, spacing, origin and direction
        (a vector image when C > 1).
    """
    if "source" in meta and "source_size" not in meta:  # the sidecar / preprocess() form
        src = meta["source"]
        meta = {
            **meta,
            "source_size": src["size"],
            "source_spacing": src["spacing"],
            "source_origin": src["origin"],
            "source_direction": src["direction"],
        }
    arr = prediction.detach().cpu().numpy() if hasattr(prediction, "detach") else np.asarray(prediction)
    if arr.ndim == 4:
        arr = arr[0] if arr.shape[0] == 1 else np.moveaxis(arr, 0, -1)
    integer = np.issubdtype(arr.dtype, np.integer) or arr.dtype == bool
    if arr.dtype == bool:
        arr = arr.astype(np.uint8)
    if arr.dtype == np.float16:
        arr = arr.astype(np.float32)
    img = io.from_array(arr, is_vector=arr.ndim == 4)
    img.SetSpacing(_floats(meta["spacing"]))
    img.SetOrigin(_floats(meta["origin"]))
    img.SetDirection(_floats(meta["direction"]))
    interp = interpolation or ("nearest" if integer else "linear")
    return sitk.Resample(
        img,
        [int(x) for x in _floats(meta["source_size"])],
        sitk.Transform(),
        sitk.sitkNearestNeighbor if interp == "nearest" else sitk.sitkLinear,
        _floats(meta["source_origin"]),
        _floats(meta["source_spacing"]),
        _floats(meta["source_direction"]),
        float(default),
        img.GetPixelID(),
    )
