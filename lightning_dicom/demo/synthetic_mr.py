"""Synthetic MR series that hold several volumes: fMRI time points, echoes, diffusion b-values (standard
and vendor private tags), repeated acquisitions, and enhanced multi-frame files with mixed image types.

Each volume is given as a :class:`MRVolume` (stored values z-y-x, the header attributes that set it
apart, an offset of its slice positions along the normal); the writers put every volume of one series
in one folder (classic: one file per slice) or one file (enhanced MR), with realistic headers from
:mod:`lightning_dicom.demo.synthetic`. File names are a seeded permutation (name order is never slice
or acquisition order); InstanceNumber (0020,0013) follows acquisition order (volume-major). Geometry:
axial slices, ``spacing`` x-y-z mm, slice k of a volume at ``origin + (k * spacing_z + z_offset) * normal``
(LPS mm). Values are MR signal: modality value = stored x RescaleSlope + RescaleIntercept.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import MRImageStorage, generate_uid

from lightning_dicom.demo.synthetic import _UID_NAMESPACE, _ds, _slice_dataset

__all__ = ["ENHANCED_MR", "MRVolume", "PrivateTag", "write_enhanced_mr", "write_mr_series"]

ENHANCED_MR = "1.2.840.10008.5.1.4.1.1.4.1"


@dataclass(frozen=True)
class PrivateTag:
    """A vendor private element: (group, xx10 block of the creator, element low byte, VR, value)."""

    group: int
    creator: str
    element: int
    vr: str
    value: Any
    block: int = 0x10

    def add_to(self, ds: Dataset) -> None:
        if self.creator:
            ds.add_new((self.group, self.block), "LO", self.creator)
        value = self.value
        if self.vr == "FL" and ds.file_meta.TransferSyntaxUID.is_implicit_VR:
            value = struct.pack("<f", float(value))
        ds.add_new((self.group, self.block << 8 | self.element), self.vr, value)


def ge_b_value(b: float, creator: str = "GEMS_PARM_01", offset: bool = False) -> PrivateTag:
    """GE's b-value: (0043,xx39) IS, first value the b-value (``offset``: + 1e9 as some GE releases write)."""
    return PrivateTag(0x0043, creator, 0x39, "IS", [int(b + (1e9 if offset else 0)), 8, 0, 0])


def siemens_b_value(b: float, creator: str = "SIEMENS MR HEADER", block: int = 0x11) -> PrivateTag:
    """Siemens' b-value: (0019,xx0C) IS of "SIEMENS MR HEADER" (here in block ``block``)."""
    return PrivateTag(0x0019, creator, 0x0C, "IS", int(b), block)


def philips_b_value(b: float, creator: str = "Philips Imaging DD 001") -> PrivateTag:
    """Philips' b-value: (2001,xx03) FL of "Philips Imaging DD 001"."""
    return PrivateTag(0x2001, creator, 0x03, "FL", float(b))


@dataclass
class MRVolume:
    """One volume: stored values ``[z, y, x]`` (uint16 range), DICOM keywords set on each of its slices
    (e.g. ``{"EchoNumbers": 2, "EchoTime": "30"}``), private elements, offset (mm) of its slices along
    the normal, and (enhanced files) its frames' rescale and FrameType."""

    stored: np.ndarray
    attrs: dict[str, Any] = field(default_factory=dict)
    private: Sequence[PrivateTag] = ()
    z_offset: float = 0.0
    slope: float = 1.0
    intercept: float = 0.0
    frame_type: Sequence[str] = ("ORIGINAL", "PRIMARY", "M", "NONE")
    dim: Sequence[int] = ()  # enhanced: DimensionIndexValues without the in-stack position (default [k+1])

    @property
    def values(self) -> np.ndarray:
        """Modality values (float64, z-y-x)."""
        return self.stored.astype(np.float64) * self.slope + self.intercept


def _common(series_uid: str, study_uid: str, shape: tuple[int, int], spacing: Sequence[float]) -> dict:
    sx, sy, sz = (float(v) for v in spacing)
    return {
        "sop_class": MRImageStorage,
        "study_uid": study_uid,
        "series_uid": series_uid,
        "for_uid": generate_uid(entropy_srcs=[_UID_NAMESPACE, "frame-of-reference", study_uid]),
        "patient_id": "SYNMR001",
        "patient_name": "SYN^MR",
        "modality": "MR",
        "series_description": "SYNTHETIC MR 4D",
        "series_number": 7,
        "iop": ["1", "0", "0", "0", "1", "0"],
        "pixel_spacing": [_ds(sy), _ds(sx)],
        "thickness": _ds(sz),
        "slope": "1",
        "intercept": "0",
        "bits_stored": 16,
        "pixel_representation": 0,
        "rows": shape[0],
        "columns": shape[1],
    }


