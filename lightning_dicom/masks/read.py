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
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

from lightning_dicom.dicom.index import SeriesRecord
from lightning_dicom.dicom.uids import mask_kind
from lightning_dicom.errors import MaskError

__all__ = ["PLANE_TOLERANCE", "MaskError", "fill_polygons", "read_mask", "read_mask_report"]

log = logging.getLogger(__name__)

PathLike = str | os.PathLike
Reference = sitk.Image | SeriesRecord

#: Largest distance of a contour from a slice plane, as a fraction of the slice spacing.
PLANE_TOLERANCE = 0.1
#: A label image with more distinct values than this is taken for an intensity image.
MAX_LABELS = 1000

_IMAGE_SUFFIXES = (".nii", ".nii.gz", ".nrrd", ".nhdr", ".mha", ".mhd", ".hdr", ".img", ".vtk",
                   ".tif", ".tiff", ".png", ".gipl", ".gipl.gz")


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
    masks, report = read_mask_report(path, reference, names=names,
                                     frame_of_reference_uid=frame_of_reference_uid,
                                     series_uid=series_uid, plane_tolerance=plane_tolerance)
    for line in report:
        log.warning("%s: %s", path, line)
    return masks


# --------------------------------------------------------------------------------------------------
# reference, sniffing, geometry helpers


def _meta(image: sitk.Image, key: str) -> str | None:
    if image.HasMetaDataKey(key):
        value = image.GetMetaData(key).strip().rstrip("\x00").strip()
        return value or None
    return None


def _resolve_reference(reference: Reference, frame_uid: str | None, series_uid: str | None,
                       path: Path) -> _Ref:
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
        raise TypeError(f"reference must be a SimpleITK.Image or a SeriesRecord, got {type(reference).__name__}")
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
    return bool(np.allclose(a.GetSpacing(), sp, rtol=1e-5, atol=0)
                and np.allclose(a.GetOrigin(), b.GetOrigin(), rtol=0, atol=tol)
                and np.allclose(a.GetDirection(), b.GetDirection(), rtol=0, atol=1e-5))


def _on_grid(array_zyx: np.ndarray, ref: sitk.Image) -> sitk.Image:
    img = sitk.GetImageFromArray(np.ascontiguousarray(array_zyx, dtype=np.uint8))
    img.SetOrigin(ref.GetOrigin())
    img.SetSpacing(ref.GetSpacing())
    img.SetDirection(ref.GetDirection())
    return img


def _resample_nn(image: sitk.Image, ref: sitk.Image) -> sitk.Image:
    """Nearest-neighbour resampling of ``image`` onto ``ref``'s grid (outside -> 0), same pixel type."""
    return sitk.Resample(image, ref.GetSize(), sitk.Transform(), sitk.sitkNearestNeighbor,
                         ref.GetOrigin(), ref.GetSpacing(), ref.GetDirection(), 0, image.GetPixelID())


def _extent_note(image: sitk.Image, nonzero_zyx: np.ndarray, ref: sitk.Image) -> str | None:
    """A note when the mask's non-zero bounding box reaches beyond the reference volume."""
    idx = np.argwhere(nonzero_zyx)
    if idx.size == 0:
        return None
    lo, hi = idx.min(0)[::-1].astype(float), idx.max(0)[::-1].astype(float)  # x-y-z
    corners = np.array([[(lo, hi)[b >> a & 1][a] for a in range(3)] for b in range(8)])
    phys = _index_to_physical(image, corners)
    cidx = _physical_to_index(ref, phys)
    size = np.asarray(ref.GetSize(), dtype=float)
    if np.any(cidx < -0.5 - 1e-6) or np.any(cidx > size - 0.5 + 1e-6):
        return "the mask extends beyond the reference volume; the part outside is cropped"
    return None


def _affine(image: sitk.Image) -> tuple[np.ndarray, np.ndarray]:
    """(M, origin) with physical = M @ index + origin (index x-y-z)."""
    d = np.asarray(image.GetDirection(), dtype=float).reshape(3, 3)
    return d @ np.diag(image.GetSpacing()), np.asarray(image.GetOrigin(), dtype=float)


def _index_to_physical(image: sitk.Image, idx_xyz: np.ndarray) -> np.ndarray:
    m, o = _affine(image)
    return idx_xyz @ m.T + o


def _physical_to_index(image: sitk.Image, pts: np.ndarray) -> np.ndarray:
    """Continuous x-y-z index of LPS points (N, 3): inverse of spacing/direction/origin."""
    m, o = _affine(image)
    return (pts - o) @ np.linalg.inv(m).T


def _unique(name: str, used: set[str], number: int) -> str:
    name = name.strip() or f"label_{number}"
    out = name if name not in used else f"{name}#{number}"
    k = 2
    while out in used:
        out, k = f"{name}#{number}.{k}", k + 1
    used.add(out)
    return out


