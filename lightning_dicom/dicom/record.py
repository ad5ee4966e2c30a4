"""One volume's record (:class:`SeriesRecord`) and how it is made from index rows.

Split out of :mod:`lightning_dicom.dicom.index` (which re-exports these names): the fields of a
volume, the geometry derived from its headers, and the acquisition attributes it carries
(:mod:`lightning_dicom.dicom.volumes` decides which slices form a volume).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lightning_dicom.dicom import uids
from lightning_dicom.dicom.pseudonym import pseudonym
from lightning_dicom.dicom.stack_geometry import missing_geometry
from lightning_dicom.dicom.volumes import Volume, frames_of, split_frames
from lightning_dicom.typing import SpacingXYZ

__all__ = ["SeriesRecord", "make_series", "patient_key", "plane_of", "split_rows"]

_NATIVE_LITTLE_ENDIAN = uids.NATIVE_LITTLE_ENDIAN


def patient_key(patient_id: str | None, key: bytes) -> str:
    """The keyed pseudonym of a PatientID under a project's key (:func:`.pseudonym.pseudonym`), safe to
    print; '' when there is no ID. The index stores only this, never the ID."""
    return pseudonym(patient_id, key)


@dataclass(frozen=True)
class SeriesRecord:
    """One volume: the files of a series (or sub-volume, or multi-frame file), in slice order.

    ``series_id`` equals ``series_uid`` unless one UID holds several volumes (localizers, other
    orientations, several multi-frame files or 2D images); then it is ``"<uid>#<k>"``, k=1 for the
    largest. ``spacing`` is x-y-z in mm: PixelSpacing reversed (1 when absent), and z the median gap
    between sorted slice positions; without two positions, SliceThickness then SpacingBetweenSlices
    (single slice) or SpacingBetweenSlices then SliceThickness (multi-frame file without per-frame
    positions, whose frames are taken as contiguous along the normal), else 1. Without
    ImagePositionPatient/ImageOrientationPatient (``has_geometry`` False) the origin is 0 and the
    direction the identity.

    Acquisition attributes (:mod:`lightning_dicom.dicom.volumes`; None when the slices differ or the
    headers lack them): ``echo_time`` (ms), ``echo_number``, ``b_value`` (s/mm2), ``image_type``
    (ImageType or FrameType values joined by "\\"), ``acquisition_number``; ``temporal_index`` is the
    volume's 0-based index along dcm2niix's 4th dimension (volumes of one stack with the same echo and
    image type, in acquisition order), ``n_volumes`` how many volumes the stack holds, ``split_by``
    the attribute that separated them ("" for a single volume), ``varying`` the acquisition
    attributes whose values differ between this volume's slices. A multi-frame file holding several
    volumes: ``file_frames`` is its NumberOfFrames, ``frame_order`` the frames of this volume, and
    ``frame_rescale`` each slice's (RescaleSlope, RescaleIntercept) when they differ from the file's
    first frame (``base_rescale``, the one GDCM applies to all).
    """

    series_id: str
    series_uid: str
    study_uid: str
    patient_id: str = field(repr=False)
    """Keyed pseudonym of PatientID (0010,0020) (:func:`patient_key`), '' without an ID: never the ID."""
    frame_uid: str
    modality: str
    description: str
    series_number: int
    n_instances: int
    n_slices: int
    rows: int
    cols: int
    spacing: SpacingXYZ
    orientation: tuple[float, ...]
    plane: str
    files: tuple[str, ...] = field(repr=False)
    samples_per_pixel: int = 1
    positions: tuple[tuple[float, float, float], ...] = field(default=(), repr=False)
    """ImagePositionPatient of each slice in slice order (LPS, mm): one per file, or one per frame of
    a multi-frame file."""
    value_range: tuple[float, float] = (-32768.0, 32767.0)
    """Smallest and largest modality value the headers allow (stored range x slope + intercept)."""
    integer_values: bool = True
    """True when every RescaleSlope/Intercept is integral (values are integers in modality units)."""
    fingerprint: str = ""
    """sha256 of the files' (path, size, mtime_ns): changes whenever a source file does."""
    file_stats: tuple[tuple[int, int], ...] = field(default=(), repr=False)
    """(size, mtime_ns) of each file when it was indexed; the reader refuses files that changed."""
    frame_order: tuple[int, ...] = field(default=(), repr=False)
    """Multi-frame file: the frame index (in file order) of each slice, in slice order. Empty when
    the frames are already in slice order."""
    problems: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    """(path, reason) of files whose pixel data the index found unreadable (truncated, ...)."""
    duplicates: tuple[str, ...] = field(default=(), repr=False)
    """Files left out because they repeat an instance in ``files`` (same SOPInstanceUID and position)."""
    has_geometry: bool = True
    """False when the headers carry no ImagePositionPatient/ImageOrientationPatient (2D images):
    the volume then gets origin 0 and identity direction."""
    photometric: str = ""
    """PhotometricInterpretation (0028,0004) of the first file."""
    contrast_agent: str = ""
    """ContrastBolusAgent (0018,0010) of the first file ("" when absent: no contrast recorded)."""
    uniform_rescale: bool = True
    """True when every file has the same RescaleSlope/Intercept, BitsStored and PixelRepresentation."""
    echo_time: float | None = None
    echo_number: int | None = None
    b_value: float | None = None
    image_type: str | None = None
    acquisition_number: int | None = None
    temporal_index: int = 0
    n_volumes: int = 1
    split_by: str = ""
    varying: tuple[str, ...] = ()
    file_frames: int = 0
    frame_rescale: tuple[tuple[float, float], ...] = field(default=(), repr=False)
    base_rescale: tuple[float, float] = (1.0, 0.0)
    # -- geometry from other places (issue 10; lightning_dicom.dicom.mosaic, .nm, .stack_geometry) --
    mosaic_grid: int = 0
    """Siemens mosaic: tiles per side of the stored image (its ``n_slices`` tiles of ``rows x cols``
    are unpacked by the reader); 0 otherwise."""
    geometry_problem: str = ""
    """Why the files cannot be placed as one 3D volume (missing ImagePositionPatient or orientation in
    a stack, NM frames that are not slices); the reader refuses the volume with this reason."""
    refusal: tuple[str, str] = ("", "")
    """(file, reason) when the slices share positions and nothing separates them into volumes
    (:mod:`lightning_dicom.dicom.volumes`): reading raises it."""
    raw_pixels: tuple[tuple[int, int, int, int, float, float], ...] = field(default=(), repr=False)
    """(Pixel Data value offset, BitsAllocated, BitsStored, PixelRepresentation, RescaleSlope,
    RescaleIntercept) of each file, in ``files`` order, when every file is a single-frame MONOCHROME2
    image with native little-endian pixel data the index found complete (then the reader reads the
    pixels straight from the files); empty otherwise."""

    @property
    def patient_key(self) -> str | None:
        """The patient pseudonym for reports; None when the series has no PatientID."""
        return self.patient_id or None

    def summary(self) -> dict[str, Any]:
        """A PHI-free description (for reports, split files and batch metadata)."""
        return {
            "series_id": self.series_id,
            "series_uid": self.series_uid,
            "study_uid": self.study_uid,
            "patient_key": self.patient_key,
            "modality": self.modality,
            "description": self.description,
            "n_instances": self.n_instances,
            "n_slices": self.n_slices,
            "rows": self.rows,
            "cols": self.cols,
            "spacing": list(self.spacing),
            "plane": self.plane,
            **self.acquisition(),
        }

    def acquisition(self) -> dict[str, Any]:
        """The volume's acquisition attributes (JSON-safe): see the class docstring."""
        return {
            "echo_time": self.echo_time,
            "echo_number": self.echo_number,
            "b_value": self.b_value,
            "temporal_index": self.temporal_index,
            "image_type": self.image_type,
            "acquisition_number": self.acquisition_number,
            "n_volumes": self.n_volumes,
            "split_by": self.split_by,
        }


