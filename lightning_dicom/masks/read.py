"""Masks on a reference grid: label images (NIfTI/NRRD/MHA), DICOM SEG and DICOM RTSTRUCT.

:func:`read_mask` returns ``{structure name: binary uint8 SimpleITK.Image}``, every image on
exactly the reference's grid (same size, spacing, origin, direction). Structures are kept
separate, so overlapping ones stay overlapping. :func:`read_mask_report` does the same and also
returns the problems it met (contours off the slice planes, POINT or empty ROIs, labels lost in
resampling) as a list of strings; :func:`read_mask` logs those at WARNING level on the
``lightning_dicom.masks.read`` logger (logging, not :mod:`warnings`, so a report never aborts a run).

Placement is always by physical position (LPS mm), never by array order:

* **label images** (anything ``SimpleITK.ReadImage`` reads): SimpleITK converts NIfTI's RAS to LPS;
  a mask on another grid is resampled nearest-neighbour onto the reference. Every non-zero value
  is one structure, named ``names[value]`` or ``label_<value>``. A mask none of whose voxels lands
  on the reference raises :class:`MaskError`.
* **DICOM SEG** (BINARY, FRACTIONAL thresholded at >= 0.5, LABELMAP): read with highdicom; the
  segments' volume is built from the frames' plane positions (frame order is irrelevant) and
  resampled nearest-neighbour onto the reference. If the frames do not form a regular volume,
  they are matched to the reference's instances by their referenced SOP Instance UIDs (needs a
  :class:`~lightning_dicom.dicom.index.SeriesRecord` reference). Names: ``names[segment number]`` or
  SegmentLabel.
* **RTSTRUCT**: each ROI's CLOSED_PLANAR contours are mapped into the reference's continuous index
  space (inverse direction, spacing, origin: oblique series work) and filled on the slice they lie
  on; a voxel is inside when its centre is, by the even-odd rule over all the ROI's contours on
  that slice (a contour inside another is a hole). Edges follow a half-open rule, so a centre
  exactly on an edge is decided the same way whatever the vertex order. A contour further than
  ``plane_tolerance`` x slice spacing from every slice plane, POINT/OPEN contours and empty ROIs
  are reported, never guessed. Names: ``names[ROI number]`` or ROIName.

Referenced-series check (SEG/RTSTRUCT): when both the mask and the reference know their
FrameOfReferenceUID (0020,0052) they must match; otherwise the referenced SeriesInstanceUIDs are
compared. The reference's UIDs come from a ``SeriesRecord`` passed as ``reference``, from the
``frame_of_reference_uid``/``series_uid`` arguments, or from the image's DICOM metadata
(``0020|0052``, ``0020|000e``) when it has any (a plain ``read_series`` image of a multi-file
series has none: pass the record). A SEG/RTSTRUCT none of whose structures lands on the reference
raises :class:`MaskError` too.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

from lightning_dicom import io
from lightning_dicom.dicom.index import SeriesRecord
from lightning_dicom.dicom.uids import mask_kind
from lightning_dicom.errors import MaskError, warn
from lightning_dicom.masks.rtstruct import (
    fill_polygons,
    index_to_physical,
    physical_to_index,
    place_contours,
    rtstruct_rois,
)

__all__ = ["PLANE_TOLERANCE", "MaskError", "fill_polygons", "read_mask", "read_mask_report"]

log = logging.getLogger(__name__)

PathLike = str | os.PathLike
Reference = sitk.Image | SeriesRecord

#: Largest distance of a contour from a slice plane, as a fraction of the slice spacing.
PLANE_TOLERANCE = 0.1
#: A label image with more distinct values than this is taken for an intensity image.
MAX_LABELS = 1000

_IMAGE_SUFFIXES = (
    ".nii",
    ".nii.gz",
    ".nrrd",
    ".nhdr",
    ".mha",
    ".mhd",
    ".hdr",
    ".img",
    ".vtk",
    ".tif",
    ".tiff",
    ".png",
    ".gipl",
    ".gipl.gz",
)


@dataclass
class _Ref:
    image: sitk.Image
    frame_uid: str | None
    series_uid: str | None
    record: SeriesRecord | None

    @property
    def shape_zyx(self) -> tuple[int, int, int]:
        nx, ny, nz = self.image.GetSize()
        return nz, ny, nx


# --------------------------------------------------------------------------------------------------
# public API


def read_mask_report(
    path: PathLike,
    reference: Reference,
    *,
    names: Mapping[int, str] | None = None,
    frame_of_reference_uid: str | None = None,
    series_uid: str | None = None,
    plane_tolerance: float = PLANE_TOLERANCE,
) -> tuple[dict[str, sitk.Image], list[str]]:
    """Read a mask file onto the reference grid and report what could not be placed.

    Args:
        path: a label image SimpleITK reads (``.nii.gz``, ``.nrrd``, ``.mha``...), a DICOM SEG or an
            RTSTRUCT file.
        reference: the image the masks must match (a ``SimpleITK.Image`` in LPS, as
            :func:`~lightning_dicom.dicom.series.read_series` returns), or a ``SeriesRecord`` (read with
            ``read_series``; its FrameOfReferenceUID/SeriesInstanceUID enable the referenced-series
            check).
        names: label value / segment number / ROI number -> output name (overrides the stored name).
        frame_of_reference_uid: the reference's FrameOfReferenceUID, when ``reference`` is an image
            that does not carry it.
        series_uid: the reference's SeriesInstanceUID (same use).
        plane_tolerance: RTSTRUCT contours further than this fraction of the slice spacing from
            every slice plane are reported and not drawn.

    Returns:
        ``(masks, report)``: name -> binary uint8 image on the reference's grid, and one line per
        problem met (PHI-free).

    Raises:
        MaskError: unreadable file, unsupported kind, referenced series mismatch, or a mask that
            does not overlap the reference at all.
    """
    path = Path(path)
    ref = _resolve_reference(reference, frame_of_reference_uid, series_uid, path)
    if not path.is_file():
        raise MaskError("mask file not found", path=path)
    names = dict(names or {})
    kind, ds = _sniff(path)
    if kind == "rtstruct":
        return _read_rtstruct(path, ds, ref, names, float(plane_tolerance))
    if kind == "seg":
        return _read_seg(path, ds, ref, names)
    return _read_label_image(path, ref, names)


def read_mask(
    path: PathLike,
    reference: Reference,
    *,
    names: Mapping[int, str] | None = None,
    frame_of_reference_uid: str | None = None,
    series_uid: str | None = None,
    plane_tolerance: float = PLANE_TOLERANCE,
) -> dict[str, sitk.Image]:
    """Structure name -> binary uint8 image on exactly the reference's grid.

    Same arguments as :func:`read_mask_report`; the report lines are logged as warnings on the
    ``lightning_dicom.masks.read`` logger instead of returned.
    """
    masks, report = read_mask_report(
        path,
        reference,
        names=names,
        frame_of_reference_uid=frame_of_reference_uid,
        series_uid=series_uid,
        plane_tolerance=plane_tolerance,
    )
    for line in report:
        warn(f"{path}: {line}")
    return masks


# --------------------------------------------------------------------------------------------------
# reference, sniffing, geometry helpers


def _meta(image: sitk.Image, key: str) -> str | None:
    if image.HasMetaDataKey(key):
        value = image.GetMetaData(key).strip().rstrip("\x00").strip()
        return value or None
    return None


def _resolve_reference(
    reference: Reference, frame_uid: str | None, series_uid: str | None, path: Path
) -> _Ref:
    record = None
    if isinstance(reference, SeriesRecord):
        from lightning_dicom.dicom.series import read_series

        record = reference
        image = read_series(reference)
        frame_uid = frame_uid or reference.frame_uid or None
        series_uid = series_uid or reference.series_uid or None
    elif isinstance(reference, sitk.Image):
        image = reference
        frame_uid = frame_uid or _meta(image, "0020|0052")
        series_uid = series_uid or _meta(image, "0020|000e")
    else:
        raise TypeError(
            f"reference must be a SimpleITK.Image or a SeriesRecord, got {type(reference).__name__}"
        )
    if image.GetDimension() != 3:
        raise MaskError(f"the reference must be a 3D image, got {image.GetDimension()}D", path=path)
    return _Ref(image, frame_uid, series_uid, record)


def _sniff(path: Path) -> tuple[str, Any]:
    """'rtstruct' / 'seg' (with the pydicom dataset) or 'image'."""
    lower = path.name.lower()
    if lower.endswith(_IMAGE_SUFFIXES):
        return "image", None
    import pydicom
    from pydicom.errors import InvalidDicomError

    ds = None
    try:
        ds = pydicom.dcmread(str(path))
    except InvalidDicomError:
        try:  # files without preamble/meta (pydicom's own rtstruct.dcm)
            cand = pydicom.dcmread(str(path), force=True)
            if "SOPClassUID" in cand or "Modality" in cand:
                ds = cand
        except Exception:
            ds = None
    except Exception as err:
        raise MaskError(f"unreadable DICOM file ({type(err).__name__})", path=path) from None
    if ds is None:
        return "image", None
    sop = str(ds.get("SOPClassUID", "") or "")
    modality = str(ds.get("Modality", "") or "").upper()
    if mask_kind(sop) == "rtstruct" or modality == "RTSTRUCT":
        return "rtstruct", ds
    if mask_kind(sop) == "seg" or modality == "SEG":
        return "seg", ds
    what = getattr(getattr(ds, "SOPClassUID", None), "name", None) or sop or modality or "unknown SOP class"
    raise MaskError(f"DICOM file is neither a Segmentation nor an RT Structure Set ({what})", path=path)


def _same_grid(a: sitk.Image, b: sitk.Image) -> bool:
    if a.GetSize() != b.GetSize():
        return False
    sp = np.asarray(b.GetSpacing())
    tol = 1e-3 * float(sp.min())
    return bool(
        np.allclose(a.GetSpacing(), sp, rtol=1e-5, atol=0)
        and np.allclose(a.GetOrigin(), b.GetOrigin(), rtol=0, atol=tol)
        and np.allclose(a.GetDirection(), b.GetDirection(), rtol=0, atol=1e-5)
    )


def _on_grid(array_zyx: np.ndarray, ref: sitk.Image) -> sitk.Image:
    img = io.from_array(np.ascontiguousarray(array_zyx, dtype=np.uint8))
    img.SetOrigin(ref.GetOrigin())
    img.SetSpacing(ref.GetSpacing())
    img.SetDirection(ref.GetDirection())
    return img


def _resample_nn(image: sitk.Image, ref: sitk.Image) -> sitk.Image:
    """Nearest-neighbour resampling of ``image`` onto ``ref``'s grid (outside -> 0), same pixel type."""
    return sitk.Resample(
        image,
        ref.GetSize(),
        sitk.Transform(),
        sitk.sitkNearestNeighbor,
        ref.GetOrigin(),
        ref.GetSpacing(),
        ref.GetDirection(),
        0,
        image.GetPixelID(),
    )