def _check_references(path: Path, kind: str, mask_frames: Iterable[str], mask_series: Iterable[str],
                      ref: _Ref) -> None:
    frames = {u for u in mask_frames if u}
    series = {u for u in mask_series if u}
    if frames and ref.frame_uid:
        if ref.frame_uid not in frames:
            raise MaskError(
                f"{kind} is drawn in frame of reference {', '.join(sorted(frames))} but the reference image is "
                f"in {ref.frame_uid}: pass the series it was drawn on", path=path, series_uid=ref.series_uid)
        return
    if series and ref.series_uid and ref.series_uid not in series:
        raise MaskError(
            f"{kind} references series {', '.join(sorted(series))}, not the reference series: pass the series "
            "it was drawn on", path=path, series_uid=ref.series_uid)


# --------------------------------------------------------------------------------------------------
# label images


def _load_label_image(path: Path) -> tuple[sitk.Image, np.ndarray, list[str]]:
    """Read a scalar 3D label image; floats become int32 labels (or a 0.5-thresholded probability map)."""
    try:
        img = sitk.ReadImage(str(path))
    except RuntimeError as err:
        msg = str(err).strip().splitlines()[-1][:200] if str(err).strip() else type(err).__name__
        raise MaskError(f"SimpleITK cannot read this mask: {msg}", path=path) from None
    if img.GetDimension() == 4 and img.GetSize()[3] == 1:
        img = img[:, :, :, 0]
    if img.GetDimension() == 2:
        img = sitk.JoinSeries(img)
    if img.GetDimension() != 3 or img.GetNumberOfComponentsPerPixel() != 1:
        raise MaskError(f"a mask must be a scalar 3D image, got {img.GetDimension()}D with "
                        f"{img.GetNumberOfComponentsPerPixel()} components", path=path)
    arr = sitk.GetArrayFromImage(img)
    notes: list[str] = []
    if arr.dtype.kind == "f":
        arr = np.nan_to_num(arr)
        if not np.all(arr == np.rint(arr)):
            if arr.min() < 0 or arr.max() > 1:
                raise MaskError("non-integer values outside [0, 1]: not a label image or probability map",
                                path=path)
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
    base = sitk.GetImageFromArray(arr)
    base.CopyInformation(img)
    return base, arr, notes


def _read_label_image(path: Path, ref: _Ref, names: dict[int, str]) -> tuple[dict[str, sitk.Image], list[str]]:
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
        out_arr = sitk.GetArrayFromImage(_resample_nn(img, ref.image))
        if not np.any(out_arr):
            raise MaskError("the mask does not overlap the reference image (no non-zero voxel lands on its "
                            "grid): wrong reference, or a mask in another space", path=path,
                            series_uid=ref.series_uid)
    masks: dict[str, sitk.Image] = {}
    used: set[str] = set()
    for v in values.tolist():
        m = out_arr == v
        name = _unique(names.get(int(v), f"label_{int(v)}"), used, int(v))
        if not m.any():
            notes.append(f"label {int(v)} ({name}) has no voxel on the reference grid (outside it, or thinner "
                         "than a reference voxel)")
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
    img = sitk.GetImageFromArray(np.ascontiguousarray(array_srcf, dtype=np.uint8))  # z=slice, y=row, x=col
    img.SetSpacing((float(spacing[2]), float(spacing[1]), float(spacing[0])))
    img.SetDirection(tuple(np.column_stack([unit[:, 2], unit[:, 1], unit[:, 0]]).ravel().tolist()))
    img.SetOrigin(tuple(float(v) for v in affine[:3, 3]))
    return img


def _source_sop_uids(record: SeriesRecord) -> list[str]:
    import pydicom

    return [str(pydicom.dcmread(f, stop_before_pixels=True, specific_tags=["SOPInstanceUID"]).SOPInstanceUID)
            for f in record.files]


def _seg_arrays(seg: Any, path: Path, ref: _Ref, notes: list[str]) -> tuple[np.ndarray, np.ndarray | None]:
    """(array [slice, row, column, segment], index->LPS affine) from plane positions; without a regular
    volume, (array on the reference's slices, None) from the referenced SOP instances."""
    try:
        vol = seg.get_volume(combine_segments=False, rescale_fractional=True, allow_missing_positions=True)
        return np.asarray(vol.array), np.asarray(vol.affine, dtype=float)
    except (RuntimeError, ValueError) as err:
        if ref.record is None:
            raise MaskError(f"the SEG frames do not form a regular volume ({str(err)[:160]}); pass the reference "
                            "as a SeriesRecord to place frames by their referenced instances", path=path) from None
    try:
        frames = np.asarray(seg.get_pixels_by_source_instance(
            _source_sop_uids(ref.record), combine_segments=False, rescale_fractional=True))
    except Exception as err:
        raise MaskError(f"the SEG frames can be placed neither by position nor by referenced instance "
                        f"({str(err)[:160]})", path=path) from None
    if frames.shape[:3] != ref.shape_zyx:
        raise MaskError(f"SEG frames {frames.shape[1:3]} do not match the reference slices", path=path)
    notes.append("frames placed by referenced SOP instance (their positions do not form a regular volume)")
    return frames, None


