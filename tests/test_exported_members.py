"""Pins the public API: ``lightning_dicom.__all__`` changes only on purpose."""

from __future__ import annotations

import importlib
import inspect

import lightning_dicom

EXPECTED_ALL = [
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


def test_all_is_pinned() -> None:
    assert list(lightning_dicom.__all__) == EXPECTED_ALL
    assert len(set(lightning_dicom.__all__)) == len(lightning_dicom.__all__)


def test_every_exported_name_is_importable() -> None:
    module = importlib.import_module("lightning_dicom")
    for name in lightning_dicom.__all__:
        obj = getattr(module, name)
        assert obj is not None, name
        exec(f"from lightning_dicom import {name}", {})  # noqa: S102 - the import statement itself
        if name != "__version__":
            assert inspect.isclass(obj) or inspect.isfunction(obj), name
            assert obj.__module__.startswith("lightning_dicom."), (name, obj.__module__)
            assert inspect.getdoc(obj), f"{name} has no docstring"


def test_exports_are_the_defining_objects() -> None:
    from lightning_dicom import cache, config, errors, index, io

    # the package attribute ``preprocess`` is the function (it shadows the submodule's name)
    preprocess_module = importlib.import_module("lightning_dicom.preprocess")
    assert inspect.isfunction(lightning_dicom.preprocess)

    assert lightning_dicom.VolumeCache is cache.VolumeCache
    assert lightning_dicom.DataConfig is config.DataConfig
    assert lightning_dicom.ConfigError is errors.ConfigError
    assert lightning_dicom.SeriesRecord is index.SeriesRecord
    assert lightning_dicom.read_series is io.read_series
    assert lightning_dicom.preprocess is preprocess_module.preprocess
    assert issubclass(lightning_dicom.ConfigError, lightning_dicom.LightningDicomError)


def test_version() -> None:
    assert isinstance(lightning_dicom.__version__, str)
    assert [int(p) for p in lightning_dicom.__version__.split(".")[:2]] >= [0, 1]
