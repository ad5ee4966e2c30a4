"""One exception family for lightning_dicom.

::

    LightningDicomError              root: catch this to catch everything we raise
    ├── ConfigError                  a config value is wrong (names the key)
    ├── NotDicomError                a file is not DICOM or cannot be parsed (.path)
    ├── SeriesError                  a series cannot be read or has bad geometry (.series_uid, .path)
    ├── CacheError                   a cache entry cannot be written or read (.path)
    ├── LabelError                   a labels CSV is malformed (.path)
    └── MaskError                    a mask (NIfTI, SEG, RTSTRUCT) cannot be read or placed on its series

Messages name the file or series UID and say what to do. They never contain a patient's
name or ID: DICOM carries PHI.
"""

from __future__ import annotations

import warnings
from pathlib import Path

__all__ = [
    "CacheError",
    "ConfigError",
    "LabelError",
    "LightningDicomError",
    "LightningDicomWarning",
    "MaskError",
    "NotDicomError",
    "SeriesError",
    "warn",
]


class LightningDicomWarning(UserWarning):
    """Warnings raised by lightning_dicom (turned into errors in the project's own tests).

    Issued for data that is read but changed or left out in a way the user should know about: an
    irregular stack resampled, a mask cropped or moved onto its series, series left out of training for
    a missing label or structure. Silence them with ``warnings.filterwarnings("ignore",
    category=LightningDicomWarning)``.
    """


def warn(message: str, *, stacklevel: int = 2) -> None:
    """Issue a :class:`LightningDicomWarning` (and nothing else: no patient identifiers in ``message``)."""
    warnings.warn(message, LightningDicomWarning, stacklevel=stacklevel + 1)


class LightningDicomError(Exception):
    """Root of every error lightning_dicom raises on purpose."""

    def __init__(self, message: str, *, path: str | Path | None = None, series_uid: str | None = None):
        self.path = str(path) if path is not None else None
        self.series_uid = series_uid
        where = []
        if series_uid:
            where.append(f"series {series_uid}")
        if self.path:
            where.append(f"file {self.path}")
        prefix = f"[{', '.join(where)}] " if where else ""
        super().__init__(prefix + message)
        self.reason = message


class ConfigError(LightningDicomError, ValueError):
    """A configuration value is invalid; the message names the key and what is expected."""


class NotDicomError(LightningDicomError):
    """A file is not DICOM, is empty or truncated, or lacks the tags needed to use it."""


class SeriesError(LightningDicomError):
    """A series cannot be read as a volume: decode failure, inconsistent geometry, missing files."""


class CacheError(LightningDicomError):
    """A cache entry cannot be written or is unreadable."""


class LabelError(LightningDicomError, ValueError):
    """A labels CSV is malformed (missing key column, no label columns)."""


class MaskError(LightningDicomError):
    """A mask cannot be read or placed on the reference (wrong series, no overlap, bad file)."""