def _extent_note(image: sitk.Image, nonzero_zyx: np.ndarray, ref: sitk.Image) -> str | None:
    """A note when the mask's non-zero bounding box reaches beyond the reference volume."""
    idx = np.argwhere(nonzero_zyx)
    if idx.size == 0:
        return None
    lo, hi = idx.min(0)[::-1].astype(float), idx.max(0)[::-1].astype(float)  # x-y-z
    corners = np.array([[(lo, hi)[b >> a & 1][a] for a in range(3)] for b in range(8)])
    phys = index_to_physical(image, corners)
    cidx = physical_to_index(ref, phys)
    size = np.asarray(ref.GetSize(), dtype=float)
    if np.any(cidx < -0.5 - 1e-6) or np.any(cidx > size - 0.5 + 1e-6):
        return "the mask extends beyond the reference volume; the part outside is cropped"
    return None


def _unique(name: str, used: set[str], number: int) -> str:
    name = name.strip() or f"label_{number}"
    out = name if name not in used else f"{name}#{number}"
    k = 2
    while out in used:
        out, k = f"{name}#{number}.{k}", k + 1
    used.add(out)
    return out


def _check_references(
    path: Path, kind: str, mask_frames: Iterable[str], mask_series: Iterable[str], ref: _Ref
) -> None:
    frames = {u for u in mask_frames if u}
    series = {u for u in mask_series if u}
    if frames and ref.frame_uid:
        if ref.frame_uid not in frames:
            raise MaskError(
                f"{kind} is drawn in frame of reference {', '.join(sorted(frames))} but the reference image is "
                f"in {ref.frame_uid}: pass the series it was drawn on",
                path=path,
                series_uid=ref.series_uid,
            )
        return
    if series and ref.series_uid and ref.series_uid not in series:
        raise MaskError(
            f"{kind} references series {', '.join(sorted(series))}, not the reference series: pass the series "
            "it was drawn on",
            path=path,
            series_uid=ref.series_uid,
        )