def _read_seg(path: Path, ds: Any, ref: _Ref, names: dict[int, str]) -> tuple[dict[str, sitk.Image], list[str]]:
    hd = _import_highdicom()
    try:
        seg = hd.seg.Segmentation.from_dataset(ds, copy=False)
    except Exception as err:
        raise MaskError(f"highdicom cannot read this Segmentation ({type(err).__name__}: {str(err)[:200]})",
                        path=path) from None
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
                out = sitk.GetArrayFromImage(_resample_nn(img, ref.image))
        if not src.any():
            notes.append(f"segment {number} ({name}) is empty")
        elif not out.any():
            notes.append(f"segment {number} ({name}) has no voxel on the reference grid")
        src_any, out_any = src_any or bool(src.any()), out_any or bool(out.any())
        masks[name] = _on_grid(out, ref.image)
    if src_any and not out_any:
        raise MaskError("no segment of the SEG overlaps the reference image: wrong reference series?",
                        path=path, series_uid=ref.series_uid)
    return masks, notes


# --------------------------------------------------------------------------------------------------
# RTSTRUCT


def fill_polygons(polygons: Iterable[np.ndarray], shape_yx: tuple[int, int]) -> np.ndarray:
    """Even-odd fill of voxel centres by polygons in continuous index coordinates.

    Args:
        polygons: arrays (N, 2) of (x, y) = (column, row) continuous indices; implicitly closed.
            All polygons together decide parity: a polygon inside another is a hole.
        shape_yx: (rows, columns) of the output.

    Returns:
        bool array [rows, columns]: True where the pixel centre (integer column, row) is inside.

    A scanline fill: every edge is crossed with the rows it spans (half-open in y, so a vertex on a
    row counts once), each crossing toggles the pixels strictly to its right, and parity is a
    cumulative sum along the row. Exact (no sampling), independent of vertex order.
    """
    ny, nx = int(shape_yx[0]), int(shape_yx[1])
    out = np.zeros((ny, nx), dtype=bool)
    xs, ys, xe, ye = [], [], [], []
    for p in polygons:
        p = np.asarray(p, dtype=np.float64)
        if p.ndim != 2 or p.shape[0] < 3:
            continue
        q = np.roll(p, -1, axis=0)
        xs.append(p[:, 0])
        ys.append(p[:, 1])
        xe.append(q[:, 0])
        ye.append(q[:, 1])
    if not xs or ny == 0 or nx == 0:
        return out
    x0, y0, x1, y1 = (np.concatenate(v) for v in (xs, ys, xe, ye))
    ylo, yhi = np.minimum(y0, y1), np.maximum(y0, y1)
    j0 = np.clip(np.ceil(ylo), 0, ny).astype(np.int64)  # rows j with ylo <= j < yhi
    j1 = np.clip(np.ceil(yhi), 0, ny).astype(np.int64)
    n = j1 - j0
    keep = np.nonzero(n > 0)[0]
    if keep.size == 0:
        return out
    counts = n[keep]
    e = np.repeat(keep, counts)
    starts = np.repeat(np.cumsum(counts) - counts, counts)
    rows = j0[e] + (np.arange(e.size) - starts)
    t = (rows - y0[e]) / (y1[e] - y0[e])
    xc = x0[e] + t * (x1[e] - x0[e])
    r0, r1 = int(rows.min()), int(rows.max()) + 1
    c_lo = int(np.clip(np.floor(xc.min()) + 1, 0, nx))
    c_hi = int(np.clip(np.floor(xc.max()) + 1, 0, nx))
    if c_hi <= c_lo:
        return out
    toggle = np.clip(np.floor(xc).astype(np.int64) + 1, c_lo, c_hi) - c_lo
    cnt = np.zeros((r1 - r0, c_hi - c_lo + 1), dtype=np.int32)
    np.add.at(cnt, (rows - r0, toggle), 1)
    out[r0:r1, c_lo:c_hi] = (np.cumsum(cnt, axis=1)[:, :-1] & 1).astype(bool)
    return out


