"""Label masks: reading NIfTI / DICOM SEG / RTSTRUCT onto a series' grid, linking them to series, and
preparing them for the cache.

Modules: :mod:`~lightning_dicom.masks.read` (``read_mask``), :mod:`~lightning_dicom.masks.rtstruct`
(contours to voxels), :mod:`~lightning_dicom.masks.association` (SEG/RTSTRUCT/CSV -> series),
:mod:`~lightning_dicom.masks.pipeline` (masks onto the preprocessed grid).
"""

from lightning_dicom.masks.read import read_mask, read_mask_report

__all__ = ["read_mask", "read_mask_report"]