# --------------------------------------------------------------------------------------------------
# label images


def _load_label_image(path: Path) -> tuple[sitk.Image, np.ndarray, list[str]]:
    """Read a scalar 3D label image; floats become int32 labels (or a 0.5-thresholded probability map)."""
    try:
        img = io.read_image(path)
    except RuntimeError as err:
        msg = str(err).strip().splitlines()[-1][:200] if str(err).strip() else type(err).__name__
        raise MaskError(f"SimpleITK cannot read this mask: {msg}", path=path) from None
    if img.GetDimension() == 4 and img.GetSize()[3] == 1:
        img = img[:, :, :, 0]
    if img.GetDimension() == 2:
        img = sitk.JoinSeries(img)
    if img.GetDimension() != 3 or img.GetNumberOfComponentsPerPixel() != 1:
        raise MaskError(
            f"a mask must be a scalar 3D image, got {img.GetDimension()}D with "
            f"{img.GetNumberOfComponentsPerPixel()} components",
            path=path,
        )
    arr = io.to_array(img)
    notes: list[str] = []
    if arr.dtype.kind == "f":
        arr = np.nan_to_num(arr)
        if not np.all(arr == np.rint(arr)):
            if arr.min() < 0 or arr.max() > 1:
                raise MaskError(
                    "non-integer values outside [0, 1]: not a label image or probability map", path=path
                )
            notes.append("fractional values: thresholded at 0.5")
            arr = (arr >= 0.5).astype(np.uint8)
        else:
            arr = np.rint(arr).astype(np.int32)
    elif arr.dtype.itemsize > 4 or arr.dtype == np.uint32:
        if arr.size and (arr.min() < -(2**31) or arr.max() >= 2**31):
            raise MaskError("label values do not fit in int32", path=path)
        arr = arr.astype(np.int32)
    else:
        return img, arr, notes
    base = io.from_array(arr)
    base.CopyInformation(img)
    return base, arr, notes


