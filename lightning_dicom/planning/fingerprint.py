"""Dataset fingerprint: per modality, the distributions of spacing, size and orientation (from the
index, no pixel read) and foreground intensity statistics in modality units (from a sample of series
read from the source).

Rules (each with its source):

* **Spacing and size** are taken from the index (:class:`SeriesRecord`), x-y-z, in the frame the
  preprocessing will produce: unless ``preprocessing.orientation`` is ``none``, each voxel axis is
  mapped to the patient axis (L/R, A/P, S/I) its direction cosine is closest to (the axis permutation
  ``sitk.DICOMOrient`` applies), so a sagittal stack's slice spacing counts as x. Sizes are the whole
  grid (nnU-Net uses the grid cropped to the non-zero region, ``shapes_after_crop``). Geometry covers
  every selected series (headers only), also those whose pixels fail to read.
* **Intensities** need modality units (HU for CT), but the cache holds normalised values: a sample of
  up to ``series_per_modality`` series per modality (the first ones in ``sha256(series id)`` order,
  deterministic) is read from the DICOM source with :func:`read_series` (RescaleSlope/Intercept
  applied). The foreground is the union of the configured mask structures when the series has a mask
  (``data.masks``), else a body threshold: CT voxels above ``-500 HU`` (air and lung parenchyma out),
  other modalities above the Otsu threshold (``sitk.OtsuThreshold``, a well-kept implementation).
* **Sampling** follows nnU-Net's ``DatasetFingerprintExtractor.collect_foreground_intensities``
  (nnunetv2/experiment_planning/dataset_fingerprint/fingerprint_extractor.py): ``voxels_per_series``
  foreground voxels per series drawn *with replacement* (every series weighs the same),
  ``np.random.RandomState(1234)``; the pooled samples give mean, std, median, min, max and the 0.5 /
  99.5 percentiles (``np.percentile``, linear interpolation).
* **Stored**: ``<out>/fingerprint-<key>.json`` (+ one ``.npy`` of pooled samples per modality, for the
  histograms), ``key = sha256`` of the selected series' ids and file fingerprints (path, size, mtime of
  every file, see :attr:`SeriesRecord.fingerprint`), the selection, masks, orientation and
  irregular-stack settings, the sampling settings and :data:`FINGERPRINT_VERSION`. An unchanged index
  and settings load it without reading a pixel.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

from lightning_dicom import io
from lightning_dicom.config import DataConfig
from lightning_dicom.dicom.index import DicomIndex, SeriesRecord, select_series
from lightning_dicom.dicom.series import read_series
from lightning_dicom.errors import LightningDicomError
from lightning_dicom.files import atomic_write

__all__ = ["CT_BODY_THRESHOLD_HU", "FINGERPRINT_VERSION", "FingerprintSettings", "dataset_fingerprint"]

log = logging.getLogger(__name__)

#: Bumped whenever the fingerprint's content or rules change (part of the stored file's key).
FINGERPRINT_VERSION = 1
#: CT body threshold when a series has no mask: voxels above it are foreground (HU).
CT_BODY_THRESHOLD_HU = -500.0
_PERCENTILES = (0.5, 50.0, 99.5)


@dataclass(frozen=True)
class FingerprintSettings:
    """How intensities are sampled.

    Attributes:
        series_per_modality: series read per modality for intensity statistics.
        voxels_per_series: foreground voxels drawn per series (with replacement; nnU-Net's default 10,000).
        seed: seed of ``np.random.RandomState`` (nnU-Net uses 1234).
    """

    series_per_modality: int = 30
    voxels_per_series: int = 10_000
    seed: int = 1234


def oriented(rec: SeriesRecord, orientation: str) -> tuple[list[float], list[int]]:
    """``(spacing x-y-z mm, size x-y-z voxels)`` of a series in the frame after reorientation.

    Voxel axis i (column, row, slice) goes to the patient axis its direction cosine is closest to,
    as ``sitk.DICOMOrient`` permutes; ``orientation == "none"`` keeps the acquisition order.
    """
    spacing = [float(v) for v in rec.spacing]
    size = [int(rec.cols), int(rec.rows), int(rec.n_slices)]
    if orientation == "none" or len(rec.orientation) != 6:
        return spacing, size
    row, col = np.array(rec.orientation[:3], float), np.array(rec.orientation[3:], float)
    dirs = [row, col, np.cross(row, col)]
    order = [int(np.argmax(np.abs(d))) for d in dirs]
    if sorted(order) != [0, 1, 2]:  # 45-degree obliques can tie: keep the acquisition order
        return spacing, size
    out_sp, out_sz = [0.0] * 3, [0] * 3
    for i, axis in enumerate(order):
        out_sp[axis], out_sz[axis] = spacing[i], size[i]
    return out_sp, out_sz


def _key(selected: Sequence[SeriesRecord], cfg: DataConfig, settings: FingerprintSettings) -> str:
    ident = {
        "series": sorted((s.series_id, s.fingerprint) for s in selected),
        "selection": cfg.selection.model_dump(mode="json"),
        "masks": cfg.masks.model_dump(mode="json") if cfg.masks is not None else None,
        "orientation": cfg.preprocessing.orientation,
        "irregular": [cfg.preprocessing.irregular_stacks, cfg.preprocessing.gap_tolerance],
        "settings": [settings.series_per_modality, settings.voxels_per_series, settings.seed],
        "version": FINGERPRINT_VERSION,
    }
    return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:20]


def _foreground(image: sitk.Image, modality: str, mask: np.ndarray | None) -> tuple[np.ndarray, str]:
    """(foreground values, how the foreground was found) of a 3D image in modality units."""
    values = io.array_view(image)
    if values.ndim != 3:  # colour: no intensity statistics
        return np.zeros(0, np.float32), "colour"
    if mask is not None and mask.any():
        return values[mask].astype(np.float32), "mask"
    if modality == "CT":
        return values[values > CT_BODY_THRESHOLD_HU].astype(np.float32), f"HU > {CT_BODY_THRESHOLD_HU:g}"
    otsu = sitk.OtsuThreshold(sitk.Cast(image, sitk.sitkFloat32), 0, 1)  # inside 0, outside (bright) 1
    return values[io.array_view(otsu) > 0].astype(np.float32), "Otsu"


def _mask(rec: SeriesRecord, image: sitk.Image, paths: Sequence[str], cfg: DataConfig) -> np.ndarray | None:
    """Union of the configured structures found in the series' mask files, on the image's grid."""
    if cfg.masks is None or not paths:
        return None
    from lightning_dicom.masks.pipeline import match_structures
    from lightning_dicom.masks.read import read_mask

    union = None
    for p in paths:  # every file's matching segments/ROIs, merged (as the cache does)
        structures, _ = match_structures(read_mask(p, image, series_uid=rec.series_uid), cfg.masks)
        for img in structures:
            if img is not None:
                arr = io.to_array(img) > 0
                union = arr if union is None else union | arr
    return union


def _sample(recs: list[SeriesRecord], cfg: DataConfig, settings: FingerprintSettings, masks: dict) -> dict:
    rs = np.random.RandomState(settings.seed)
    samples: list[np.ndarray] = []
    how: Counter[str] = Counter()
    failed: list[list[str]] = []
    used: list[str] = []
    for rec in recs:
        try:
            image = read_series(
                rec,
                irregular=cfg.preprocessing.irregular_stacks,
                gap_tolerance=cfg.preprocessing.gap_tolerance,
            )
            fg, source = _foreground(
                image, rec.modality, _mask(rec, image, masks.get(rec.series_id, []), cfg)
            )
        except (LightningDicomError, RuntimeError, OSError) as err:
            failed.append([rec.series_id, str(err).splitlines()[-1][:200]])
            continue
        how[source] += 1
        if fg.size:
            samples.append(rs.choice(fg, settings.voxels_per_series, replace=True))
            used.append(rec.series_id)
    pooled = np.concatenate(samples).astype(np.float32) if samples else np.zeros(0, np.float32)
    stats: dict[str, Any] = {"series_read": used, "series_failed": failed, "foreground": dict(how)}
    if pooled.size:
        p005, p50, p995 = np.percentile(pooled, _PERCENTILES)
        stats.update(
            mean=float(pooled.mean()),
            std=float(pooled.std()),
            median=float(p50),
            min=float(pooled.min()),
            max=float(pooled.max()),
            percentile_00_5=float(p005),
            percentile_99_5=float(p995),
        )
    return {"stats": stats, "samples": pooled}


def _describe(values: np.ndarray) -> dict[str, list[float]]:
    """Per-axis min, 10th percentile, median, 90th percentile and max of an ``[n, 3]`` array."""
    q = np.percentile(values, [0, 10, 50, 90, 100], axis=0)
    return {
        k: [float(x) for x in row] for k, row in zip(("min", "p10", "median", "p90", "max"), q, strict=True)
    }


def dataset_fingerprint(
    cfg: DataConfig,
    out_dir: str | Path | None = None,
    settings: FingerprintSettings | None = None,
    *,
    progress: bool = False,
) -> tuple[dict[str, Any], Path]:
    """Scan (an unchanged tree reads no header), select, and fingerprint the dataset per modality.

    Returns ``(fingerprint, path of its JSON)``. ``fingerprint["modalities"][m]`` holds ``n_series``,
    ``spacings`` and ``sizes`` (per series, x-y-z, mm / voxels, in the preprocessed frame), their
    ``spacing``/``size`` summaries (min, p10, median, p90, max per axis), ``planes`` (counts of
    axial/sagittal/coronal/oblique) and ``intensity`` (see the module docstring; ``mean``... absent when
    no foreground voxel was read). ``fingerprint["cached"]`` says whether it was loaded from disk.

    Raises:
        LightningDicomError: no series is selected.
    """
    settings = settings or FingerprintSettings()
    out = Path(out_dir) if out_dir is not None else cfg.resolved_work_dir() / "plan"
    with DicomIndex(cfg.root, cfg.resolved_work_dir() / "index.sqlite") as idx:
        idx.scan(progress=progress)
        selected, _ = select_series(idx.series(), cfg.selection)
        masks: dict[str, list[str]] = {}
        if cfg.masks is not None:
            from lightning_dicom.masks.association import mask_sources

            masks = mask_sources(idx, selected, cfg.masks)[0]
    if not selected:
        raise LightningDicomError(
            f"no series selected under {[str(r) for r in cfg.root]} (see `lightning-dicom index`)"
        )
    key = _key(selected, cfg, settings)
    path = out / f"fingerprint-{key}.json"
    if path.exists():
        stored: dict[str, Any] = json.loads(path.read_text())
        stored["cached"] = True
        return stored, path
    by_mod: dict[str, list[SeriesRecord]] = {}
    for s in selected:
        by_mod.setdefault(s.modality, []).append(s)
    doc: dict[str, Any] = {
        "key": key,
        "version": FINGERPRINT_VERSION,
        "settings": settings.__dict__,
        "modalities": {},
    }
    out.mkdir(parents=True, exist_ok=True)
    for mod, recs in sorted(by_mod.items()):
        geo = [oriented(r, cfg.preprocessing.orientation) for r in recs]
        spacings = np.array([g[0] for g in geo], float)
        sizes = np.array([g[1] for g in geo], float)
        sample = sorted(recs, key=lambda r: hashlib.sha256(r.series_id.encode()).hexdigest())
        inten = _sample(sample[: settings.series_per_modality], cfg, settings, masks)
        np.save(out / f"fingerprint-{key}.{mod}.npy", inten["samples"], allow_pickle=False)
        doc["modalities"][mod] = {
            "n_series": len(recs),
            "spacings": spacings.tolist(),
            "sizes": sizes.astype(int).tolist(),
            "spacing": _describe(spacings),
            "size": _describe(sizes),
            "planes": dict(Counter(r.plane for r in recs)),
            "intensity": inten["stats"],
            "samples": f"fingerprint-{key}.{mod}.npy",
        }
    atomic_write(path, lambda tmp: Path(tmp).write_text(json.dumps(doc, indent=1)))
    doc["cached"] = False
    return doc, path