def write_mr_series(
    out_dir: str | Path,
    volumes: Sequence[MRVolume],
    *,
    spacing: Sequence[float] = (1.0, 1.0, 4.0),
    origin: Sequence[float] = (-10.0, -12.0, 30.0),
    series_uid: str | None = None,
    common_attrs: dict[str, Any] | None = None,
    seed: int = 0,
) -> list[Path]:
    """Write the volumes of one classic MR series, one file per slice, into ``out_dir``.

    Returns the files in acquisition order (volume-major: InstanceNumber 1.. of volume 0, then volume 1...).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    series_uid = series_uid or generate_uid()
    study_uid = generate_uid(entropy_srcs=[_UID_NAMESPACE, "study", series_uid])
    common = _common(series_uid, study_uid, volumes[0].stored.shape[1:], spacing)
    n_total = sum(v.stored.shape[0] for v in volumes)
    names = np.random.default_rng(seed).permutation(n_total)
    files: list[Path] = []
    k = 0
    for t, vol in enumerate(volumes):
        for z in range(vol.stored.shape[0]):
            pos = np.asarray(origin, dtype=float) + np.array([0, 0, z * float(spacing[2]) + vol.z_offset])
            sop = generate_uid(entropy_srcs=[_UID_NAMESPACE, "mr-sop", series_uid, str(t), str(z)])
            ds = _slice_dataset(
                common,
                k=k,
                sop_uid=sop,
                ipp=[_ds(v) for v in pos],
                slice_location=float(pos[2]),
                pixels=vol.stored[z].astype(np.uint16),
            )
            ds.ImageType = ["ORIGINAL", "PRIMARY", "M", "ND"]
            ds.Manufacturer = "lightning_dicom synthetic"
            ds.RescaleSlope, ds.RescaleIntercept = _ds(vol.slope), _ds(vol.intercept)
            for kw, value in {**(common_attrs or {}), **vol.attrs}.items():
                setattr(ds, kw, value)
            for tag in vol.private:
                tag.add_to(ds)
            path = out / f"MR{int(names[k]):05d}.dcm"
            ds.save_as(path, enforce_file_format=True)
            files.append(path)
            k += 1
    return files


def write_enhanced_mr(
    path: str | Path,
    volumes: Sequence[MRVolume],
    *,
    spacing: Sequence[float] = (1.0, 1.0, 4.0),
    origin: Sequence[float] = (-10.0, -12.0, 30.0),
    position_major: bool = True,
    series_uid: str | None = None,
) -> Path:
    """Write the volumes as ONE Enhanced MR Image file: per-frame PlanePositionSequence,
    FrameContentSequence (StackID "1", DimensionIndexValues [1, slice + 1, *vol.dim or [t + 1]]),
    MRImageFrameTypeSequence (FrameType), MREchoSequence (EffectiveEchoTime from ``attrs["EchoTime"]``),
    MRDiffusionSequence (DiffusionBValue from ``attrs["DiffusionBValue"]``) and PixelValueTransformationSequence
    (each volume's own slope/intercept). Frames are position-major (frame = n_volumes * slice + t) or
    volume-major.
    """
    series_uid = series_uid or generate_uid()
    study_uid = generate_uid(entropy_srcs=[_UID_NAMESPACE, "study", series_uid])
    common = _common(series_uid, study_uid, volumes[0].stored.shape[1:], spacing)
    common["sop_class"] = ENHANCED_MR
    nz = volumes[0].stored.shape[0]
    order = (
        [(t, z) for z in range(nz) for t in range(len(volumes))]
        if position_major
        else [(t, z) for t in range(len(volumes)) for z in range(nz)]
    )
    sop = generate_uid(entropy_srcs=[_UID_NAMESPACE, "mr-enh", series_uid])
    ds = _slice_dataset(
        common, k=0, sop_uid=sop, ipp=["0", "0", "0"], slice_location=0.0, pixels=volumes[0].stored[0]
    )
    for kw in ("ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing", "SliceThickness"):
        delattr(ds, kw)
    for kw in ("SpacingBetweenSlices", "SliceLocation", "RescaleSlope", "RescaleIntercept", "RescaleType"):
        delattr(ds, kw)
    ds.ImageType = ["ORIGINAL", "PRIMARY", "M", "MIXED"]
    ds.NumberOfFrames = len(order)
    ds.PixelData = np.stack([volumes[t].stored[z] for t, z in order]).astype("<u2").tobytes()
    shared, plane, measures = Dataset(), Dataset(), Dataset()
    plane.ImageOrientationPatient = common["iop"]
    measures.PixelSpacing = common["pixel_spacing"]
    measures.SliceThickness = common["thickness"]
    shared.PlaneOrientationSequence = DicomSequence([plane])
    shared.PixelMeasuresSequence = DicomSequence([measures])
    ds.SharedFunctionalGroupsSequence = DicomSequence([shared])
    frames = []
    for t, z in order:
        vol = volumes[t]
        item, pos, content, ftype, pvt = Dataset(), Dataset(), Dataset(), Dataset(), Dataset()
        xyz = np.asarray(origin, dtype=float) + np.array([0, 0, z * float(spacing[2]) + vol.z_offset])
        pos.ImagePositionPatient = [_ds(v) for v in xyz]
        content.StackID = "1"
        content.InStackPositionNumber = z + 1
        content.DimensionIndexValues = [1, z + 1, *(vol.dim or [t + 1])]
        if "TemporalPositionIndex" in vol.attrs:
            content.TemporalPositionIndex = vol.attrs["TemporalPositionIndex"]
        ftype.FrameType = list(vol.frame_type)
        pvt.RescaleSlope, pvt.RescaleIntercept, pvt.RescaleType = _ds(vol.slope), _ds(vol.intercept), "US"
        item.PlanePositionSequence = DicomSequence([pos])
        item.FrameContentSequence = DicomSequence([content])
        item.MRImageFrameTypeSequence = DicomSequence([ftype])
        item.PixelValueTransformationSequence = DicomSequence([pvt])
        if "EchoTime" in vol.attrs:
            echo = Dataset()
            echo.EffectiveEchoTime = float(vol.attrs["EchoTime"])
            item.MREchoSequence = DicomSequence([echo])
        if "DiffusionBValue" in vol.attrs:
            diff = Dataset()
            diff.DiffusionBValue = float(vol.attrs["DiffusionBValue"])
            item.MRDiffusionSequence = DicomSequence([diff])
        frames.append(item)
    ds.PerFrameFunctionalGroupsSequence = DicomSequence(frames)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(out, enforce_file_format=True)
    return out