def _read_label_image(
    path: Path, ref: _Ref, names: dict[int, str]
) -> tuple[dict[str, sitk.Image], list[str]]:
    img, arr, notes = _load_label_image(path)
    values = np.unique(arr)
    values = values[values != 0]
    if values.size > MAX_LABELS:
        raise MaskError(f"{values.size} distinct values: an intensity image, not a label image", path=path)
    if values.size == 0:
        notes.append("the mask has no non-zero voxel")
        return {}, notes
    if _same_grid(img, ref.image):
        out_arr = np.asarray(arr)
    else:
        note = _extent_note(img, np.asarray(arr) != 0, ref.image)
        if note:
            notes.append(note)
        out_arr = io.to_array(_resample_nn(img, ref.image))
        if not np.any(out_arr):
            raise MaskError(
                "the mask does not overlap the reference image (no non-zero voxel lands on its "
                "grid): wrong reference, or a mask in another space",
                path=path,
                series_uid=ref.series_uid,
            )
    masks: dict[str, sitk.Image] = {}
    used: set[str] = set()
    for v in values.tolist():
        m = out_arr == v
        name = _unique(names.get(int(v), f"label_{int(v)}"), used, int(v))
        if not m.any():
            notes.append(
                f"label {int(v)} ({name}) has no voxel on the reference grid (outside it, or thinner "
                "than a reference voxel)"
            )
        masks[name] = _on_grid(m, ref.image)
    return masks, notes


