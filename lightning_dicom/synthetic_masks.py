"""Synthetic DICOM masks for tests and demos: RTSTRUCT (pydicom) and SEG (highdicom).

Both writers take the source series' files (a :class:`~lightning_dicom.synthetic.SyntheticSeries`
or any sequence of paths, *in slice order*) and copy patient/study identity and frame of
reference from their headers. Coordinates are DICOM LPS mm; arrays are ``[z, y, x]`` with
``mask[k]`` belonging to ``files[k]``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, ExplicitVRLittleEndian, generate_uid
from pydicom.valuerep import format_number_as_ds

__all__ = ["RTSTRUCT_SOP_CLASS", "write_rtstruct", "write_seg"]

RTSTRUCT_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.481.3"
_DETACHED_STUDY = "1.2.840.10008.3.1.2.3.1"  # customary RTReferencedStudy SOP class
_NS = "lightning_dicom.synthetic_masks"

PathLike = str | os.PathLike
Contour = np.ndarray | tuple[str, np.ndarray]


def _files(series: Any) -> list[Path]:
    files = getattr(series, "files", series)
    out = [Path(f) for f in files]
    if not out:
        raise ValueError("the source series has no file")
    return out


def _headers(files: Sequence[Path]) -> list[Dataset]:
    import pydicom

    return [pydicom.dcmread(str(f), stop_before_pixels=True) for f in files]


def _ds(v: float) -> str:
    return format_number_as_ds(float(v)) if v != 0 else "0.0"


def write_rtstruct(
    path: PathLike,
    series: Any,
    rois: Mapping[str, Sequence[Contour]],
    *,
    frame_of_reference_uid: str | None = None,
    referenced_series_uid: str | None = None,
    references: bool = True,
    label: str = "SYNTHETIC",
    series_number: int = 90,
) -> Path:
    """Write an RT Structure Set drawn on ``series``.

    Args:
        path: output file.
        series: the source series (``.files`` in slice order, or a sequence of paths).
        rois: ROI name -> contours. A contour is an ``(N, 3)`` LPS mm array: ``N == 1`` is written as
            POINT, ``N >= 3`` as CLOSED_PLANAR (implicitly closed: do not repeat the first point), or an
            explicit ``(geometric_type, array)`` pair. An empty list writes an ROI without contours.
            ROI numbers are 1, 2, ... in mapping order.
        frame_of_reference_uid: override the FrameOfReferenceUID written (default: the series').
        referenced_series_uid: override the referenced SeriesInstanceUID (default: the series').
        references: write ReferencedFrameOfReferenceSequence and the per-ROI frame of reference; with
            False both are left out (a structure set that names no series).
        label: StructureSetLabel.
        series_number: SeriesNumber of the structure set.

    Every contour lying on a slice plane (within 1e-3 mm) gets a ContourImageSequence item naming
    that slice's SOP instance. UIDs are derived from the series and ``label`` (deterministic).
    """
    files = _files(series)
    heads = _headers(files)
    first = heads[0]
    frame_uid = frame_of_reference_uid or str(first.FrameOfReferenceUID)
    src_series = referenced_series_uid or str(first.SeriesInstanceUID)
    iop = np.asarray([float(v) for v in first.ImageOrientationPatient])
    normal = np.cross(iop[:3], iop[3:])
    plane_pos = np.array([np.dot([float(v) for v in h.ImagePositionPatient], normal) for h in heads])

    sop_uid = generate_uid(entropy_srcs=[_NS, "rtstruct", src_series, label, str(frame_uid)])
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = RTSTRUCT_SOP_CLASS
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID

    ds = Dataset()
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID = RTSTRUCT_SOP_CLASS
    ds.SOPInstanceUID = sop_uid
    for kw in ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyInstanceUID", "StudyDate",
               "StudyTime", "ReferringPhysicianName", "StudyID", "AccessionNumber"):
        setattr(ds, kw, first.get(kw, ""))
    ds.Modality = "RTSTRUCT"
    ds.SeriesInstanceUID = generate_uid(entropy_srcs=[_NS, "rtstruct-series", src_series, label])
    ds.SeriesNumber = int(series_number)
    ds.InstanceNumber = 1
    ds.Manufacturer = "lightning_dicom synthetic"
    ds.StructureSetLabel = label[:16]
    ds.StructureSetDate = "20240101"
    ds.StructureSetTime = "120000"

    def image_ref(h: Dataset) -> Dataset:
        item = Dataset()
        item.ReferencedSOPClassUID = h.SOPClassUID
        item.ReferencedSOPInstanceUID = h.SOPInstanceUID
        return item

    if references:
        rt_series = Dataset()
        rt_series.SeriesInstanceUID = src_series
        rt_series.ContourImageSequence = DicomSequence([image_ref(h) for h in heads])
        rt_study = Dataset()
        rt_study.ReferencedSOPClassUID = _DETACHED_STUDY
        rt_study.ReferencedSOPInstanceUID = first.StudyInstanceUID
        rt_study.RTReferencedSeriesSequence = DicomSequence([rt_series])
        fr = Dataset()
        fr.FrameOfReferenceUID = frame_uid
        fr.RTReferencedStudySequence = DicomSequence([rt_study])
        ds.ReferencedFrameOfReferenceSequence = DicomSequence([fr])

    ss_rois, roi_contours, observations = [], [], []
    for number, (name, contours) in enumerate(rois.items(), start=1):
        item = Dataset()
        item.ROINumber = number
        if references:
            item.ReferencedFrameOfReferenceUID = frame_uid
        item.ROIName = str(name)
        item.ROIGenerationAlgorithm = "MANUAL"
        ss_rois.append(item)

        rc = Dataset()
        rc.ROIDisplayColor = [int(v) for v in np.random.default_rng(number).integers(40, 255, 3)]
        rc.ReferencedROINumber = number
        seq = []
        is_point = False
        for cnum, contour in enumerate(contours, start=1):
            gtype, pts = contour if isinstance(contour, tuple) else (None, contour)
            pts = np.asarray(pts, dtype=np.float64).reshape(-1, 3)
            if gtype is None:
                if len(pts) == 1:
                    gtype = "POINT"
                elif len(pts) >= 3:
                    gtype = "CLOSED_PLANAR"
                else:
                    raise ValueError(f"ROI {name!r} contour {cnum}: {len(pts)} points (1 = POINT, >= 3 = polygon)")
            is_point = is_point or gtype == "POINT"
            c = Dataset()
            proj = pts @ normal
            k = int(np.argmin(np.abs(plane_pos - proj.mean())))
            if np.max(np.abs(proj - plane_pos[k])) < 1e-3:
                c.ContourImageSequence = DicomSequence([image_ref(heads[k])])
            c.ContourGeometricType = gtype
            c.NumberOfContourPoints = len(pts)
            c.ContourNumber = cnum
            c.ContourData = [_ds(v) for v in pts.ravel()]
            seq.append(c)
        if seq:
            rc.ContourSequence = DicomSequence(seq)
        roi_contours.append(rc)

        obs = Dataset()
        obs.ObservationNumber = number
        obs.ReferencedROINumber = number
        obs.ROIObservationLabel = str(name)[:16]
        obs.RTROIInterpretedType = "MARKER" if is_point else "ORGAN"
        obs.ROIInterpreter = ""
        observations.append(obs)
    ds.StructureSetROISequence = DicomSequence(ss_rois)
    ds.ROIContourSequence = DicomSequence(roi_contours)
    ds.RTROIObservationsSequence = DicomSequence(observations)

    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(out, enforce_file_format=True)
    return out


def _stack(masks: Mapping[str, np.ndarray] | np.ndarray, fractional: bool) -> tuple[list[str], np.ndarray]:
    """(segment labels, [z, y, x, segment] array)."""
    if isinstance(masks, Mapping):
        labels = [str(k) for k in masks]
        arrays = [np.asarray(v) for v in masks.values()]
    else:
        lab = np.asarray(masks)
        if lab.dtype.kind not in "iub":
            raise ValueError("a label array must be integer; pass a dict of float arrays for FRACTIONAL")
        values = [int(v) for v in np.unique(lab) if v != 0]
        labels = [f"label_{v}" for v in values]
        arrays = [lab == v for v in values]
    if not arrays:
        raise ValueError("no segment to write")
    shape = arrays[0].shape
    if len(shape) != 3 or any(a.shape != shape for a in arrays):
        raise ValueError(f"every mask must be one [z, y, x] shape, got {[a.shape for a in arrays]}")
    if fractional:
        stack = np.stack([a.astype(np.float32) for a in arrays], axis=-1)
        if stack.min() < 0 or stack.max() > 1:
            raise ValueError("fractional masks must lie in [0, 1]")
    else:
        stack = np.stack([a.astype(bool) for a in arrays], axis=-1).astype(np.uint8)
    return labels, stack


def _shuffle_frames(seg: Dataset, seed: int) -> None:
    """Permute the frames (pixel data and per-frame functional groups together), never the identity."""
    n = int(seg.NumberOfFrames)
    if n < 2:
        return
    perm = np.random.default_rng(seed).permutation(n)
    if np.array_equal(perm, np.arange(n)):
        perm = np.roll(perm, 1)
    per_frame = int(seg.Rows) * int(seg.Columns)
    raw = np.frombuffer(seg.PixelData, dtype=np.uint8)
    if int(seg.BitsAllocated) == 1:
        bits = np.unpackbits(raw, bitorder="little")[: n * per_frame].reshape(n, per_frame)
        data = np.packbits(bits[perm].ravel(), bitorder="little").tobytes()
    elif int(seg.BitsAllocated) == 8:
        data = raw[: n * per_frame].reshape(n, per_frame)[perm].tobytes()
    else:
        raise ValueError(f"cannot shuffle frames of {seg.BitsAllocated}-bit pixel data")
    if len(data) % 2:
        data += b"\x00"
    items = list(seg.PerFrameFunctionalGroupsSequence)
    seg.PerFrameFunctionalGroupsSequence = DicomSequence([items[i] for i in perm])
    seg.PixelData = data
    if "DimensionOrganizationType" in seg:
        del seg.DimensionOrganizationType  # "3D"/"TILED_FULL" promise an order the frames no longer have


def write_seg(
    path: PathLike,
    source_files: Any,
    masks: Mapping[str, np.ndarray] | np.ndarray,
    *,
    fractional: bool = False,
    shuffle_frames: bool = False,
    seed: int = 0,
    omit_empty_frames: bool = True,
    series_number: int = 91,
) -> Path:
    """Write a DICOM Segmentation of ``source_files`` with highdicom.

    Args:
        path: output file.
        source_files: the source series (``.files`` in slice order, or a sequence of paths);
            ``mask[k]`` belongs to ``files[k]``.
        masks: segment label -> ``[z, y, x]`` array (bool/0-1; floats in [0, 1] when ``fractional``),
            or one integer label array (each non-zero value one segment ``label_<v>``, in increasing
            value order). Segment numbers are 1, 2, ... in that order; segments may overlap.
        fractional: write a FRACTIONAL (PROBABILITY, max value 255) instead of a BINARY segmentation.
        shuffle_frames: permute the stored frames (seeded), so readers must use plane positions.
        seed: seed of the permutation.
        omit_empty_frames: leave out frames with no foreground (highdicom's default).
        series_number: SeriesNumber of the segmentation.
    """
    import highdicom as hd
    from pydicom.sr.codedict import codes

    files = _files(source_files)
    heads = _headers(files)
    labels, stack = _stack(masks, fractional)
    nz, ny, nx = stack.shape[:3]
    if nz != len(heads) or (ny, nx) != (int(heads[0].Rows), int(heads[0].Columns)):
        raise ValueError(f"mask shape {(nz, ny, nx)} does not match {len(heads)} slices of "
                         f"{int(heads[0].Rows)}x{int(heads[0].Columns)}")
    descriptions = [
        hd.seg.SegmentDescription(
            segment_number=i,
            segment_label=name[:64],
            segmented_property_category=codes.SCT.Tissue,
            segmented_property_type=codes.SCT.Tissue,
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.MANUAL,
        )
        for i, name in enumerate(labels, start=1)
    ]
    src_series = str(heads[0].SeriesInstanceUID)
    kind = "FRACTIONAL" if fractional else "BINARY"
    seg = hd.seg.Segmentation(
        source_images=heads,
        pixel_array=stack,
        segmentation_type=hd.seg.SegmentationTypeValues[kind],
        segment_descriptions=descriptions,
        series_instance_uid=generate_uid(entropy_srcs=[_NS, "seg-series", src_series, kind, str(seed)]),
        series_number=int(series_number),
        sop_instance_uid=generate_uid(entropy_srcs=[_NS, "seg", src_series, kind, str(seed)]),
        instance_number=1,
        manufacturer="lightning_dicom synthetic",
        manufacturer_model_name="write_seg",
        software_versions="0.1",
        device_serial_number="0",
        omit_empty_frames=omit_empty_frames,
    )
    if shuffle_frames:
        _shuffle_frames(seg, seed)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    seg.save_as(out)
    return out
