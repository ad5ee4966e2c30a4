"""Synthetic stacks that exercise the reader's harder paths: irregular stacks (missing slices, uneven
gaps, gantry tilt) and enhanced multi-frame files, with the same realistic headers as
:mod:`lightning_dicom.demo.synthetic`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset
from pydicom.uid import CTImageStorage, MRImageStorage, generate_uid

from lightning_dicom.demo.synthetic import (
    _UID_NAMESPACE,
    IDENTITY_DIRECTION,
    SyntheticSeries,
    _direction_matrix,
    _ds,
    _slice_dataset,
    _to_stored,
    write_series,
)

__all__ = ["IrregularSeries", "write_irregular_series", "write_multiframe"]


@dataclass(frozen=True)
class IrregularSeries(SyntheticSeries):
    """A series written by :func:`write_irregular_series`: ``positions[k]`` is the ImagePositionPatient
    of slice ``k`` (LPS mm, as written: the floats of the DS strings). ``origin`` is ``positions[0]``;
    ``spacing[2]`` is the nominal slice spacing written as SliceThickness/SpacingBetweenSlices."""

    positions: tuple[tuple[float, float, float], ...] = ()


def write_irregular_series(
    out_dir: Path | str,
    hu: np.ndarray,
    *,
    depths: Sequence[float] | None = None,
    tilt_deg: float = 0.0,
    positions: Sequence[Sequence[float]] | None = None,
    spacing: Sequence[float] = (0.8, 0.8, 2.5),
    origin: Sequence[float] = (-20.0, -20.0, -40.0),
    direction: Sequence[float] = IDENTITY_DIRECTION,
    **kwargs: object,
) -> IrregularSeries:
    """Write ``hu`` (``[z, y, x]``) like :func:`write_series`, but with slices at arbitrary positions.

    Slice ``k`` lies at ``origin + depths[k] * normal + depths[k] * tan(tilt_deg) * col`` (``col`` = the
    column cosine, column 1 of ``direction``): ``depths`` (mm along the normal, default ``k *
    spacing[2]``) make missing slices or non-uniform gaps, ``tilt_deg`` a gantry-tilted (sheared) stack
    whose slices slide along the column direction in proportion to their depth. ``positions`` (one
    LPS point per slice) replaces both. Every other argument goes to :func:`write_series`; then each
    file's ImagePositionPatient and SliceLocation are rewritten. ``files[k]`` holds slice ``k``; the
    caller keeps slices in increasing order along the normal (else ``files`` is not in slice order).
    """
    import pydicom

    vol = np.asarray(hu)
    if vol.ndim != 3 or 0 in vol.shape:
        raise ValueError(f"hu must be a non-empty 3D [z, y, x] array, got shape {vol.shape}")
    nz = vol.shape[0]
    mat = _direction_matrix(direction)
    col, normal = mat[:, 1], mat[:, 2]
    if positions is not None:
        if depths is not None or tilt_deg:
            raise ValueError("give positions, or depths/tilt_deg, not both")
        pts = np.asarray(positions, dtype=np.float64)
    else:
        if not -90.0 < float(tilt_deg) < 90.0:
            raise ValueError(f"tilt_deg must be in (-90, 90), got {tilt_deg}")
        d = np.arange(nz) * float(spacing[2]) if depths is None else np.asarray(depths, dtype=np.float64)
        if d.shape != (nz,):
            raise ValueError(f"depths must hold {nz} values (one per slice), got shape {d.shape}")
        shear = np.tan(np.deg2rad(float(tilt_deg)))
        pts = np.asarray(origin, dtype=np.float64) + np.outer(d, normal) + np.outer(d * shear, col)
    if pts.shape != (nz, 3) or not np.isfinite(pts).all():
        raise ValueError(f"positions must be {nz} finite LPS points, got shape {pts.shape}")
    ipps = [[_ds(v) for v in p] for p in pts]
    base = write_series(
        out_dir,
        vol,
        spacing=spacing,
        origin=tuple(float(v) for v in pts[0]),
        direction=direction,
        **kwargs,  # type: ignore[arg-type]
    )
    written = tuple(tuple(float(v) for v in ipp) for ipp in ipps)
    for path, ipp, p in zip(base.files, ipps, written, strict=True):
        ds = pydicom.dcmread(path)
        ds.ImagePositionPatient = ipp
        ds.SliceLocation = _ds(float(np.asarray(p) @ normal))
        ds.save_as(path, enforce_file_format=True)
    fields = {name: getattr(base, name) for name in SyntheticSeries.__dataclass_fields__}
    fields["origin"] = written[0]
    return IrregularSeries(**fields, positions=written)  # type: ignore[arg-type]


def write_multiframe(
    path: Path | str,
    hu: np.ndarray,
    *,
    spacing: Sequence[float] = (0.8, 0.8, 2.5),
    origin: Sequence[float] = (-20.0, -20.0, -40.0),
    direction: Sequence[float] = IDENTITY_DIRECTION,
    frame_order: Sequence[int] | None = None,
    per_frame_positions: bool = True,
    patient_id: str = "SYN0001",
    patient_name: str = "SYN^PATIENT0001",
    study_uid: str | None = None,
    series_uid: str | None = None,
    modality: str = "MR",
    rescale_slope: float = 1.0,
    rescale_intercept: float = -1024.0,
    bits_stored: int = 16,
    pixel_representation: int = 0,
) -> SyntheticSeries:
    """Write ``hu`` (``[z, y, x]``) as ONE multi-frame file at ``path``; same conventions as :func:`write_series`.

    With ``per_frame_positions`` (default) the file is an Enhanced CT/MR image: orientation, pixel
    measures and rescale in SharedFunctionalGroupsSequence, each frame's ImagePositionPatient in
    PerFrameFunctionalGroupsSequence/PlanePositionSequence. Otherwise it is a classic multi-frame
    image: top-level ImagePositionPatient (slice 0), ImageOrientationPatient, PixelSpacing,
    SpacingBetweenSlices and rescale, frames contiguous along the normal (``frame_order`` must then be
    None).  ``frame_order[i]`` is the slice stored as frame ``i`` (default: slice order), so a reader
    must sort frames by position.  Returns the ground truth (``files == [path]``, ``hu`` in slice order).
    """
    vol = np.asarray(hu)
    if vol.ndim != 3 or 0 in vol.shape:
        raise ValueError(f"hu must be a non-empty 3D [z, y, x] array, got shape {vol.shape}")
    nz, ny, nx = vol.shape
    order = list(range(nz)) if frame_order is None else [int(k) for k in frame_order]
    if sorted(order) != list(range(nz)):
        raise ValueError(f"frame_order must be a permutation of range({nz}), got {order}")
    if not per_frame_positions and order != list(range(nz)):
        raise ValueError(
            "a classic multi-frame file (per_frame_positions=False) stores frames in slice order"
        )
    sx, sy, sz = (float(v) for v in spacing)
    if min(sx, sy, sz) <= 0:
        raise ValueError(f"spacing must be positive, got {tuple(spacing)}")
    mat = _direction_matrix(direction)
    stored = _to_stored(
        vol,
        slope=float(rescale_slope),
        intercept=float(rescale_intercept),
        bits_stored=int(bits_stored),
        pixel_representation=int(pixel_representation),
    )
    hu_rt = np.rint(stored.astype(np.float64) * rescale_slope + rescale_intercept).astype(np.int16)
    modality = modality.upper()
    sop_class = "1.2.840.10008.5.1.4.1.1.4.1" if modality == "MR" else "1.2.840.10008.5.1.4.1.1.2.1"
    if not per_frame_positions:
        sop_class = MRImageStorage if modality == "MR" else CTImageStorage
    study_uid = study_uid or generate_uid()
    series_uid = series_uid or generate_uid()
    sop_uid = generate_uid(entropy_srcs=[_UID_NAMESPACE, "sop", series_uid, "multiframe"])
    row, col, normal = mat[:, 0], mat[:, 1], mat[:, 2]
    origin_v = np.asarray(origin, dtype=np.float64)
    ipps = [[_ds(v) for v in origin_v + k * sz * normal] for k in range(nz)]
    common = {
        "sop_class": sop_class,
        "study_uid": study_uid,
        "series_uid": series_uid,
        "for_uid": generate_uid(entropy_srcs=[_UID_NAMESPACE, "frame-of-reference", study_uid]),
        "patient_id": patient_id,
        "patient_name": patient_name,
        "modality": modality,
        "series_description": f"SYNTHETIC {modality} MULTI-FRAME",
        "series_number": 1,
        "iop": [_ds(v) for v in (*row, *col)],
        "pixel_spacing": [_ds(sy), _ds(sx)],
        "thickness": _ds(sz),
        "slope": _ds(rescale_slope),
        "intercept": _ds(rescale_intercept),
        "bits_stored": int(bits_stored),
        "pixel_representation": int(pixel_representation),
        "rows": ny,
        "columns": nx,
    }
    ds = _slice_dataset(
        common,
        k=0,
        sop_uid=sop_uid,
        ipp=ipps[0],
        slice_location=float(origin_v @ normal),
        pixels=stored[order[0]],
    )
    ds.NumberOfFrames = nz
    ds.PixelData = np.ascontiguousarray(stored[order], dtype=stored.dtype.newbyteorder("<")).tobytes()
    if per_frame_positions:
        from pydicom.sequence import Sequence as DicomSequence

        for keyword in (
            "ImagePositionPatient",
            "ImageOrientationPatient",
            "PixelSpacing",
            "SliceThickness",
            "SpacingBetweenSlices",
            "SliceLocation",
            "RescaleSlope",
            "RescaleIntercept",
            "RescaleType",
            "InstanceNumber",
        ):
            delattr(ds, keyword)
        ds.InstanceNumber = 1
        shared = Dataset()
        plane = Dataset()
        plane.ImageOrientationPatient = common["iop"]
        measures = Dataset()
        measures.PixelSpacing = common["pixel_spacing"]
        measures.SliceThickness = common["thickness"]
        measures.SpacingBetweenSlices = common["thickness"]
        rescale = Dataset()
        rescale.RescaleSlope = common["slope"]
        rescale.RescaleIntercept = common["intercept"]
        rescale.RescaleType = "HU" if modality == "CT" else "US"
        shared.PlaneOrientationSequence = DicomSequence([plane])
        shared.PixelMeasuresSequence = DicomSequence([measures])
        shared.PixelValueTransformationSequence = DicomSequence([rescale])
        ds.SharedFunctionalGroupsSequence = DicomSequence([shared])
        frames = []
        for k in order:
            item, pos, content = Dataset(), Dataset(), Dataset()
            pos.ImagePositionPatient = ipps[k]
            content.InStackPositionNumber = k + 1
            content.StackID = "1"
            content.DimensionIndexValues = [1, k + 1]
            item.PlanePositionSequence = DicomSequence([pos])
            item.FrameContentSequence = DicomSequence([content])
            frames.append(item)
        ds.PerFrameFunctionalGroupsSequence = DicomSequence(frames)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(out, enforce_file_format=True)
    return SyntheticSeries(
        files=[out],
        hu=hu_rt,
        spacing=(sx, sy, sz),
        origin=tuple(float(v) for v in ipps[0]),  # type: ignore[arg-type]
        direction=tuple(float(v) for v in mat.ravel()),
        patient_id=patient_id,
        patient_name=patient_name,
        study_uid=study_uid,
        series_uid=series_uid,
        label=0,
    )