def _contour_points(item: Any) -> np.ndarray | None:
    """ContourData as (N, 3) floats; parses the raw DS bytes directly when still unconverted (fast)."""
    try:
        elem = item.get_item(0x30060050)
    except KeyError:
        return None
    if elem is None:
        return None
    raw = getattr(elem, "value", None)
    try:
        if isinstance(raw, (bytes, bytearray)):
            vals = np.array([float(v) for v in bytes(raw).split(b"\\") if v.strip()], dtype=np.float64)
        else:
            vals = np.asarray(item.ContourData, dtype=np.float64).ravel()
    except (TypeError, ValueError):
        return None
    if vals.size == 0 or vals.size % 3 or not np.all(np.isfinite(vals)):
        return None
    return vals.reshape(-1, 3)


def _rtstruct_rois(ds: Any) -> tuple[dict[int, tuple[str, str]], dict[int, Any]]:
    """ROI number -> (name, referenced frame of reference) and ROI number -> ROIContourSequence item."""
    meta: dict[int, tuple[str, str]] = {}
    for it in ds.get("StructureSetROISequence", []):
        try:
            number = int(it.ROINumber)
        except (AttributeError, TypeError, ValueError):
            continue
        meta[number] = (str(it.get("ROIName", "") or ""), str(it.get("ReferencedFrameOfReferenceUID", "") or ""))
    contours: dict[int, Any] = {}
    for it in ds.get("ROIContourSequence", []):
        try:
            contours[int(it.ReferencedROINumber)] = it
        except (AttributeError, TypeError, ValueError):
            continue
    return meta, contours


def _place_contours(items: list[Any], image: sitk.Image,
                    tol: float) -> tuple[dict[int, list[np.ndarray]], list[str], int]:
    """Group one ROI's CLOSED_PLANAR contours by reference slice, as (column, row) index polygons.

    Returns (slice -> polygons, report fragments, number of CLOSED_PLANAR contours).
    """
    nz = image.GetSize()[2]
    n_closed = 0
    by_slice: dict[int, list[np.ndarray]] = defaultdict(list)
    issues: dict[str, int] = defaultdict(int)
    types: dict[str, int] = defaultdict(int)
    worst = {"between": 0.0, "tilted": 0.0}
    for c in items:
        gtype = str(c.get("ContourGeometricType", "") or "").upper()
        if gtype != "CLOSED_PLANAR":
            types[gtype or "untyped"] += 1
            continue
        n_closed += 1
        pts = _contour_points(c)
        if pts is None or len(pts) < 3:
            issues["malformed (fewer than 3 points or unreadable ContourData)"] += 1
            continue
        idx = _physical_to_index(image, pts)
        k = int(np.rint(np.median(idx[:, 2])))
        off = float(np.max(np.abs(idx[:, 2] - k)))
        if off > tol:
            span = float(np.ptp(idx[:, 2]))
            if span > tol:
                issues["not parallel to the reference's slices"] += 1
                worst["tilted"] = max(worst["tilted"], span)
            else:
                issues["between slice planes"] += 1
                worst["between"] = max(worst["between"], off)
            continue
        if not 0 <= k < nz:
            issues["on a plane outside the reference's slices"] += 1
            continue
        by_slice[k].append(idx[:, :2])
    parts = [f"{count} {gtype} contour(s) not rasterised (only CLOSED_PLANAR are)"
             for gtype, count in sorted(types.items())]
    for what, count in sorted(issues.items()):
        extra = ""
        if what == "between slice planes":
            extra = f" (up to {worst['between']:.2f} x slice spacing from the nearest; tolerance {tol:g})"
        elif what.startswith("not parallel"):
            extra = f" (spanning up to {worst['tilted']:.2f} slice spacings)"
        parts.append(f"{count} contour(s) {what}{extra}, not drawn")
    return by_slice, parts, n_closed


def _read_rtstruct(path: Path, ds: Any, ref: _Ref, names: dict[int, str],
                   tol: float) -> tuple[dict[str, sitk.Image], list[str]]:
    meta, contours = _rtstruct_rois(ds)
    frames, series = [], []
    for fr in ds.get("ReferencedFrameOfReferenceSequence", []):
        frames.append(str(fr.get("FrameOfReferenceUID", "") or ""))
        for st in fr.get("RTReferencedStudySequence", []):
            series += [str(se.get("SeriesInstanceUID", "") or "") for se in st.get("RTReferencedSeriesSequence", [])]
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
        by_slice, parts, closed = _place_contours(items, image, tol)
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
            notes.append(f"{label}: its contours contain no voxel centre of the reference (outside the field "
                         "of view or thinner than a voxel)")
        masks[_unique(names.get(number, stored_name), used, number)] = _on_grid(vol, image)
    if n_closed and not n_placed:
        raise MaskError("no contour of the RTSTRUCT lies on the reference's slice planes: wrong reference series? "
                        + "; ".join(notes[:5]), path=path, series_uid=ref.series_uid)
    return masks, notes
