"""The data path: preprocessing, the volume cache, datasets, samplers, loaders, the split and labels.

Modules: :mod:`~lightning_dicom.data.preprocess` (image -> array), :mod:`~lightning_dicom.data.pipeline`
(series -> preprocessed arrays + metadata, used by the cache and the uncached dataset),
:mod:`~lightning_dicom.data.cache`, :mod:`~lightning_dicom.data.dataset`,
:mod:`~lightning_dicom.data.sampler`, :mod:`~lightning_dicom.data.loader`,
:mod:`~lightning_dicom.data.augment`, :mod:`~lightning_dicom.data.split`,
:mod:`~lightning_dicom.data.labels`.
"""

from lightning_dicom.data import preprocess
from lightning_dicom.data.cache import VolumeCache

__all__ = ["VolumeCache", "preprocess"]
