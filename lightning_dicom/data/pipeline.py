"""The data path of one series, in one place: read -> preprocess -> mask -> arrays + metadata.

Both the cache (:meth:`lightning_dicom.data.cache.VolumeCache.build_one`) and the uncached
:class:`~lightning_dicom.data.dataset.SeriesDataset` call :func:`process_series`, so a cached entry and
an uncached sample of the same series under the same config are the same arrays.

Steps: :func:`lightning_dicom.dicom.series.read_series` (modality units, LPS, mm; irregular stacks
per ``preprocessing.irregular_stacks``), :func:`lightning_dicom.data.preprocess.preprocess`
(reorient, resample, clip, normalise, crop/pad -> float32 ``[C, D, H, W]``), then, when masks are
configured, every mask file linked to the series read onto the source grid
(:func:`lightning_dicom.masks.read.read_mask`) and carried onto the preprocessed grid
(:func:`lightning_dicom.masks.pipeline.mask_on_grid`: uint8 ``[1 or K, D, H, W]``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lightning_dicom.config import MaskConfig, PreprocessingConfig
from lightning_dicom.dicom.index import SeriesRecord

__all__ = ["ProcessedSeries", "process_series"]


@dataclass
class ProcessedSeries:
    """One series after the pipeline.

    Attributes:
        image: float32 ``[C, D, H, W]`` (z-y-x), preprocessed.
        meta: geometry of the preprocessed grid and of the source (see
            :func:`lightning_dicom.data.preprocess.preprocess`) plus the series' identity.
        mask: uint8 ``[1 or K, D, H, W]`` on the same grid, or None without masks.
        missing: configured structures found in none of the series' mask files.
    """

    image: np.ndarray
    meta: dict[str, Any]
    mask: np.ndarray | None = None
    missing: list[str] = field(default_factory=list)


def process_series(
    rec: SeriesRecord,
    preprocessing: PreprocessingConfig,
    *,
    masks: MaskConfig | None = None,
    mask_sources: Sequence[str] = (),
) -> ProcessedSeries:
    """Read, preprocess and (with ``masks``) label one series.

    Args:
        rec: the series (from the index), or a
            :class:`~lightning_dicom.subjects.resolve.SubjectRecord` (several series as channels: see
            :func:`lightning_dicom.subjects.pipeline.process_subject`).
        preprocessing: the preprocessing config.
        masks: the mask config, or None for images only.
        mask_sources: mask files (NIfTI, DICOM SEG, RTSTRUCT) linked to this series.

    Raises:
        lightning_dicom.errors.SeriesError: the series cannot be read.
        lightning_dicom.errors.MaskError: a mask file cannot be read or placed.
    """
    from lightning_dicom.data.preprocess import preprocess
    from lightning_dicom.dicom.series import read_series
    from lightning_dicom.subjects.resolve import SubjectRecord

    subject = isinstance(rec, SubjectRecord)
    if isinstance(rec, SubjectRecord):  # several series as channels, on the reference input's grid
        from lightning_dicom.subjects.pipeline import process_subject

        array, meta, image = process_subject(rec, preprocessing)
    else:
        image = read_series(
            rec, irregular=preprocessing.irregular_stacks, gap_tolerance=preprocessing.gap_tolerance
        )
        array, meta = preprocess(image, preprocessing)
    meta.update({"series_id": rec.series_id, "series_uid": rec.series_uid, "study_uid": rec.study_uid})
    meta["acquisition"] = rec.acquisition()  # echo, b-value, temporal index, image type (sidecar, batch meta)
    if masks is None:
        return ProcessedSeries(array, meta)
    from lightning_dicom.masks.pipeline import mask_on_grid, match_structures
    from lightning_dicom.masks.read import read_mask

    found: dict[str, Any] = {}
    for src in mask_sources:
        found.update(
            read_mask(  # a subject's mask may reference any of its inputs: checked by frame of reference
                src,
                image,
                series_uid=None if subject else rec.series_uid,
                frame_of_reference_uid=rec.frame_uid or None,
            )
        )
    structures, missing = match_structures(found, masks)
    return ProcessedSeries(array, meta, mask_on_grid(structures, meta, array.shape[1:], masks), missing)