# --------------------------------------------------------------------------------------------------
# DICOM SEG


def _import_highdicom() -> Any:
    try:
        import highdicom
    except ImportError:  # pragma: no cover - exercised only without the optional dependency
        raise MaskError("reading DICOM SEG needs highdicom: pip install highdicom") from None
    return highdicom


def _volume_to_image(array_srcf: np.ndarray, affine: np.ndarray) -> sitk.Image:
    """A highdicom volume (array [slice, row, column], affine index -> LPS) as a SimpleITK image."""
    cols = affine[:3, :3]
    spacing = np.linalg.norm(cols, axis=0)  # slice, row, column
    spacing[spacing == 0] = 1.0
    unit = cols / spacing
    img = io.from_array(np.ascontiguousarray(array_srcf, dtype=np.uint8))  # z=slice, y=row, x=col
    img.SetSpacing((float(spacing[2]), float(spacing[1]), float(spacing[0])))
    img.SetDirection(tuple(np.column_stack([unit[:, 2], unit[:, 1], unit[:, 0]]).ravel().tolist()))
    img.SetOrigin(tuple(float(v) for v in affine[:3, 3]))
    return img


def _source_sop_uids(record: SeriesRecord) -> list[str]:
    import pydicom

    return [
        str(pydicom.dcmread(f, stop_before_pixels=True, specific_tags=["SOPInstanceUID"]).SOPInstanceUID)
        for f in record.files
    ]


def _seg_arrays(seg: Any, path: Path, ref: _Ref, notes: list[str]) -> tuple[np.ndarray, np.ndarray | None]:
    """(array [slice, row, column, segment], index->LPS affine) from plane positions; without a regular
    volume, (array on the reference's slices, None) from the referenced SOP instances."""
    try:
        vol = seg.get_volume(combine_segments=False, rescale_fractional=True, allow_missing_positions=True)
        return np.asarray(vol.array), np.asarray(vol.affine, dtype=float)
    except (RuntimeError, ValueError) as err:
        if ref.record is None:
            raise MaskError(
                f"the SEG frames do not form a regular volume ({str(err)[:160]}); pass the reference "
                "as a SeriesRecord to place frames by their referenced instances",
                path=path,
            ) from None
    try:
        frames = np.asarray(
            seg.get_pixels_by_source_instance(
                _source_sop_uids(ref.record), combine_segments=False, rescale_fractional=True
            )
        )
    except Exception as err:
        raise MaskError(
            f"the SEG frames can be placed neither by position nor by referenced instance ({str(err)[:160]})",
            path=path,
        ) from None
    if frames.shape[:3] != ref.shape_zyx:
        raise MaskError(f"SEG frames {frames.shape[1:3]} do not match the reference slices", path=path)
    notes.append("frames placed by referenced SOP instance (their positions do not form a regular volume)")
    return frames, None


