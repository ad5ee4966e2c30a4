"""lightning_dicom: from a folder of DICOM series to a Lightning Trainer fed at memory speed.

Quick start::

    from lightning_dicom import DicomDataModule
    dm = DicomDataModule(root="/data/ct", labels="/data/labels.csv",
                         preprocessing={"spacing": [1.5, 1.5, 1.5], "window": [-1000, 400]})
    trainer.fit(model, datamodule=dm)

Segmentation: ``read_mask`` (NIfTI, DICOM SEG, RTSTRUCT onto a series' grid), ``masks=`` on the
DataModule, ``to_source_geometry`` and ``PredictionWriter`` to bring predictions back.

Conventions: arrays and tensors are z-y-x (``[C, D, H, W]``); spacing/origin are x-y-z, mm, DICOM
LPS; CT values are HU.
"""

from typing import TYPE_CHECKING, Any

from .cache import VolumeCache
from .config import (
    AugmentConfig,
    CacheConfig,
    DataConfig,
    LoaderConfig,
    MaskConfig,
    PatchConfig,
    PreprocessingConfig,
    SelectionConfig,
    SplitConfig,
)
from .errors import (
    CacheError,
    ConfigError,
    LabelError,
    LightningDicomError,
    MaskError,
    NotDicomError,
    SeriesError,
)
from .geometry import to_source_geometry
from .index import DicomIndex, SeriesRecord
from .io import read_series
from .masks import read_mask
from .preprocess import preprocess

if TYPE_CHECKING:  # imported lazily below: pytorch_lightning costs seconds, and cache-building
    from .datamodule import DicomDataModule  # and DataLoader worker processes never need it
    from .writer import PredictionWriter

__version__ = "0.1.0"

_LAZY = {"DicomDataModule": ".datamodule", "PredictionWriter": ".writer"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'lightning_dicom' has no attribute {name!r}")

__all__ = [
    "AugmentConfig",
    "CacheConfig",
    "CacheError",
    "ConfigError",
    "DataConfig",
    "DicomDataModule",
    "DicomIndex",
    "LabelError",
    "LightningDicomError",
    "LoaderConfig",
    "MaskConfig",
    "MaskError",
    "NotDicomError",
    "PatchConfig",
    "PredictionWriter",
    "PreprocessingConfig",
    "SelectionConfig",
    "SeriesError",
    "SeriesRecord",
    "SplitConfig",
    "VolumeCache",
    "__version__",
    "preprocess",
    "read_mask",
    "read_series",
    "to_source_geometry",
]
