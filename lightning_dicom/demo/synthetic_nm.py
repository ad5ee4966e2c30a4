"""Synthetic nuclear medicine (NM Image Storage) multi-frame files: a RECON TOMO volume whose plane is
given in DetectorInformationSequence (0054,0022) (and optionally at top level too), with a signed
SpacingBetweenSlices (0018,0088), or frames that are not slices (DYNAMIC: TimeSliceVector).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import NuclearMedicineImageStorage, generate_uid

from lightning_dicom.demo.synthetic import (
    _UID_NAMESPACE,
    IDENTITY_DIRECTION,
    _direction_matrix,
    _ds,
    new_dataset,
)

__all__ = ["SyntheticNM", "write_nm"]


@dataclass(frozen=True)
class SyntheticNM:
    """An NM file written by :func:`write_nm`: ``frames[k]`` (stored values) is centred at
    ``positions[k]`` (first voxel, LPS mm) = ``origin + k * spacing_between_slices * normal``."""

    path: Path
    frames: np.ndarray
    positions: tuple[tuple[float, float, float], ...]
    direction: tuple[float, ...]
    pixel_spacing: tuple[float, float]
    series_uid: str


def write_nm(
    path: Path | str,
    frames: np.ndarray,
    *,
    origin: Sequence[float] = (-100.0, -80.0, 50.0),
    direction: Sequence[float] = IDENTITY_DIRECTION,
    pixel_spacing: Sequence[float] = (4.0, 4.0),
    spacing_between_slices: float = -4.0,
    detector_sequence: bool = True,
    top_level: bool = False,
    kind: str = "RECON TOMO",
) -> SyntheticNM:
    """Write ``frames`` ([n, rows, cols], 0..65535) as one NM multi-frame file.

    Args:
        origin: centre of the first voxel of frame 0 (LPS mm).
        direction: 3x3 row-major, columns = row cosine, column cosine, row x column.
        pixel_spacing: x, y (mm).
        spacing_between_slices: SpacingBetweenSlices (0018,0088), signed (frame k at origin + k x it x normal).
        detector_sequence: write ImageOrientation/PositionPatient in DetectorInformationSequence (0054,0022).
        top_level: write them at top level too.
        kind: ImageType value 3: "RECON TOMO" (FrameIncrementPointer SliceVector) or "DYNAMIC"
            (FrameIncrementPointer TimeSliceVector: frames are time frames at one position).
    """
    arr = np.asarray(frames)
    if arr.ndim != 3 or 0 in arr.shape:
        raise ValueError(f"frames must be a non-empty [n, rows, cols] array, got shape {arr.shape}")
    if kind not in ("RECON TOMO", "DYNAMIC"):
        raise ValueError(f"kind must be 'RECON TOMO' or 'DYNAMIC', got {kind!r}")
    n, rows, cols = arr.shape
    mat = _direction_matrix(direction)
    iop = [_ds(v) for v in (*mat[:, 0], *mat[:, 1])]
    ipp = [_ds(v) for v in origin]
    uid = generate_uid()
    sop_uid = generate_uid()
    ds = new_dataset(NuclearMedicineImageStorage, sop_uid)
    ds.ImageType = ["ORIGINAL", "PRIMARY", kind, "EMISSION"]
    ds.SOPClassUID, ds.SOPInstanceUID = NuclearMedicineImageStorage, sop_uid
    ds.Modality, ds.Manufacturer, ds.SeriesDescription = (
        "NM",
        "lightning_dicom synthetic",
        f"synthetic NM {kind}",
    )
    ds.PatientName, ds.PatientID = "SYN^NM", "SYNNM"
    ds.StudyInstanceUID = generate_uid(entropy_srcs=[_UID_NAMESPACE, uid, "study"])
    ds.SeriesInstanceUID = uid
    ds.FrameOfReferenceUID = generate_uid(entropy_srcs=[_UID_NAMESPACE, uid, "for"])
    ds.SeriesNumber, ds.InstanceNumber = 1, 1
    ds.NumberOfFrames = n
    if kind == "RECON TOMO":
        ds.FrameIncrementPointer = 0x00540080  # SliceVector
        ds.SliceVector = list(range(1, n + 1))
        ds.NumberOfSlices = n
    else:
        ds.FrameIncrementPointer = 0x00540100  # TimeSliceVector
        ds.TimeSliceVector = list(range(1, n + 1))
    ds.SliceThickness = _ds(abs(spacing_between_slices))
    ds.SpacingBetweenSlices = _ds(spacing_between_slices)
    if detector_sequence:
        det = Dataset()
        det.ImagePositionPatient, det.ImageOrientationPatient = ipp, iop
        ds.DetectorInformationSequence = DicomSequence([det])
    if top_level:
        ds.ImagePositionPatient, ds.ImageOrientationPatient = ipp, iop
    sx, sy = (float(v) for v in pixel_spacing)
    ds.PixelSpacing = [_ds(sy), _ds(sx)]
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.Rows, ds.Columns = rows, cols
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.PixelData = np.ascontiguousarray(arr, dtype="<u2").tobytes()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(out, enforce_file_format=True)
    p0 = np.asarray([float(v) for v in ipp])
    step = float(spacing_between_slices) if kind == "RECON TOMO" else 0.0
    positions = tuple(tuple(float(v) for v in p0 + k * step * mat[:, 2]) for k in range(n))
    return SyntheticNM(out, arr.copy(), positions, tuple(mat.ravel().tolist()), (sx, sy), uid)  # type: ignore[arg-type]
