"""PNG histograms of a dataset fingerprint (matplotlib, Agg canvas, no pyplot: as ``render.py``).

One figure per modality, three panels: foreground intensities (modality units) with the proposed
clip (0.5 / 99.5 percentiles) and mean; spacings per axis (x-y-z mm) with the proposed target;
sizes per axis (voxels). Only counts and values are drawn: no series or patient identifiers.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from lightning_dicom.render import _figure, _save  # the package's Agg figure and PNG writer

__all__ = ["save_fingerprint_png"]

_AXES = ("x", "y", "z")


def _bins(values: np.ndarray, pad: float, n: int = 40) -> np.ndarray:
    """``n`` bin edges over all values, widened by ``pad`` when they are (nearly) all equal."""
    lo, hi = float(values.min()), float(values.max())
    if hi - lo < pad:
        lo, hi = lo - pad, hi + pad
    return np.linspace(lo, hi, n + 1)


def save_fingerprint_png(
    modality: str,
    fp: Mapping[str, Any],
    samples: np.ndarray,
    preprocessing: Mapping[str, Any],
    path: str | os.PathLike[str],
) -> Path:
    """Write the fingerprint histograms of one modality to ``path`` (PNG) and return it."""
    fig = _figure((14.0, 3.8))
    ax_i, ax_s, ax_n = fig.subplots(1, 3)
    inten = fp["intensity"]
    if samples.size:
        ax_i.hist(samples, bins=120, color="0.35")
        ax_i.set_yscale("log")
        for key, style in (("percentile_00_5", "--"), ("percentile_99_5", "--"), ("mean", "-")):
            ax_i.axvline(inten[key], color="tab:red", linestyle=style, linewidth=1)
    else:
        ax_i.text(0.5, 0.5, "no foreground voxel read", ha="center", va="center", transform=ax_i.transAxes)
    unit = "HU" if modality == "CT" else "modality units"
    how = ", ".join(f"{k}: {v}" for k, v in inten.get("foreground", {}).items())
    ax_i.set_title(f"{modality} foreground ({how}); red: 0.5/99.5 %, mean", fontsize=9)
    ax_i.set_xlabel(unit)
    spacings = np.asarray(fp["spacings"], float)
    sizes = np.asarray(fp["sizes"], float)
    target = preprocessing.get("spacing")
    sp_bins, sz_bins = _bins(spacings, 0.05), _bins(sizes, 1.0)  # shared by the three axes
    for k, name in enumerate(_AXES):
        ax_s.hist(spacings[:, k], bins=sp_bins, alpha=0.5, label=name)
        ax_n.hist(sizes[:, k], bins=sz_bins, alpha=0.5, label=name)
        if target is not None:
            ax_s.axvline(target[k], color=f"C{k}", linestyle="--", linewidth=1)
    ax_s.set_title(f"spacing, {fp['n_series']} series (dashed: target)", fontsize=9)
    ax_s.set_xlabel("mm")
    ax_n.set_title("size", fontsize=9)
    ax_n.set_xlabel("voxels")
    for ax in (ax_s, ax_n):
        ax.legend(fontsize=8)
    return _save(fig, path)
