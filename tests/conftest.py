"""Shared fixtures: real DICOM from the pydicom wheel and small synthetic CT datasets."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from testdata import PYDICOM_FILES

from lightning_dicom.demo.synthetic import SyntheticSeries, write_dataset


@pytest.fixture(scope="session")
def pydicom_files() -> Path:
    """The pydicom wheel's test_files folder (read-only: never write into it)."""
    return PYDICOM_FILES


@pytest.fixture(scope="session")
def synthetic_dataset(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[SyntheticSeries]]:
    """Six patients, one small CT series each (16x24x24, lesion in half), labels.csv at the root."""
    root = tmp_path_factory.mktemp("synthetic_ct")
    series = write_dataset(root, n_patients=6, shape_zyx=(16, 24, 24), spacing=(1.0, 1.0, 2.0), seed=1)
    return root, series


@pytest.fixture(scope="session")
def training_dataset(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[SyntheticSeries]]:
    """Twelve patients for Trainer runs (16x32x32 voxels)."""
    root = tmp_path_factory.mktemp("training_ct")
    series = write_dataset(root, n_patients=12, shape_zyx=(16, 32, 32), spacing=(1.0, 1.0, 2.0), seed=2)
    return root, series


@pytest.fixture(scope="session", autouse=True)
def cache_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Default work dirs ($XDG_CACHE_HOME/lightning_dicom/<hash>) go to a temporary folder, never ~/.cache
    (subprocesses inherit it)."""
    mp = pytest.MonkeyPatch()
    home = tmp_path_factory.mktemp("xdg_cache")
    mp.setenv("XDG_CACHE_HOME", str(home))
    yield home
    mp.undo()