def _read_seg(
    path: Path, ds: Any, ref: _Ref, names: dict[int, str]
) -> tuple[dict[str, sitk.Image], list[str]]:
    hd = _import_highdicom()
    try:
        seg = hd.seg.Segmentation.from_dataset(ds, copy=False)
    except Exception as err:
        raise MaskError(
            f"highdicom cannot read this Segmentation ({type(err).__name__}: {str(err)[:200]})", path=path
        ) from None
    ref_series = [str(it.get("SeriesInstanceUID", "")) for it in seg.get("ReferencedSeriesSequence", [])]
    _check_references(path, "the SEG", [str(seg.get("FrameOfReferenceUID", "") or "")], ref_series, ref)
    numbers = [int(n) for n in seg.segment_numbers]
    notes: list[str] = []
    if not numbers:
        notes.append("the SEG has no segment")
        return {}, notes
    seg_type = str(seg.SegmentationType).upper()
    frames_arr, geometry = _seg_arrays(seg, path, ref, notes)
    if frames_arr.ndim == 3:
        frames_arr = frames_arr[..., None]
    binary = frames_arr >= 0.5 if seg_type == "FRACTIONAL" else frames_arr > 0
    masks: dict[str, sitk.Image] = {}
    used: set[str] = set()
    src_any = out_any = False
    for c, number in enumerate(numbers):
        try:
            label = str(seg.get_segment_description(number).SegmentLabel)
        except Exception:
            label = f"segment_{number}"
        name = _unique(names.get(number, label), used, number)
        src = binary[..., c]
        out = src
        if geometry is not None:
            img = _volume_to_image(src, geometry)
            if not _same_grid(img, ref.image):
                out = io.to_array(_resample_nn(img, ref.image))
        if not src.any():
            notes.append(f"segment {number} ({name}) is empty")
        elif not out.any():
            notes.append(f"segment {number} ({name}) has no voxel on the reference grid")
        src_any, out_any = src_any or bool(src.any()), out_any or bool(out.any())
        masks[name] = _on_grid(out, ref.image)
    if src_any and not out_any:
        raise MaskError(
            "no segment of the SEG overlaps the reference image: wrong reference series?",
            path=path,
            series_uid=ref.series_uid,
        )
    return masks, notes


def _read_rtstruct(
    path: Path, ds: Any, ref: _Ref, names: dict[int, str], tol: float
) -> tuple[dict[str, sitk.Image], list[str]]:
    meta, contours = rtstruct_rois(ds)
    frames, series = [], []
    for fr in ds.get("ReferencedFrameOfReferenceSequence", []):
        frames.append(str(fr.get("FrameOfReferenceUID", "") or ""))
        for st in fr.get("RTReferencedStudySequence", []):
            series += [
                str(se.get("SeriesInstanceUID", "") or "") for se in st.get("RTReferencedSeriesSequence", [])
            ]
    frames += [f for _, f in meta.values()]
    _check_references(path, "the RTSTRUCT", frames, series, ref)

    nz, ny, nx = ref.shape_zyx
    image = ref.image
    notes: list[str] = []
    masks: dict[str, sitk.Image] = {}
    used: set[str] = set()
    n_closed = n_placed = 0
    for number in sorted(set(meta) | set(contours)):
        stored_name, roi_frame = meta.get(number, (f"ROI_{number}", ""))
        label = f"ROI {number} ({names.get(number, stored_name) or stored_name})"
        if roi_frame and ref.frame_uid and roi_frame != ref.frame_uid:
            notes.append(f"{label}: drawn in another frame of reference ({roi_frame}); skipped")
            continue
        items = list(contours[number].get("ContourSequence", [])) if number in contours else []
        by_slice, parts, closed = place_contours(items, image, tol)
        n_closed += closed
        if not items:
            parts.append("empty ROI (no contour)")
        if not by_slice:
            notes.append(f"{label}: " + "; ".join(parts) + "; ROI omitted")
            continue
        if parts:
            notes.append(f"{label}: " + "; ".join(parts))
        n_placed += 1
        vol = np.zeros((nz, ny, nx), dtype=np.uint8)
        for k, polys in by_slice.items():
            vol[k] = fill_polygons(polys, (ny, nx))
        if not vol.any():
            notes.append(
                f"{label}: its contours contain no voxel centre of the reference (outside the field "
                "of view or thinner than a voxel)"
            )
        masks[_unique(names.get(number, stored_name), used, number)] = _on_grid(vol, image)
    if n_closed and not n_placed:
        raise MaskError(
            "no contour of the RTSTRUCT lies on the reference's slice planes: wrong reference series? "
            + "; ".join(notes[:5]),
            path=path,
            series_uid=ref.series_uid,
        )
    return masks, notes
