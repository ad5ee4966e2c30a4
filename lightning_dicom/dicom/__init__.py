"""Reading DICOM: per-file headers, the SQLite index of series, and the series reader.

Modules: :mod:`~lightning_dicom.dicom.uids` (SOP class and transfer syntax UIDs),
:mod:`~lightning_dicom.dicom.parser` (the fast Part-10 header parser),
:mod:`~lightning_dicom.dicom.header` (one file's header fields and checks),
:mod:`~lightning_dicom.dicom.index` (walk, SQLite, series grouping),
:mod:`~lightning_dicom.dicom.series` (a series' voxels and geometry as a ``SimpleITK.Image``).
"""

from lightning_dicom.dicom.header import read_header
from lightning_dicom.dicom.index import DicomIndex, SeriesRecord, select_series
from lightning_dicom.dicom.series import read_series

__all__ = ["DicomIndex", "SeriesRecord", "read_header", "read_series", "select_series"]
