"""RT Structure Set contours to voxels: polygons of ROIContourSequence (3006,0039) placed on a series' grid.

Contour points (3006,0050) are LPS mm; each polygon is mapped to continuous index coordinates of the
slice it lies on (within a plane tolerance) and filled by the even-odd rule at voxel centres, as
plastimatch and dcmrtstruct2nii do. Used by :func:`lightning_dicom.masks.read.read_mask`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

import numpy as np
import SimpleITK as sitk

__all__ = ["fill_polygons", "index_to_physical", "physical_to_index", "place_contours", "rtstruct_rois"]


def _affine(image: sitk.Image) -> tuple[np.ndarray, np.ndarray]:
    """(M, origin) with physical = M @ index + origin (index x-y-z)."""
    d = np.asarray(image.GetDirection(), dtype=float).reshape(3, 3)
    return d @ np.diag(image.GetSpacing()), np.asarray(image.GetOrigin(), dtype=float)


def index_to_physical(image: sitk.Image, idx_xyz: np.ndarray) -> np.ndarray:
    m, o = _affine(image)
    return idx_xyz @ m.T + o


def physical_to_index(image: sitk.Image, pts: np.ndarray) -> np.ndarray:
    """Continuous x-y-z index of LPS points (N, 3): inverse of spacing/direction/origin."""
    m, o = _affine(image)
    return (pts - o) @ np.linalg.inv(m).T


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


def rtstruct_rois(ds: Any) -> tuple[dict[int, tuple[str, str]], dict[int, Any]]:
    """ROI number -> (name, referenced frame of reference) and ROI number -> ROIContourSequence item."""
    meta: dict[int, tuple[str, str]] = {}
    for it in ds.get("StructureSetROISequence", []):
        try:
            number = int(it.ROINumber)
        except (AttributeError, TypeError, ValueError):
            continue
        meta[number] = (
            str(it.get("ROIName", "") or ""),
            str(it.get("ReferencedFrameOfReferenceUID", "") or ""),
        )
    contours: dict[int, Any] = {}
    for it in ds.get("ROIContourSequence", []):
        try:
            contours[int(it.ReferencedROINumber)] = it
        except (AttributeError, TypeError, ValueError):
            continue
    return meta, contours


def place_contours(
    items: list[Any], image: sitk.Image, tol: float
) -> tuple[dict[int, list[np.ndarray]], list[str], int]:
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
        idx = physical_to_index(image, pts)
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
    parts = [
        f"{count} {gtype} contour(s) not rasterised (only CLOSED_PLANAR are)"
        for gtype, count in sorted(types.items())
    ]
    for what, count in sorted(issues.items()):
        extra = ""
        if what == "between slice planes":
            extra = f" (up to {worst['between']:.2f} x slice spacing from the nearest; tolerance {tol:g})"
        elif what.startswith("not parallel"):
            extra = f" (spanning up to {worst['tilted']:.2f} slice spacings)"
        parts.append(f"{count} contour(s) {what}{extra}, not drawn")
    return by_slice, parts, n_closed
