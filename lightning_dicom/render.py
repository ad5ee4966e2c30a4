"""PNG renderings of volumes, batches and splits, for notebooks, reports and quick checks.

Everything here draws on matplotlib ``Figure`` objects with the Agg canvas: no ``pyplot``, no
global backend switch (a notebook's inline backend is left alone) and no figure left open.
matplotlib is imported inside the functions, so ``import lightning_dicom`` works without it; it
ships with the ``viz`` extra (``pip install lightning-dicom[viz]``).

Conventions are the package's: arrays are z-y-x (``[D, H, W]`` or ``[C, D, H, W]``), spacing is
x-y-z in mm. Panels are drawn in mm so that anisotropic voxels keep their true proportions. With
the default ``preprocessing.orientation`` (LPS) this is the radiological view: axial with anterior
at the top and the patient's right on the left of the image, coronal and sagittal with superior
at the top.

Figures show series ids (shortened) and labels only: never patient names or IDs.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["mid_slices", "save_batch_png", "save_split_png", "save_volume_png"]

#: Resolution of every PNG written here (pixels per inch of the figure size).
DPI = 100
_VIEWS = ("axial", "coronal", "sagittal")


def _figure(figsize: tuple[float, float]) -> Figure:
    """A new Agg-backed figure (matplotlib imported here, with a clear error if it is missing)."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as err:
        raise ImportError(
            "lightning_dicom.render needs matplotlib: pip install lightning-dicom[viz]"
        ) from err
    fig = Figure(figsize=figsize, dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path: str | os.PathLike[str]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, format="png")
    return path


def _numpy(x: Any) -> np.ndarray:
    """A numpy copy of a numpy array, torch tensor (any device, float16 included) or sequence."""
    if hasattr(x, "detach"):  # torch.Tensor, without importing torch
        x = x.detach().cpu()
        if x.is_floating_point():
            x = x.float()
        return x.numpy()
    return np.asarray(x)


def _volume(
    volume: Any, spacing: Sequence[float] | None
) -> tuple[np.ndarray, tuple[float, float, float], bool]:
    """``(array [D, H, W] float32, spacing x-y-z mm, is_sitk)`` of anything save_volume_png accepts."""
    import SimpleITK as sitk

    from lightning_dicom import io

    is_sitk = isinstance(volume, sitk.Image)
    if is_sitk:
        if volume.GetDimension() != 3:
            raise ValueError(f"expected a 3D SimpleITK image, got {volume.GetDimension()}D")
        array = io.array_view(volume)
        if volume.GetNumberOfComponentsPerPixel() > 1:  # [D, H, W, C]: first component
            array = array[..., 0]
        default_spacing: Sequence[float] = volume.GetSpacing()
    else:
        array = _numpy(volume)
        if array.ndim == 4:  # [C, D, H, W]: first channel
            array = array[0]
        if array.ndim != 3:
            raise ValueError(
                f"expected a z-y-x volume [D, H, W] or [C, D, H, W], got shape {list(array.shape)} "
                "(for a batch [B, C, D, H, W] use save_batch_png)"
            )
        default_spacing = (1.0, 1.0, 1.0)
    sp = tuple(float(s) for s in (default_spacing if spacing is None else spacing))
    if len(sp) != 3 or not all(math.isfinite(s) and s > 0 for s in sp):
        raise ValueError(f"spacing must be three positive numbers (x-y-z mm), got {list(sp)}")
    if 0 in array.shape:
        raise ValueError(f"empty volume, shape {list(array.shape)}")
    return np.asarray(array, dtype=np.float32), sp, is_sitk  # type: ignore[return-value]