def plane_of(iop: Sequence[float]) -> str:
    """'axial', 'sagittal', 'coronal' or 'oblique' from ImageOrientationPatient (LPS)."""
    normal = _normal(iop)
    k = int(np.argmax(np.abs(normal)))
    if abs(normal[k]) < 0.98:
        return "oblique"
    return ("sagittal", "coronal", "axial")[k]


def _raw_pixel_layout(f: dict[str, Any]) -> tuple[int, int, int, int, float, float] | None:
    """A file's entry of :attr:`SeriesRecord.raw_pixels`, or None when its pixels must be decoded by GDCM:
    anything but one frame of one sample (MONOCHROME2) of 8 or 16 bits (8 stored of 8 allocated, HighBit
    = BitsStored - 1), native little endian, with complete pixel data."""
    bits, stored = f["bits_allocated"], f["bits_stored"]
    if (
        f["pixel_offset"] is None
        or f["problem"]
        or f["transfer_syntax"] not in _NATIVE_LITTLE_ENDIAN
        or (f["n_frames"] or 1) != 1
        or f["samples_per_pixel"] != 1
        or f["photometric"] != "MONOCHROME2"
        or bits not in (8, 16)
        or (bits == 8 and stored != 8)
        or f["high_bit"] != stored - 1
    ):
        return None
    slope = 1.0 if f["rescale_slope"] is None else float(f["rescale_slope"])
    icpt = 0.0 if f["rescale_intercept"] is None else float(f["rescale_intercept"])
    return int(f["pixel_offset"]), int(bits), int(stored), int(f["pixel_representation"] or 0), slope, icpt


