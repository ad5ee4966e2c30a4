"""Is a stack of slices a regular volume? Gaps, gantry tilt against rounding noise, missing positions.

Every rule here works on the positions the index keeps (ImagePositionPatient (0020,0032) of each slice,
or of each frame, LPS mm) and on ImageOrientationPatient (0020,0037); nothing reads pixels.

Gaps: the distance between neighbouring slices along the normal (row x column cosines) is compared
with the median gap; a gap further than ``gap_tolerance`` x median from it (default 5 %) makes the
stack irregular (missing slices or variable spacing). Positions closer than 1e-3 mm along the normal
are duplicates; when every slice sits at one position the stack is a time series (2D+t) or repeated
acquisitions, never a 3D volume.

Tilt versus noise: ImagePositionPatient is a decimal string, and scanners round it (to 0.1 mm, or to
6 significant digits), so the in-plane offsets of slice origins jitter by a few hundredths of a mm
that do not grow with depth. A gantry tilt (or a sheared reconstruction) moves each slice origin
within the slice plane in proportion to its depth. The in-plane offsets ``o_k`` (the origin of slice
``k`` minus the first's, less its component along the normal) are fitted by least squares as
``o_k = a + b d_k`` (``d_k``: depth along the normal): the slope ``b`` is the tilt (``atan |b|``
degrees), the residuals are the noise. The stack is sheared when the fitted drift over the whole stack
(``|b|`` x depth span) or any residual exceeds :func:`shear_tolerance_mm`: a quarter of the smallest
pixel spacing, and at least :data:`SHEAR_TOLERANCE_MM`. Below that, no voxel of the stack read as a
regular volume is off by more than a quarter pixel. A 1 degree tilt of a 12-slice stack with 7 mm gaps
drifts 1.3 mm (1.6 pixels of 0.86 mm) and is detected; rounding of +-0.07 mm drifts at most 0.19 mm and
is read (tests/test_stack_geometry.py). A stack with 2 slices has no noise estimate: its one offset is
the drift.

Missing positions: slices of a cross-sectional series (CT, MR, PT; any file that has one of the two
tags) that lack ImagePositionPatient or ImageOrientationPatient are kept together as one volume that is refused naming the missing tag
(:func:`missing_geometry`), never split into one-slice volumes nor stacked by a guess (SliceLocation
(0020,1041) gives the depth but not the in-plane origin; file order and InstanceNumber are not
positions). One such file alone is a 2D image (origin 0, identity direction), as are images of
projection modalities (CR, DX, US, XA, NM planar, secondary captures).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from lightning_dicom.dicom import uids
from lightning_dicom.dicom.volumes import mixed_reason
from lightning_dicom.errors import SeriesError

if TYPE_CHECKING:
    from lightning_dicom.dicom.index import SeriesRecord

__all__ = [
    "CROSS_SECTIONAL",
    "GAP_TOLERANCE",
    "MAX_GAP_RATIO",
    "SHEAR_PIXEL_FRACTION",
    "SHEAR_TOLERANCE_MM",
    "Resampling",
    "check_mode",
    "in_plane_fit",
    "missing_geometry",
    "plan",
    "shear_tolerance_mm",
    "slice_of_stack",
]

#: Default largest relative deviation of a slice gap from the median before a stack is irregular.
GAP_TOLERANCE = 0.05
#: Smallest tolerance (mm) on the in-plane drift and scatter of slice origins (gantry tilt vs noise).
SHEAR_TOLERANCE_MM = 0.05
#: Tolerance on the in-plane drift and scatter of slice origins, in units of the smallest pixel spacing.
SHEAR_PIXEL_FRACTION = 0.25
#: ``irregular="resample"`` refuses a hole wider than this many median gaps (more than 4 consecutive
#: missing slices): interpolating across it would invent anatomy.
MAX_GAP_RATIO = 5.0
#: Two positions along the normal closer than this (mm) are the same slice position.
DUPLICATE_MM = 1e-3
#: Modalities whose images are slices of a volume (a file without position is a missing slice position).
#: Not NM: its planar images (STATIC, WHOLE BODY) are projections without a position.
CROSS_SECTIONAL = frozenset({"CT", "MR", "PT"})


@dataclass(frozen=True)
class Resampling:
    """How an irregular stack is resampled (see :mod:`lightning_dicom.dicom.series`)."""

    depth: np.ndarray  # (n,) distance of each acquired slice from the first along the normal, mm (ascending)
    shift: np.ndarray  # (n, 2) in-plane offset of each slice origin from the first's: mm along row, column
    spacing: float  # output slice spacing: the median gap
    n_out: int  # output slices
    missing: int  # slices missing from holes that are whole multiples of the median gap
    tilt_deg: float  # shear of the stack, degrees (0 when not sheared)
    reason: str


def check_mode(irregular: str, gap_tolerance: float) -> None:
    """ValueError unless ``irregular`` is "reject"/"resample" and ``gap_tolerance`` a number in (0, 1)."""
    if irregular not in ("reject", "resample"):
        raise ValueError(f"irregular must be 'reject' or 'resample', got {irregular!r}")
    if (
        isinstance(gap_tolerance, bool)
        or not isinstance(gap_tolerance, numbers.Real)
        or not 0 < float(gap_tolerance) < 1
    ):
        raise ValueError(f"gap_tolerance must be a number in (0, 1), got {gap_tolerance!r}")


def shear_tolerance_mm(pixel_spacing: Sequence[float]) -> float:
    """Largest in-plane drift or scatter (mm) of slice origins read as rounding noise (module docstring)."""
    return max(SHEAR_TOLERANCE_MM, SHEAR_PIXEL_FRACTION * float(min(pixel_spacing)))


def in_plane_fit(offsets: np.ndarray, depth: np.ndarray) -> tuple[float, float, float]:
    """Least-squares fit ``offsets[k] = a + b * depth[k]`` of in-plane offsets (n x 3, mm) against depth
    (n, mm). Returns (drift, scatter, slope): ``|b|`` x the depth span (mm), the largest residual norm
    (mm), and ``|b|`` (mm of in-plane offset per mm of depth; the tilt is ``atan`` of it)."""
    design = np.column_stack([np.ones_like(depth), depth - depth.mean()])
    coef, *_ = np.linalg.lstsq(design, offsets, rcond=None)
    slope = float(np.linalg.norm(coef[1]))
    resid = offsets - design @ coef
    scatter = float(np.max(np.linalg.norm(resid, axis=1))) if len(depth) > 2 else 0.0
    return slope * float(depth.max() - depth.min()), scatter, slope


def _refuse(rec: SeriesRecord, message: str) -> SeriesError:
    return SeriesError(message, series_uid=rec.series_uid, path=rec.files[0])


def _gap_reason(gaps: np.ndarray, med: float, gap_tolerance: float) -> tuple[str | None, int]:
    """Why the gaps are not uniform (None when they are) and how many slices whole-multiple holes miss."""
    if float(np.max(np.abs(gaps - med))) <= gap_tolerance * abs(med):
        return None, 0
    ratios = gaps / med
    whole = np.rint(ratios)
    odd = np.abs(ratios - 1) > gap_tolerance  # the gaps that make the stack irregular
    holes = odd & (whole >= 2) & (np.abs(ratios - whole) <= gap_tolerance * whole)
    missing = 0
    if np.array_equal(holes, odd):
        missing = int(np.sum(whole[holes] - 1))
        k = int(np.argmax(gaps))
        what = (
            f"{missing} missing slice{'s' if missing > 1 else ''} (the widest hole: {gaps[k]:.3f} mm "
            f"after slice {k + 1} of {len(gaps) + 1})"
        )
    else:
        what = "a missing slice or a variable-spacing acquisition"
    return (
        f"non-uniform slice spacing: gaps from {gaps.min():.3f} to {gaps.max():.3f} mm "
        f"(median {med:.3f}); {what}"
    ), missing


def _duplicates(rec: SeriesRecord, same: np.ndarray) -> SeriesError:
    """The refusal of a stack with repeated positions: the index's (files, position, attributes compared:
    :mod:`lightning_dicom.dicom.volumes`) when it recorded one."""
    if rec.refusal[1]:
        return SeriesError(rec.refusal[1], series_uid=rec.series_uid, path=rec.refusal[0])
    if same.all():
        n = len(same) + 1
        return _refuse(
            rec,
            f"{n - 1} duplicate slice positions: all {n} slices/frames sit at one position, "
            "a time series (2D+t) or repeated instances/acquisitions, not a 3D volume",
        )
    return _refuse(
        rec,
        f"{int(np.sum(same))} duplicate slice positions (repeated instances, or several "
        "phases/echoes in one series); select one with a description rule or split the series",
    )


def plan(
    rec: SeriesRecord, irregular: str, gap_tolerance: float, *, colour: bool = False
) -> Resampling | None:
    """None for a regular stack (a :class:`~lightning_dicom.dicom.index.SeriesRecord`); else how to
    resample it (``irregular="resample"``).

    Raises:
        SeriesError: missing position/orientation (``rec.geometry_problem``), duplicate positions or all
            slices at one position; with ``"reject"``, missing/non-uniform slices or a sheared stack;
            with ``"resample"``, a hole wider than :data:`MAX_GAP_RATIO` median gaps or a colour stack.
        ValueError: ``irregular`` or ``gap_tolerance`` is not valid.
    """
    check_mode(irregular, gap_tolerance)
    gap_tolerance = float(gap_tolerance)
    if rec.geometry_problem:
        raise _refuse(rec, rec.geometry_problem)
    if len(rec.positions) < 2 or not rec.has_geometry:
        return None
    iop = np.asarray(rec.orientation, dtype=float)
    row, col = iop[:3], iop[3:]
    normal = np.cross(row, col)
    pos = np.asarray(rec.positions, dtype=float)
    proj = pos @ normal
    gaps = np.diff(proj)
    same = np.abs(gaps) < DUPLICATE_MM
    if same.any():
        raise _duplicates(rec, same)
    med = float(np.median(gaps))
    reasons = []
    gap_reason, missing = _gap_reason(gaps, med, gap_tolerance)
    if gap_reason:
        reasons.append(gap_reason)
    depth = proj - proj[0]
    offsets = pos - pos[0] - np.outer(depth, normal)
    drift, scatter, slope = in_plane_fit(offsets, depth)
    tol = shear_tolerance_mm(rec.spacing[:2])
    sheared = drift > tol or scatter > tol
    tilt = math.degrees(math.atan(slope)) if sheared else 0.0
    if sheared:
        shear = float(np.max(np.linalg.norm(offsets, axis=1)))
        reasons.append(
            f"slices are not stacked along their normal (offset up to {shear:.2f} mm): gantry tilt "
            f"(about {tilt:.1f} degrees) or mixed stacks (fitted in-plane drift {drift:.2f} mm, scatter "
            f"{scatter:.2f} mm; rounding noise is tolerated up to {tol:.2f} mm)"
        )
    if not reasons:
        return None
    reason = "; ".join(reasons)
    if irregular == "reject":
        raise _refuse(
            rec,
            f"{reason}; read with irregular='resample' (preprocessing.irregular_stacks) to "
            "resample it onto a uniform grid",
        )
    if colour or rec.varying:  # slices of several acquisitions (varying): resampling would blend them
        raise _refuse(
            rec, f"{reason}; " + ("colour stacks are not resampled" if colour else mixed_reason(rec.varying))
        )
    if float(gaps.max()) > MAX_GAP_RATIO * med:
        raise _refuse(
            rec,
            f"{reason}; a hole of {gaps.max():.3f} mm is more than {MAX_GAP_RATIO:g} median gaps: "
            "too wide to interpolate",
        )
    n_out = int(math.floor(float(depth[-1]) / med + 1e-3)) + 1
    return Resampling(
        depth=depth,
        shift=np.column_stack([offsets @ row, offsets @ col]),
        spacing=med,
        n_out=n_out,
        missing=missing,
        tilt_deg=tilt,
        reason=reason,
    )


# -- missing positions (used by the index when it groups files into volumes) ----------------------------
def slice_of_stack(f: dict[str, Any]) -> bool:
    """Whether a single-frame file (an index row) is a slice of a stack: it has ImagePositionPatient or
    ImageOrientationPatient, or its modality is cross-sectional (:data:`CROSS_SECTIONAL`) and it is not a
    Secondary Capture. Other files (projection images, screenshots without geometry) are 2D images,
    each a volume of its own."""
    if f["iop"] or f["ipp"]:
        return True
    secondary = (f["sop_class_uid"] or "").startswith(uids.SECONDARY_CAPTURE_STORAGE)  # screenshots, pages
    return not secondary and (f["modality"] or "").upper() in CROSS_SECTIONAL


def missing_geometry(members: Sequence[dict[str, Any]]) -> str:
    """Why the single-frame files of one volume cannot be stacked ("" when they can): some lack
    ImagePositionPatient (0020,0032) or ImageOrientationPatient (0020,0037). One file is a 2D image."""
    if len(members) < 2:
        return ""
    n = len(members)
    parts = []
    for key, tag in (
        ("ipp", "ImagePositionPatient (0020,0032)"),
        ("iop", "ImageOrientationPatient (0020,0037)"),
    ):
        k = sum(1 for f in members if not f[key])
        if k:
            parts.append(f"{tag} missing in {k} of {n} files")
    if not parts:
        return ""
    return (
        "; ".join(parts) + ": slice order, spacing and origin are unknown (file order, InstanceNumber "
        "and SliceLocation are not positions); refused rather than stacked by a guess"
    )