def mid_slices(volume: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The three orthogonal mid-slices that :func:`save_volume_png` draws.

    Args:
        volume: a ``SimpleITK.Image`` (3D; first component of a vector image) or a z-y-x array or
            tensor, ``[D, H, W]`` or ``[C, D, H, W]`` (first channel).

    Returns:
        ``(axial, coronal, sagittal)`` as float32 arrays: ``axial = v[D // 2]`` (``[H, W]``, y-x),
        ``coronal = v[:, H // 2]`` (``[D, W]``, z-x), ``sagittal = v[:, :, W // 2]`` (``[D, H]``, z-y).
    """
    array, _, _ = _volume(volume, None)
    d, h, w = array.shape
    return array[d // 2], array[:, h // 2, :], array[:, :, w // 2]


def _volume_figure(
    volume: Any,
    *,
    spacing: Sequence[float] | None = None,
    title: str | None = None,
    vmin: float | None = None,
    vmax: float | None = None,
    mask: Any = None,
) -> tuple[Figure, list[Axes]]:
    array, (sx, sy, sz), is_sitk = _volume(volume, spacing)
    d, h, w = array.shape
    axial, coronal, sagittal = array[d // 2], array[:, h // 2, :], array[:, :, w // 2]
    labels = _label_map(mask, array.shape)
    lo = float(array.min()) if vmin is None else float(vmin)
    hi = float(array.max()) if vmax is None else float(vmax)
    if hi <= lo:
        hi = lo + 1.0
    fig = _figure((12.0, 4.2))
    axes = list(fig.subplots(1, 3))
    # (slice, extent in mm (left, right, bottom, top), origin, x label, y label, panel title)
    panels = [
        (axial, (0, w * sx, h * sy, 0), "upper", "x (mm)", "y (mm)", f"axial  z={d // 2}/{d}"),
        (coronal, (0, w * sx, 0, d * sz), "lower", "x (mm)", "z (mm)", f"coronal  y={h // 2}/{h}"),
        (sagittal, (0, h * sy, 0, d * sz), "lower", "y (mm)", "z (mm)", f"sagittal  x={w // 2}/{w}"),
    ]
    overlays = (
        [labels[d // 2], labels[:, h // 2, :], labels[:, :, w // 2]] if labels is not None else [None] * 3
    )
    im = None
    for ax, (img, extent, origin, xl, yl, name), over in zip(axes, panels, overlays, strict=True):
        if over is not None and labels is not None and over.any():
            ax.imshow(
                np.ma.masked_equal(over, 0),
                cmap="autumn",
                vmin=1,
                vmax=max(2, int(labels.max())),
                alpha=0.45,
                extent=extent,
                origin=origin,
                interpolation="nearest",
                aspect="equal",
                zorder=2,
            )
        im = ax.imshow(
            img,
            cmap="gray",
            vmin=lo,
            vmax=hi,
            extent=extent,
            origin=origin,
            interpolation="nearest",
            aspect="equal",
        )
        ax.set_title(name, fontsize=10)
        ax.set_xlabel(xl, fontsize=8)
        ax.set_ylabel(yl, fontsize=8)
        ax.tick_params(labelsize=7)
    assert im is not None  # at least one panel was drawn
    cbar = fig.colorbar(im, ax=axes, shrink=0.85)
    cbar.set_label("modality units (HU for CT)" if is_sitk else "intensity", fontsize=8)
    cbar.ax.tick_params(labelsize=7)
    fig.suptitle(title or f"{d}x{h}x{w} voxels (z-y-x), spacing {sx:g}x{sy:g}x{sz:g} mm (x-y-z)", fontsize=11)
    return fig, axes


def _label_map(mask: Any, shape: tuple[int, ...]) -> np.ndarray | None:
    """A mask as a z-y-x label map (0 background): ``[D, H, W]`` labels, or ``[K, D, H, W]`` binary
    channels (channel k -> label k + 1; ``[1, D, H, W]`` label maps pass through)."""
    if mask is None:
        return None
    m = _numpy(mask)
    if m.ndim == 4 and m.shape[0] == 1:
        m = m[0]
    elif m.ndim == 4:
        m = np.max((m > 0) * np.arange(1, m.shape[0] + 1).reshape(-1, 1, 1, 1), axis=0)
    if m.shape != tuple(shape):
        raise ValueError(f"mask shape {list(m.shape)} does not match the volume's {list(shape)} (z-y-x)")
    return m.astype(np.int64)


def save_volume_png(
    volume: Any,
    path: str | os.PathLike[str],
    *,
    spacing: Sequence[float] | None = None,
    title: str | None = None,
    vmin: float | None = None,
    vmax: float | None = None,
    mask: Any = None,
) -> Path:
    """Write the axial, coronal and sagittal mid-slices of a volume side by side, with a colorbar.

    Args:
        volume: a 3D ``SimpleITK.Image`` (values in modality units, e.g. HU, as from
            :func:`lightning_dicom.read_series`) or a z-y-x numpy array / torch tensor ``[D, H, W]``
            or ``[C, D, H, W]`` (first channel shown), e.g. from :func:`lightning_dicom.data.preprocess`.
        path: the PNG to write (parent folders are created).
        spacing: voxel spacing x-y-z in mm; default the image's own, or 1 mm for arrays. Panels are
            drawn in mm, so the aspect ratio follows the spacing.
        title: figure title (default: shape and spacing). Put no patient names or IDs here.
        vmin, vmax: intensity range of the grey scale (default: the volume's min and max).
        mask: optional mask on the same z-y-x grid, drawn over the image in colour: a label map
            ``[D, H, W]`` / ``[1, D, H, W]`` (0 = background) or binary channels ``[K, D, H, W]``.

    Returns:
        ``path`` as a :class:`~pathlib.Path` (a 1200x420 pixel PNG).

    Raises:
        ValueError: the mask's shape differs from the volume's.
    """
    fig, _ = _volume_figure(volume, spacing=spacing, title=title, vmin=vmin, vmax=vmax, mask=mask)
    return _save(fig, path)


def _short_id(series_id: str, n: int = 8) -> str:
    """The last ``n`` characters of a series id (keeps a ``#k`` sub-volume suffix)."""
    series_id = str(series_id)
    return series_id if len(series_id) <= n + 1 else "…" + series_id[-n:]


def _label_text(label: Any) -> str:
    arr = np.asarray(label)
    if arr.ndim == 0:
        v = arr.item()
        return f"{v:.3g}" if isinstance(v, float) else str(v)
    return "[" + ", ".join(_label_text(x) for x in arr.ravel()[:4]) + (", …]" if arr.size > 4 else "]")


def save_batch_png(batch: Mapping[str, Any], path: str | os.PathLike[str], *, max_items: int = 8) -> Path:
    """Write the mid axial slice of each sample of a batch, titled with its label and short series id.

    Args:
        batch: a batch dict of :class:`~lightning_dicom.DicomDataModule`: ``image``
            ``[B, C, D, H, W]`` (z-y-x; channel 0 shown), optional ``label`` ``[B]`` or ``[B, K]``,
            optional ``meta`` with ``series_id`` (B strings) and ``spacing`` (``[B, 3]``, x-y-z mm,
            used for the aspect ratio).
        path: the PNG to write.
        max_items: at most this many samples are drawn (the first ones), four per row.

    Returns:
        ``path`` as a :class:`~pathlib.Path`. All panels share one grey scale and colorbar.
    """
    if "image" not in batch:
        raise KeyError("batch has no 'image' (expected a DicomDataModule batch dict)")
    images = _numpy(batch["image"])
    if images.ndim != 5:
        raise ValueError(f"batch['image'] must be [B, C, D, H, W], got shape {list(images.shape)}")
    n = min(len(images), max(1, int(max_items)))
    images = images[:n, 0]
    meta = batch.get("meta") or {}
    ids = list(meta.get("series_id", []))
    spacings = _numpy(meta["spacing"]).reshape(-1, 3) if "spacing" in meta else None
    labels = _numpy(batch["label"]) if "label" in batch else None

    ncols = min(n, 4)
    nrows = math.ceil(n / ncols)
    fig = _figure((3.0 * ncols + 1.2, 3.2 * nrows))
    axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False)).ravel()
    lo, hi = float(images.min()), float(images.max())
    if hi <= lo:
        hi = lo + 1.0
    d, h, w = images.shape[1:]
    im = None
    for i, ax in enumerate(axes):
        ax.set_xticks([])
        ax.set_yticks([])
        if i >= n:
            ax.set_axis_off()
            continue
        sx, sy = (
            (float(spacings[i][0]), float(spacings[i][1]))
            if spacings is not None and i < len(spacings)
            else (1.0, 1.0)
        )
        im = ax.imshow(
            images[i, d // 2],
            cmap="gray",
            vmin=lo,
            vmax=hi,
            extent=(0, w * sx, h * sy, 0),
            interpolation="nearest",
            aspect="equal",
        )
        parts = []
        if labels is not None and i < len(labels):
            parts.append(f"label {_label_text(labels[i])}")
        parts.append(_short_id(ids[i]) if i < len(ids) else f"sample {i}")
        ax.set_title("\n".join(parts), fontsize=9)
    assert im is not None  # at least one panel was drawn
    fig.colorbar(im, ax=list(axes), shrink=0.8).ax.tick_params(labelsize=7)
    fig.suptitle(
        f"{n} of {len(_numpy(batch['image']))} samples, mid axial slice (z={d // 2}/{d})", fontsize=10
    )
    return _save(fig, path)


def save_split_png(split: str | os.PathLike[str] | Mapping[str, Any], path: str | os.PathLike[str]) -> Path:
    """Write a bar chart of the number of series (and patients, when known) in train/val/test.

    Args:
        split: the ``split.json`` written by :class:`~lightning_dicom.DicomDataModule` (path or
            loaded dict, with ``counts`` and ``patients``), or a plain ``{"train": [series ids], ...}``.
        path: the PNG to write.

    Returns:
        ``path`` as a :class:`~pathlib.Path`. Only counts are drawn (patients are counted, never named).
    """
    doc: Mapping[str, Any] = (
        json.loads(Path(split).read_text()) if isinstance(split, (str, os.PathLike)) else split
    )
    parts = ("train", "val", "test")
    counts = doc.get("counts") or {}
    series = [int(counts[p]) if p in counts else len(doc.get(p, [])) for p in parts]
    patients = doc.get("patients")
    fig = _figure((6.0, 4.0))
    ax = fig.subplots()
    x = np.arange(len(parts), dtype=float)
    groups = [("series", series)]
    if isinstance(patients, Mapping):
        groups.append(("patients", [int(patients.get(p, 0)) for p in parts]))
    width = 0.8 / len(groups)
    for k, (name, values) in enumerate(groups):
        bars = ax.bar(x + (k - (len(groups) - 1) / 2) * width, values, width, label=name)
        ax.bar_label(bars, fontsize=8)
    ax.set_xticks(x, parts)
    ax.set_ylabel("count")
    ax.margins(y=0.15)
    if len(groups) > 1:
        ax.legend(fontsize=8)
    ax.set_title(f"split: {sum(series)} series", fontsize=11)
    return _save(fig, path)
