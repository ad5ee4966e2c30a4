"""Where the tests' real DICOM comes from: one helper for every test file (as pydicom's get_testdata_file).

* the pydicom wheel's ``pydicom/data/test_files`` (:data:`PYDICOM_FILES`, :func:`get_testdata`);
* ``../shared/realdata`` beside the repository (:data:`REALDATA`, :func:`get_realdata`): real scanner
  data from public DICOM-to-NIfTI validation collections (read-only; copy a file before changing it).
"""

from __future__ import annotations

from pathlib import Path

import pydicom
import pytest

PYDICOM_FILES = Path(pydicom.__file__).parent / "data" / "test_files"
REALDATA = Path(__file__).resolve().parents[1].parent / "shared" / "realdata"


def get_testdata(name: str) -> Path:
    """Path of a file or folder that ships inside the pydicom wheel (``pydicom/data/test_files``)."""
    path = PYDICOM_FILES / name
    if not path.exists():
        raise FileNotFoundError(path)
    return path


def get_realdata(name: str) -> Path:
    """Path of a file or folder of ``../shared/realdata``; the calling test is skipped when it is absent."""
    path = REALDATA / name
    if not path.exists():
        pytest.skip(
            f"real data {name!r} not found under {REALDATA} (the shared/ folder beside the repository)"
        )
    return path