def _normal(iop: Sequence[float]) -> np.ndarray:
    """The slice normal (row x column direction) of ImageOrientationPatient (np.cross is slow for one)."""
    r, c = iop[:3], iop[3:]
    return np.array([r[1] * c[2] - r[2] * c[1], r[2] * c[0] - r[0] * c[2], r[0] * c[1] - r[1] * c[0]])


def split_rows(members: list[dict[str, Any]]) -> list[Volume]:
    """The volumes of one group of rows (one stack of single-frame files, or one multi-frame file)."""
    first = members[0]
    single = (first["n_frames"] or 1) == 1
    if (single and not all(f["iop"] and f["ipp"] for f in members)) or (
        not single and (not first["iop"] or not first["ipp"] or not first["frame_ipps"])
    ):  # no positions to split by: one volume (refused by the reader when a stack lacks geometry)
        vol = Volume([fr for f in members for fr in frames_of(f)] if single else frames_of(first)[:1])
        vol.order = ((), -1, int(first["instance_number"] or 0), first["path"], 0)
        return [vol]
    iop = json.loads(first["iop"])
    frames = [fr for f in members for fr in frames_of(f)]
    return split_frames(frames, _normal(iop))


def make_series(  # noqa: C901 - one record's fields
    series_id: str, vol: Volume, dropped: dict[str, list[str]], n_volumes: int = 1, temporal_index: int = 0
) -> SeriesRecord:
    members = list({id(fr.row): fr.row for fr in vol.frames}.values())
    first = members[0]
    has_geometry = bool(first["iop"]) and bool(first["ipp"])
    iop = json.loads(first["iop"]) if first["iop"] else [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    normal = _normal(iop)
    n_frames = int(first["n_frames"] or 1)
    if n_frames > 1:
        fallback_dz = float(first["slice_gap"] or first["slice_thickness"] or 1.0)
        fallback_dz = fallback_dz if has_geometry else abs(fallback_dz)  # no position: origin 0, file order
    else:
        fallback_dz = float(first["slice_thickness"] or first["slice_gap"] or 1.0)
    frame_order: tuple[int, ...] = ()
    frame_rescale: tuple[tuple[float, float], ...] = ()
    base = (1.0, 0.0)
    n_slices = n_frames
    if n_frames > 1:  # one multi-frame file (all its frames, or those of one volume)
        if first["frame_ipps"]:
            subset = np.asarray([fr.index for fr in vol.frames], dtype=int)
            pts = np.asarray(json.loads(first["frame_ipps"]), dtype=float)[subset]
            order = np.argsort(pts @ normal, kind="stable")
            pts, subset = pts[order], subset[order]
            n_slices = len(subset)
            if not np.array_equal(subset, np.arange(n_frames)):
                frame_order = tuple(int(i) for i in subset)
            base = (float(first["rescale_slope"] or 1.0), float(first["rescale_intercept"] or 0.0))
            by_index = {fr.index: fr.attrs for fr in vol.frames}
            scales = [
                (float(by_index[i].get("slope", base[0])), float(by_index[i].get("intercept", base[1])))
                for i in subset
            ]
            if any(sc != base for sc in scales):
                frame_rescale = tuple(scales)
        else:  # classic multi-frame: frames contiguous along the normal in file order, by the signed
            # SpacingBetweenSlices (negative in NM: frame k at IPP - k |gap| normal, as GDCM reads it)
            origin = np.asarray(json.loads(first["ipp"]), dtype=float) if first["ipp"] else np.zeros(3)
            pts = origin + np.outer(np.arange(n_frames) * fallback_dz, normal)
            order = np.argsort(pts @ normal, kind="stable")
            pts = pts[order]
            if not np.array_equal(order, np.arange(n_frames)):
                frame_order = tuple(int(i) for i in order)
        positions = [tuple(float(v) for v in p) for p in pts]
    else:  # single-frame files: their positions were parsed (and projected) by split_rows
        if has_geometry and all(fr.row["ipp"] for fr in vol.frames):
            slices = sorted(vol.frames, key=lambda fr: (fr.depth, fr.instance, fr.row["path"]))
            members = [fr.row for fr in slices]
            positions = [tuple(float(v) for v in fr.position) for fr in slices]
        else:
            members = sorted(members, key=lambda f: (f["instance_number"] or 0, f["path"]))
            positions = [tuple(json.loads(f["ipp"])) if f["ipp"] else (0.0, 0.0, 0.0) for f in members]
        n_slices = len(members)
    proj = np.asarray(positions, dtype=float) @ normal
    gaps = np.diff(proj)
    dz = float(np.median(gaps)) if len(gaps) and np.any(gaps > 0) else fallback_dz
    ps = json.loads(first["pixel_spacing"]) if first["pixel_spacing"] else [1.0, 1.0]
    lo, hi, integral = np.inf, -np.inf, True
    encodings = set()
    for f in members:
        encodings.add(
            (f["rescale_slope"], f["rescale_intercept"], f["bits_stored"], f["pixel_representation"])
        )
        bits = int(f["bits_stored"] or 16)
        smin, smax = (
            (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if f["pixel_representation"] else (0, 2**bits - 1)
        )
        slope = 1.0 if f["rescale_slope"] is None else float(f["rescale_slope"])
        icpt = 0.0 if f["rescale_intercept"] is None else float(f["rescale_intercept"])
        for s_, i_ in frame_rescale or [(slope, icpt)]:
            a, b = sorted((smin * s_ + i_, smax * s_ + i_))
            lo, hi = min(lo, a), max(hi, b)
            integral = integral and float(s_).is_integer() and float(i_).is_integer() and not frame_rescale
    return SeriesRecord(
        series_id=series_id,
        series_uid=first["series_uid"],
        study_uid=first["study_uid"] or "",
        patient_id=first["patient_id"] or "",
        frame_uid=first["frame_uid"] or "",
        modality=first["modality"] or "",
        description=first["description"] or "",
        contrast_agent=first.get("contrast_agent") or "",
        series_number=int(first["series_number"] or 0),
        n_instances=len(members),
        n_slices=n_slices,
        rows=int(first["rows"]),
        cols=int(first["cols"]),
        spacing=(float(ps[1]), float(ps[0]), abs(dz) if dz else 1.0),
        orientation=tuple(float(x) for x in iop),
        plane=plane_of(iop),
        files=tuple(f["path"] for f in members),
        samples_per_pixel=int(first["samples_per_pixel"] or 1),
        positions=tuple((p[0], p[1], p[2]) for p in positions),
        value_range=(float(lo), float(hi)),
        integer_values=integral,
        fingerprint=hashlib.sha256(
            json.dumps([(f["path"], f["size"], f["mtime_ns"]) for f in members]).encode()
        ).hexdigest(),
        file_stats=tuple((int(f["size"]), int(f["mtime_ns"])) for f in members),
        frame_order=frame_order,
        problems=tuple((f["path"], f["problem"]) for f in members if f["problem"]),
        refusal=vol.problem or ("", ""),
        mosaic_grid=int(first["mosaic_grid"] or 0),
        geometry_problem=(first["not_a_stack"] or "") if n_frames > 1 else missing_geometry(members),
        duplicates=tuple(d for f in members for d in dropped.get(f["path"], ())),
        has_geometry=has_geometry,
        photometric=first["photometric"] or "",
        uniform_rescale=len(encodings) == 1,
        raw_pixels=_raw_pixels(members) if n_frames == 1 else (),
        echo_time=vol.attrs.get("echo_time"),
        echo_number=vol.attrs.get("echo_number"),
        b_value=vol.attrs.get("b_value"),
        image_type=vol.attrs.get("image_type"),
        acquisition_number=vol.attrs.get("acquisition_number"),
        temporal_index=temporal_index,
        n_volumes=n_volumes,
        split_by=vol.split_by,
        varying=vol.varying,
        file_frames=n_frames if n_frames > 1 else 0,
        frame_rescale=frame_rescale,
        base_rescale=base if frame_rescale else (1.0, 0.0),
    )


def _raw_pixels(members: list[dict[str, Any]]) -> tuple[tuple[int, int, int, int, float, float], ...]:
    layouts = [_raw_pixel_layout(f) for f in members]
    return tuple(layouts) if all(lay is not None for lay in layouts) else ()  # type: ignore[arg-type]
