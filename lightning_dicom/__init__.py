"""lightning_dicom: from a folder of DICOM series to a Lightning Trainer fed at memory speed.

Quick start::

    from lightning_dicom import DicomDataModule
    dm = DicomDataModule(root="/data/ct", labels="/data/labels.csv",
                         preprocessing={"spacing": [1.5, 1.5, 1.5], "window": [-1000, 400]})
    trainer.fit(model, datamodule=dm)

Segmentation: ``read_mask`` (NIfTI, DICOM SEG, RTSTRUCT onto a series' grid), ``masks=`` on the
DataModule, and ``PredictionWriter`` to bring predictions back onto each source series.

The top level holds what a user imports; everything else stays importable from its family:
``lightning_dicom.dicom`` (headers, index, series reader, UIDs), ``lightning_dicom.masks``,
``lightning_dicom.data`` (preprocess, cache, datasets, split, loader), ``lightning_dicom.demo``
(synthetic data and example models).

Conventions: arrays and tensors are z-y-x (``[C, D, H, W]``); spacing/origin are x-y-z, mm, DICOM
LPS; CT values are HU.
"""

import typing as _typing

from lightning_dicom._version import __version__
from lightning_dicom.config import DataConfig
from lightning_dicom.dicom.index import DicomIndex, SeriesRecord
from lightning_dicom.dicom.series import read_series
from lightning_dicom.errors import LightningDicomError
from lightning_dicom.geometry import to_source_geometry
from lightning_dicom.masks.read import read_mask

if _typing.TYPE_CHECKING:  # imported lazily below: pytorch_lightning costs seconds, and cache-building
    from lightning_dicom.datamodule import DicomDataModule  # and DataLoader worker processes never need it
    from lightning_dicom.writer import PredictionWriter

_LAZY = {"DicomDataModule": "lightning_dicom.datamodule", "PredictionWriter": "lightning_dicom.writer"}


def __getattr__(name: str) -> _typing.Any:
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'lightning_dicom' has no attribute {name!r}")


__all__ = [
    "DataConfig",
    "DicomDataModule",
    "DicomIndex",
    "LightningDicomError",
    "PredictionWriter",
    "SeriesRecord",
    "__version__",
    "read_mask",
    "read_series",
    "to_source_geometry",
]
