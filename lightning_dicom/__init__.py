"""lightning_dicom: from a folder of DICOM series to a Lightning Trainer fed at memory speed.

Quick start::

    from lightning_dicom import DicomDataModule
    dm = DicomDataModule(root="/data/ct", labels="/data/labels.csv",
                         preprocessing={"spacing": [1.5, 1.5, 1.5], "window": [-1000, 400]})
    trainer.fit(model, datamodule=dm)

Conventions: arrays and tensors are z-y-x (``[C, D, H, W]``); spacing/origin are x-y-z, mm, DICOM
LPS; CT values are HU.
"""

from .cache import VolumeCache
from .config import (
    CacheConfig,
    DataConfig,
    LoaderConfig,
    PatchConfig,
    PreprocessingConfig,
    SelectionConfig,
    SplitConfig,
)
from .datamodule import DicomDataModule
from .errors import (
    CacheError,
    ConfigError,
    LabelError,
    LightningDicomError,
    NotDicomError,
    SeriesError,
)
from .index import DicomIndex, SeriesRecord
from .io import read_series
from .preprocess import preprocess

__version__ = "0.1.0"

__all__ = [
    "CacheConfig",
    "CacheError",
    "ConfigError",
    "DataConfig",
    "DicomDataModule",
    "DicomIndex",
    "LabelError",
    "LightningDicomError",
    "LoaderConfig",
    "NotDicomError",
    "PatchConfig",
    "PreprocessingConfig",
    "SelectionConfig",
    "SeriesError",
    "SeriesRecord",
    "SplitConfig",
    "VolumeCache",
    "__version__",
    "preprocess",
    "read_series",
]
