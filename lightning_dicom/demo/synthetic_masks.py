"""Synthetic DICOM masks for tests and demos: RTSTRUCT (pydicom) and SEG (highdicom).

Both writers take the source series' files (a :class:`~lightning_dicom.demo.synthetic.SyntheticSeries`
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
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import generate_uid
from pydicom.valuerep import format_number_as_ds

__all__ = ["RTSTRUCT_SOP_CLASS", "write_rtstruct", "write_seg"]

RTSTRUCT_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.481.3"
_DETACHED_STUDY = "1.2.840.10008.3.1.2.3.1"  # customary RTReferencedStudy SOP class
_NS = "lightning_dicom.demo.synthetic_masks"

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
    from lightning_dicom.demo.synthetic import new_dataset

    ds = new_dataset(RTSTRUCT_SOP_CLASS, sop_uid)
    ds.SOPClassUID = RTSTRUCT_SOP_CLASS
    ds.SOPInstanceUID = sop_uid
    for kw in (
        "PatientName",
        "PatientID",
        "PatientBirthDate",
        "PatientSex",
        "StudyInstanceUID",
        "StudyDate",
        "StudyTime",
        "ReferringPhysicianName",
        "StudyID",
        "AccessionNumber",
    ):
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
                    raise ValueError(
                        f"ROI {name!r} contour {cnum}: {len(pts)} points (1 = POINT, >= 3 = polygon)"
                    )
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
    label_map: bool = False,
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
        label_map: write a LABELMAP segmentation (Label Map Segmentation Storage,
            1.2.840.10008.5.1.4.1.1.66.7): one frame per slice holding segment numbers; segments must
            not overlap.
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
        raise ValueError(
            f"mask shape {(nz, ny, nx)} does not match {len(heads)} slices of "
            f"{int(heads[0].Rows)}x{int(heads[0].Columns)}"
        )
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
    kind = "LABELMAP" if label_map else "FRACTIONAL" if fractional else "BINARY"
    if label_map:  # one integer array of segment numbers (0 = background)
        if stack.ndim == 4 and stack.astype(bool).sum(axis=-1).max(initial=0) > 1:
            raise ValueError("label_map=True needs segments that do not overlap")
        stack = (
            (stack.astype(np.uint8) * np.arange(1, stack.shape[-1] + 1, dtype=np.uint8)).max(axis=-1)
            if stack.ndim == 4
            else stack.astype(np.uint8)
        )
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


# --------------------------------------------------------------------------------------------------
# a segmentation dataset: CT series with a known lesion, and its masks as SEG, RTSTRUCT and NIfTI

__all__ += ["LESION_HU", "lesion_polygons", "write_segmentation_dataset"]

_SEG_NS = "lightning_dicom.demo.synthetic_masks.dataset"
#: HU inside the lesion of :func:`write_segmentation_dataset` (plus gaussian noise, sd 10).
LESION_HU = 300.0


def _hashed(*parts: object) -> str:
    import hashlib

    return hashlib.sha1("/".join(map(str, parts)).encode()).hexdigest()[:12]


def lesion_polygons(
    mask_zyx: np.ndarray, spacing: Sequence[float], origin: Sequence[float], direction: Sequence[float]
) -> list[np.ndarray]:
    """Per-slice contours (``(N, 3)`` LPS mm) that enclose exactly the voxel centres of ``mask_zyx``.

    Each slice's mask is traced along voxel edges (a staircase polygon: right edges top to bottom,
    left edges bottom to top), so every voxel centre lies 0.5 voxel from the contour and an
    RTSTRUCT reader that fills voxel centres recovers the mask exactly. A new contour starts
    wherever a row holds no voxel, several runs, or a run that does not touch the previous row's.
    """
    mask = np.asarray(mask_zyx, dtype=bool)
    m = np.asarray(direction, dtype=np.float64).reshape(3, 3) @ np.diag(np.asarray(spacing, dtype=np.float64))
    o = np.asarray(origin, dtype=np.float64)
    out: list[np.ndarray] = []
    for k in range(mask.shape[0]):
        groups: list[list[tuple[int, int, int]]] = []  # runs (y, x0, x1) of consecutive connected rows
        for y in range(mask.shape[1]):
            xs = np.flatnonzero(mask[k, y])
            if xs.size == 0:
                continue
            breaks = np.flatnonzero(np.diff(xs) > 1)
            runs = np.split(xs, breaks + 1)
            prev = groups[-1][-1] if groups else None
            if (
                len(runs) == 1
                and prev is not None
                and prev[0] == y - 1
                and xs[0] <= prev[2] + 1
                and xs[-1] >= prev[1] - 1
            ):
                groups[-1].append((y, int(xs[0]), int(xs[-1])))
            else:
                groups.extend([[(y, int(r[0]), int(r[-1]))] for r in runs])
        for rows in groups:
            pts = []
            for y, _, x1 in rows:
                pts += [(x1 + 0.5, y - 0.5), (x1 + 0.5, y + 0.5)]
            for y, x0, _ in reversed(rows):
                pts += [(x0 - 0.5, y + 0.5), (x0 - 0.5, y - 0.5)]
            idx = np.array([(x, y, k) for x, y in pts], dtype=np.float64)
            out.append(idx @ m.T + o)
    return out


def _lesion_mask(
    shape_zyx: Sequence[int], spacing: Sequence[float], rng: np.random.Generator, radius_mm: float | None
) -> np.ndarray:
    """A seeded ellipsoid (semi-axes in mm, axis-aligned with the voxel axes) fully inside the volume."""
    shape = np.asarray(shape_zyx, dtype=np.int64)
    sp_zyx = np.asarray(spacing, dtype=np.float64)[::-1]
    extent = (shape - 1) * sp_zyx
    r = float(radius_mm) if radius_mm is not None else 0.2 * float(extent.min())
    semi = r * rng.uniform(0.85, 1.15, size=3)  # z, y, x mm
    semi = np.minimum(semi, np.maximum(0.45 * extent - sp_zyx, sp_zyx))  # keep a margin to the faces
    lo = semi / sp_zyx + 1.0
    hi = shape - 2.0 - semi / sp_zyx
    centre = np.where(hi > lo, lo + rng.uniform(0.3, 0.7, size=3) * (hi - lo), (shape - 1) / 2.0)
    zz, yy, xx = np.ogrid[: shape[0], : shape[1], : shape[2]]
    d = (
        ((zz - centre[0]) * sp_zyx[0] / semi[0]) ** 2
        + ((yy - centre[1]) * sp_zyx[1] / semi[1]) ** 2
        + ((xx - centre[2]) * sp_zyx[2] / semi[2]) ** 2
    )
    mask = d <= 1.0
    if not mask.any():
        mask[tuple(np.rint(centre).astype(int))] = True
    return mask


def write_segmentation_dataset(
    root: PathLike,
    *,
    n_patients: int = 8,
    shape_zyx: Sequence[int] = (32, 48, 48),
    spacing: Sequence[float] = (1.0, 1.0, 2.0),
    seed: int = 0,
    formats: Sequence[str] = ("seg", "rtstruct", "nifti"),
    orientations: Sequence[str | tuple[str, float]] = ("axial",),
    lesion_radius_mm: float | None = None,
) -> list[dict[str, Any]]:
    """Write CT series with one known lesion each, and the lesion as DICOM SEG, RTSTRUCT and NIfTI.

    Layout (hashed, PHI-free directory names)::

        root/<patient>/<study>/<series>/IM*.dcm         the CT series (synthetic.write_series)
        root/<patient>/<study>/<seg series>/seg.dcm      DICOM SEG, one segment "lesion"    ("seg")
        root/<patient>/<study>/<rt series>/rtstruct.dcm  RTSTRUCT, one ROI "lesion"         ("rtstruct")
        root/masks/<series>.nii.gz                       uint8 label image, 1 = lesion     ("nifti")
        root/masks.csv                                   SeriesInstanceUID,mask            ("nifti")

    ``masks.csv`` paths are relative to the CSV's folder (``masks/<...>.nii.gz``). The index skips
    SEG/RTSTRUCT objects as non-image files, so ``root`` can be handed to a
    :class:`~lightning_dicom.DicomDataModule` as is.

    Each series is :func:`~lightning_dicom.demo.synthetic.make_phantom` (no lesion of its own) plus an
    ellipsoid lesion of ``LESION_HU`` (+ noise) whose semi-axes are ``lesion_radius_mm`` (default
    20% of the smallest physical extent) x U(0.85, 1.15), placed at a seeded position fully inside
    the volume. The lesion mask is exact: the voxels whose centres lie in the ellipsoid. The
    RTSTRUCT contours trace those voxels' edges (see :func:`lesion_polygons`), so SEG, RTSTRUCT and
    NIfTI all read back as the same mask.

    Args:
        root: output folder.
        n_patients: one study with one series per patient.
        shape_zyx: voxels per series, z-y-x.
        spacing: x-y-z mm.
        seed: everything (UIDs included) is deterministic for a seed.
        formats: any of "seg", "rtstruct", "nifti".
        orientations: cycled over series, as in :func:`~lightning_dicom.demo.synthetic.write_dataset`
            ("axial", "sagittal:20", ("coronal", 15.0)).
        lesion_radius_mm: nominal lesion radius.

    Returns:
        One dict per series, in write order: ``series_uid``, ``series`` (the
        :class:`~lightning_dicom.demo.synthetic.SyntheticSeries`), ``files`` (slice order), ``mask``
        (bool ``[z, y, x]``, ``mask[k]`` on ``files[k]``), ``spacing``, ``origin``, ``direction``,
        and ``seg``, ``rtstruct``, ``nifti`` (paths, None for formats not written).
    """
    import csv

    from lightning_dicom import io
    from lightning_dicom.demo.synthetic import (
        _orientation_spec,
        direction_from_orientation,
        make_phantom,
        write_series,
    )

    unknown = set(formats) - {"seg", "rtstruct", "nifti"}
    if unknown:
        raise ValueError(f"unknown formats {sorted(unknown)}; choose from 'seg', 'rtstruct', 'nifti'")
    if n_patients < 1:
        raise ValueError("n_patients must be >= 1")
    if not orientations:
        raise ValueError("orientations must not be empty")
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    spacing_t = tuple(float(v) for v in spacing)
    shape = tuple(int(v) for v in shape_zyx)
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x5E6]))
    out: list[dict[str, Any]] = []
    for p in range(n_patients):
        patient_id = f"SYN{p + 1:04d}"
        study_uid = generate_uid(entropy_srcs=[_SEG_NS, "study", str(seed), str(p)])
        series_uid = generate_uid(entropy_srcs=[_SEG_NS, "series", str(seed), str(p)])
        study_dir = root / _hashed(_SEG_NS, seed, "patient", p) / _hashed(_SEG_NS, seed, "study", study_uid)
        name, deg = _orientation_spec(orientations[p % len(orientations)])
        direction = direction_from_orientation(name, deg)
        series_seed = int(np.random.SeedSequence([seed, p, 0x5E6]).generate_state(1)[0])
        hu = make_phantom(shape, lesion=False, seed=series_seed).astype(np.float64)
        lesion = _lesion_mask(shape, spacing_t, rng, lesion_radius_mm)
        noise = np.random.default_rng(series_seed + 1).normal(0.0, 10.0, size=hu.shape)
        hu = np.where(lesion, LESION_HU + noise, hu)
        extent = (np.asarray(shape[::-1], dtype=np.float64) - 1.0) * np.asarray(spacing_t)
        origin = -np.asarray(direction).reshape(3, 3) @ (extent / 2.0) + rng.uniform(-5.0, 5.0, size=3)
        s = write_series(
            study_dir / _hashed(_SEG_NS, seed, "series", series_uid),
            np.rint(hu).astype(np.int16),
            spacing=spacing_t,
            origin=tuple(np.round(origin, 3)),
            direction=direction,
            patient_id=patient_id,
            patient_name=f"SYN^PATIENT{p + 1:04d}",
            study_uid=study_uid,
            series_uid=series_uid,
            series_description=f"SYNTHETIC CT {name.upper()}",
            seed=series_seed,
            label=1,
        )
        item: dict[str, Any] = {
            "series_uid": series_uid,
            "series": s,
            "files": list(s.files),
            "mask": lesion,
            "spacing": s.spacing,
            "origin": s.origin,
            "direction": s.direction,
            "seg": None,
            "rtstruct": None,
            "nifti": None,
        }
        if "seg" in formats:
            item["seg"] = write_seg(
                study_dir / _hashed(_SEG_NS, seed, "seg", series_uid) / "seg.dcm", s, {"lesion": lesion}
            )
        if "rtstruct" in formats:
            polys = lesion_polygons(lesion, s.spacing, s.origin, s.direction)
            item["rtstruct"] = write_rtstruct(
                study_dir / _hashed(_SEG_NS, seed, "rt", series_uid) / "rtstruct.dcm",
                s,
                {"lesion": polys},
                label="LESION",
            )
        if "nifti" in formats:
            img = io.from_array(lesion.astype(np.uint8))
            img.SetSpacing(s.spacing)
            img.SetOrigin(s.origin)
            img.SetDirection(s.direction)
            path = root / "masks" / f"{_hashed(_SEG_NS, seed, 'mask', series_uid)}.nii.gz"
            path.parent.mkdir(parents=True, exist_ok=True)
            io.write_image(img, path)
            item["nifti"] = path
        out.append(item)
    if "nifti" in formats:
        with open(root / "masks.csv", "w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["SeriesInstanceUID", "mask"])
            writer.writerows([it["series_uid"], it["nifti"].relative_to(root).as_posix()] for it in out)
    return out


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m lightning_dicom.demo.synthetic_masks OUT [--patients N]``: a synthetic segmentation dataset."""
    import argparse

    p = argparse.ArgumentParser(
        description="Write synthetic CT series with lesion masks (SEG, RTSTRUCT, NIfTI)."
    )
    p.add_argument("out", type=Path)
    p.add_argument("--patients", type=int, default=24)
    p.add_argument("--shape", type=int, nargs=3, default=[24, 48, 48], metavar=("Z", "Y", "X"))
    p.add_argument("--spacing", type=float, nargs=3, default=[1.0, 1.0, 2.0], metavar=("X", "Y", "Z"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--formats",
        nargs="*",
        default=["seg", "rtstruct", "nifti"],
        choices=["seg", "rtstruct", "nifti"],
        help="mask files to write; none (`--formats` alone): new scans without masks",
    )
    a = p.parse_args(argv)
    recs = write_segmentation_dataset(
        a.out, n_patients=a.patients, shape_zyx=a.shape, spacing=a.spacing, seed=a.seed, formats=a.formats
    )
    masks = f"lesion masks ({', '.join(a.formats)})" if a.formats else "no masks"
    print(f"wrote {len(recs)} CT series with {masks} to {a.out}")


if __name__ == "__main__":
    main()
