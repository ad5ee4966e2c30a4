"""Nuclear medicine (NM Image Storage) geometry: where NM keeps position and orientation, and which
multi-frame NM files are one 3D stack.

* Position/orientation: an NM image may carry ImagePositionPatient (0020,0032) and
  ImageOrientationPatient (0020,0037) only inside DetectorInformationSequence (0054,0022) (NM Detector
  module, PS3.3 C.8.4.10; GDCM reads them there too). They are taken from its first item when the
  top-level elements are absent.
* Frames: the frames of an NM multi-frame file are slices of one volume only when FrameIncrementPointer
  (0028,0009) sequences them by SliceVector (0054,0080) and every other vector it names holds a single
  value (RECON TOMO; PS3.3 C.8.4.8); without FrameIncrementPointer, when ImageType (0008,0008) value 3
  is RECON TOMO. Other NM files (STATIC, DYNAMIC, GATED, WHOLE BODY, TOMO projections, several energy
  windows or detectors, RECON GATED TOMO with several time slots) are not one 3D stack and are refused
  with that reason rather than stacked.
* Frame ``k`` of a RECON TOMO file lies at ``IPP + k x SpacingBetweenSlices (0018,0088) x normal``
  with the sign of SpacingBetweenSlices kept (negative in NM: the frames run against the normal, as
  GDCM reads them), normal = row x column cosines (:mod:`lightning_dicom.dicom.index`).
"""

from __future__ import annotations

from typing import Any

__all__ = ["SLICE_VECTOR", "detector_item", "frames_problem"]

#: SliceVector (0054,0080)
SLICE_VECTOR = 0x00540080
_VECTOR_NAMES = {
    0x00540010: "EnergyWindowVector",
    0x00540020: "DetectorVector",
    0x00540030: "PhaseVector",
    0x00540050: "RotationVector",
    0x00540060: "RRIntervalVector",
    0x00540070: "TimeSlotVector",
    0x00540080: "SliceVector",
    0x00540090: "AngularViewVector",
    0x00540100: "TimeSliceVector",
}


def detector_item(ds: Any) -> Any:
    """The first DetectorInformationSequence (0054,0022) item (a dataset; ``{}`` when absent): the NM
    Detector module's ImageOrientationPatient and ImagePositionPatient of the image plane."""
    try:
        return ds.DetectorInformationSequence[0]
    except (AttributeError, IndexError, KeyError, TypeError):
        return {}


def _pointers(value: Any) -> list[int]:
    if value is None or value == "":
        return []
    values = value if isinstance(value, (list, tuple)) or hasattr(value, "__iter__") else [value]
    try:
        return [int(v) for v in values]
    except (TypeError, ValueError):
        return []


def frames_problem(ds: Any, n_frames: int) -> str | None:
    """Why the frames of an NM multi-frame file are not the slices of one volume (None when they are,
    or when the file is not NM multi-frame, or its NM attributes cannot be read)."""
    try:
        return _frames_problem(ds, n_frames)
    except Exception:  # a malformed value: judged by the positions alone, never a reason to lose the file
        return None


def _frames_problem(ds: Any, n_frames: int) -> str | None:
    if str(ds.get("Modality", "") or "").upper() != "NM" or n_frames < 2:
        return None
    raw = ds.get("ImageType") or []
    values = raw.split("\\") if isinstance(raw, str) else list(raw)
    image_type = [str(v).strip().upper() for v in values]
    kind = image_type[2] if len(image_type) > 2 else "?"
    pointers = _pointers(ds.get("FrameIncrementPointer"))
    if not pointers:
        if kind == "RECON TOMO":
            return None
        return f"NM {kind} image of {n_frames} frames without FrameIncrementPointer (0028,0009): not one 3D stack"
    varying = []
    for tag in pointers:
        if tag == SLICE_VECTOR:
            continue
        try:
            values = ds[tag].value
            distinct = (
                len(set(values)) if isinstance(values, (list, tuple)) or hasattr(values, "__len__") else 1
            )
        except (KeyError, TypeError):
            distinct = 2  # named but absent: unknown, so not assumed constant
        if distinct > 1:
            varying.append(_VECTOR_NAMES.get(tag, f"({tag >> 16:04X},{tag & 0xFFFF:04X})"))
    if SLICE_VECTOR in pointers and not varying:
        return None
    what = ", ".join(varying) or "no SliceVector (0054,0080)"
    return (
        f"NM {kind} image: its {n_frames} frames are sequenced by {what} (FrameIncrementPointer "
        "(0028,0009)): projections, time frames or several volumes, not one 3D stack"
    )
