"""Pins the public API against the package's real namespace (as httpx's test_exported_members does).

A name that leaks into the top level (an import left behind, a helper) fails here, and so does a name
in ``__all__`` that is not defined by the package.
"""

from __future__ import annotations

import importlib
import inspect
import types

import lightning_dicom

EXPECTED_ALL = [
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
LAZY = {"DicomDataModule", "PredictionWriter"}  # imported on first access: pytorch_lightning costs seconds


def test_all_is_pinned() -> None:
    assert list(lightning_dicom.__all__) == EXPECTED_ALL


def test_namespace_holds_exactly_the_public_names() -> None:
    """Every public attribute of the package root is in ``__all__`` or is one of its subpackages."""
    public = {name for name in vars(lightning_dicom) if not name.startswith("_")}
    modules = {name for name in public if isinstance(getattr(lightning_dicom, name), types.ModuleType)}
    eager = set(EXPECTED_ALL) - LAZY - {"__version__"}
    assert public - modules - LAZY == eager, sorted(public - modules - LAZY ^ eager)
    # submodules that appear as attributes are only the package's own families, never a third party
    for name in modules:
        assert getattr(lightning_dicom, name).__name__ == f"lightning_dicom.{name}", name


def test_every_exported_name_is_importable_and_documented() -> None:
    module = importlib.import_module("lightning_dicom")
    for name in lightning_dicom.__all__:
        obj = getattr(module, name)
        exec(f"from lightning_dicom import {name}", {})  # noqa: S102 - the import statement itself
        if name != "__version__":
            assert inspect.isclass(obj) or inspect.isfunction(obj), name
            assert obj.__module__.startswith("lightning_dicom."), (name, obj.__module__)
            assert inspect.getdoc(obj), f"{name} has no docstring"


def test_exports_are_the_defining_objects() -> None:
    from lightning_dicom import config, errors
    from lightning_dicom.dicom import index, series

    assert lightning_dicom.DataConfig is config.DataConfig
    assert lightning_dicom.LightningDicomError is errors.LightningDicomError
    assert lightning_dicom.SeriesRecord is index.SeriesRecord
    assert lightning_dicom.read_series is series.read_series


def test_families_reexport_their_user_facing_names() -> None:
    from lightning_dicom import data, dicom, masks

    assert dicom.read_series is lightning_dicom.read_series
    assert masks.read_mask is lightning_dicom.read_mask
    assert data.VolumeCache.__module__ == "lightning_dicom.data.cache"
    # no function shadows its own module: ``data.preprocess`` is the module, its function is inside
    assert isinstance(data.preprocess, types.ModuleType)
    assert inspect.isfunction(data.preprocess.preprocess)


def test_version() -> None:
    assert isinstance(lightning_dicom.__version__, str)
    assert [int(p) for p in lightning_dicom.__version__.split(".")[:2]] >= [0, 1]
