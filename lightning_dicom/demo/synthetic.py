"""Synthetic CT/MR DICOM series for demos, tests and benchmarks.

Conventions used throughout this module:

* voxel arrays are indexed ``[z, y, x]`` (slice, row, column);
* ``spacing`` and ``origin`` are ``(x, y, z)`` in millimetres, world coordinates are DICOM patient
  coordinates (LPS: +x = patient Left, +y = Posterior, +z = Superior);
* ``direction`` is a 3x3 matrix in SimpleITK convention, flattened row-major, whose *columns* are the
  world directions of the x, y and z index axes.  Column 0 is the DICOM row cosine (direction of
  increasing column index), column 1 the column cosine, column 2 the slice normal
  ``cross(row, col)`` (only right-handed frames are written);
* ``origin`` is the world position of the centre of voxel ``(0, 0, 0)``, i.e. of the slice with the
  lowest projection on the normal; slice ``k`` lies at ``origin + k * spacing_z * normal``;
* ``HU = stored * RescaleSlope + RescaleIntercept``.

Everything is deterministic for a given seed, including UIDs when they are derived by
:func:`write_dataset`.  All names and identifiers are synthetic (``SYN^PATIENT0001``).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    PYDICOM_IMPLEMENTATION_UID,
    UID,
    CTImageStorage,
    ExplicitVRLittleEndian,
    MRImageStorage,
    generate_uid,
)
from pydicom.valuerep import format_number_as_ds

__all__ = [
    "new_dataset",
    "SyntheticSeries",
    "direction_from_orientation",
    "main",
    "make_phantom",
    "write_dataset",
    "write_series",
]

IDENTITY_DIRECTION: tuple[float, ...] = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)
HU_MIN, HU_MAX = -1024, 3071
_UID_NAMESPACE = "lightning_dicom.demo.synthetic"

# (row cosine, column cosine) of the un-tilted frames, LPS.
_BASE_FRAMES: dict[str, tuple[tuple[float, float, float], tuple[float, float, float]]] = {
    "axial": ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0)),
    "sagittal": ((0.0, 1.0, 0.0), (0.0, 0.0, -1.0)),
    "coronal": ((1.0, 0.0, 0.0), (0.0, 0.0, -1.0)),
}


@dataclass(frozen=True)
class SyntheticSeries:
    """A series written to disk, with the ground truth needed to check a reader.

    ``files[k]`` holds slice ``k`` (ordered along the normal); the file *names* are shuffled.
    ``hu`` is int16 ``[z, y, x]`` and equals exactly what a correct reader returns after rescale.
    ``spacing`` is x-y-z mm, ``origin`` LPS mm of voxel (0, 0, 0), ``direction`` 9 floats (SimpleITK).
    """

    files: list[Path]
    hu: np.ndarray
    spacing: tuple[float, float, float]
    origin: tuple[float, float, float]
    direction: tuple[float, ...]
    patient_id: str
    patient_name: str
    study_uid: str
    series_uid: str
    label: int


def direction_from_orientation(orientation: str = "axial", oblique_deg: float = 0.0) -> tuple[float, ...]:
    """Direction matrix (SimpleITK convention, row-major 9-tuple) for a standard slice orientation.

    Base frames (LPS): ``"axial"`` identity; ``"sagittal"`` row=(0,1,0), col=(0,0,-1), normal=(-1,0,0);
    ``"coronal"`` row=(1,0,0), col=(0,0,-1), normal=(0,1,0).  ``oblique_deg`` rotates the frame about
    its own *row* axis (the x index axis, right-hand rule): the row cosine is unchanged and the column
    cosine tilts towards the normal (``col' = cos a * col + sin a * normal``), so the slice normal tilts
    too (axial: about patient L-R, like a gantry tilt without shear; sagittal: about A-P).  The result is
    orthonormal and right-handed, with normal = cross(row, col).
    """
    key = orientation.lower()
    if key not in _BASE_FRAMES:
        raise ValueError(f"orientation must be one of {sorted(_BASE_FRAMES)}, got {orientation!r}")
    row0, col0 = (np.asarray(v, dtype=np.float64) for v in _BASE_FRAMES[key])
    normal0 = np.cross(row0, col0)
    a = np.deg2rad(float(oblique_deg))
    col = np.cos(a) * col0 + np.sin(a) * normal0
    normal = np.cross(row0, col)
    mat = np.column_stack([row0, col, normal])
    mat[np.abs(mat) < 1e-15] = 0.0  # avoid 6e-17 noise (and -0.0) in exact cases
    mat += 0.0
    return tuple(float(v) for v in mat.ravel())


def make_phantom(
    shape_zyx: Sequence[int] = (32, 48, 48), *, lesion: bool = False, seed: int = 0
) -> np.ndarray:
    """Simple chest-like CT phantom, int16 HU ``[z, y, x]`` (drawn in index space).

    Air (-1000) outside an elliptical body of soft tissue (~40 HU, gaussian noise sd 10), two lung
    ellipses (~-800 HU), a bright spine-like disc (~700 HU) posterior (high row index).  If ``lesion``,
    a sphere of 250..350 HU with radius 12% of the smallest dimension (voxels, at least 2) is drawn at a random
    position inside the body.  Values are clipped to [-1024, 3071].  Deterministic for ``seed``.
    """
    nz, ny, nx = (int(s) for s in shape_zyx)
    if min(nz, ny, nx) < 1:
        raise ValueError(f"shape_zyx must be positive, got {tuple(shape_zyx)}")
    rng = np.random.default_rng(seed)
    z = np.arange(nz, dtype=np.float32)[:, None, None]
    y = ((np.arange(ny, dtype=np.float32) + 0.5) / ny - 0.5)[None, :, None]  # -0.5..0.5
    x = ((np.arange(nx, dtype=np.float32) + 0.5) / nx - 0.5)[None, None, :]
    zf = (z + 0.5) / nz - 0.5

    # Body: ellipse whose size tapers slightly along z.
    taper = 1.0 - 0.15 * (2.0 * zf) ** 2
    body_a, body_b = 0.44 * taper, 0.34 * taper  # semi-axes in x, y (fraction of the image)
    body = (x / body_a) ** 2 + (y / body_b) ** 2 <= 1.0
    hu = np.full((nz, ny, nx), -1000.0, dtype=np.float32)
    tissue = 40.0 + rng.normal(0.0, 10.0, size=hu.shape).astype(np.float32)
    hu = np.where(body, tissue, hu)

    # Lungs: two ellipses left/right of the midline, anterior to the spine.
    for cx in (-0.19, 0.19):
        lung = ((x - cx) / (0.13 * taper)) ** 2 + ((y + 0.02) / (0.22 * taper)) ** 2 <= 1.0
        lung_vals = -800.0 + rng.normal(0.0, 20.0, size=hu.shape).astype(np.float32)
        hu = np.where(lung & body, lung_vals, hu)

    # Spine: bright disc, posterior (+y is posterior for an axial frame).
    spine = (x / 0.07) ** 2 + ((y - 0.22 * taper) / 0.07) ** 2 <= 1.0
    hu = np.where(np.broadcast_to(spine & body, hu.shape), 700.0 + rng.normal(0.0, 30.0, size=hu.shape), hu)

    if lesion:
        hu = _draw_lesion(hu, rng, body=np.broadcast_to(body, hu.shape))
    return np.clip(np.rint(hu), HU_MIN, HU_MAX).astype(np.int16)


def _draw_lesion(hu: np.ndarray, rng: np.random.Generator, *, body: np.ndarray) -> np.ndarray:
    """Add a 250..350 HU sphere fully inside ``body`` (falls back to the body centre)."""
    nz, ny, nx = hu.shape
    radius = max(2.0, 0.12 * min(nz, ny, nx))
    zz, yy, xx = np.ogrid[:nz, :ny, :nx]
    idx = np.argwhere(body)
    centre = idx.mean(axis=0) if len(idx) else np.array([nz, ny, nx], dtype=np.float64) / 2
    for _ in range(50):
        cand = idx[rng.integers(len(idx))] if len(idx) else centre
        ball = (zz - cand[0]) ** 2 + (yy - cand[1]) ** 2 + (xx - cand[2]) ** 2 <= radius**2
        z_ok = radius <= cand[0] <= nz - 1 - radius or nz < 2 * radius + 1  # thin volume: any slice
        inside = z_ok and bool(body[ball].all())
        if inside:
            centre = cand
            break
    ball = (zz - centre[0]) ** 2 + (yy - centre[1]) ** 2 + (xx - centre[2]) ** 2 <= radius**2
    value = rng.uniform(250.0, 350.0)
    noise = rng.normal(0.0, 10.0, size=hu.shape)
    return np.where(ball, value + noise, hu)


def _ds(value: float) -> str:
    """Format a float as a DICOM DS string (max 16 characters)."""
    return format_number_as_ds(float(value))


def _direction_matrix(direction: Sequence[float]) -> np.ndarray:
    mat = np.asarray(direction, dtype=np.float64).reshape(3, 3)
    if not np.allclose(mat.T @ mat, np.eye(3), atol=1e-6):
        raise ValueError(f"direction must be orthonormal, got {tuple(direction)}")
    if np.linalg.det(mat) < 0:
        raise ValueError("direction must be right-handed (column 2 = cross(column 0, column 1))")
    return mat


def _to_stored(
    hu: np.ndarray, *, slope: float, intercept: float, bits_stored: int, pixel_representation: int
) -> np.ndarray:
    """HU -> stored integer pixel values; raise ValueError if not representable."""
    if not 1 <= bits_stored <= 16:
        raise ValueError(f"bits_stored must be in 1..16, got {bits_stored}")
    if pixel_representation not in (0, 1):
        raise ValueError(f"pixel_representation must be 0 or 1, got {pixel_representation}")
    if slope == 0:
        raise ValueError("rescale_slope must be non-zero")
    values = np.asarray(hu, dtype=np.float64)
    if not np.isfinite(values).all():
        raise ValueError("hu contains non-finite values")
    stored = np.rint((values - intercept) / slope)
    dtype: np.dtype[Any]
    if pixel_representation == 0:
        lo, hi, dtype = 0, 2**bits_stored - 1, np.dtype(np.uint16)
    else:
        lo, hi, dtype = -(2 ** (bits_stored - 1)), 2 ** (bits_stored - 1) - 1, np.dtype(np.int16)
    if stored.size and (stored.min() < lo or stored.max() > hi):
        raise ValueError(
            f"HU range [{values.min()}, {values.max()}] is not representable with slope={slope}, "
            f"intercept={intercept}, bits_stored={bits_stored}, pixel_representation={pixel_representation} "
            f"(stored range would be [{stored.min():.0f}, {stored.max():.0f}], allowed [{lo}, {hi}])"
        )
    return stored.astype(dtype)


def write_series(
    out_dir: Path | str,
    hu: np.ndarray,
    *,
    spacing: Sequence[float] = (0.8, 0.8, 2.5),
    origin: Sequence[float] = (-20.0, -20.0, -40.0),
    direction: Sequence[float] = IDENTITY_DIRECTION,
    patient_id: str = "SYN0001",
    patient_name: str = "SYN^PATIENT0001",
    study_uid: str | None = None,
    series_uid: str | None = None,
    modality: str = "CT",
    series_description: str = "SYNTHETIC CT",
    series_number: int = 1,
    rescale_slope: float = 1.0,
    rescale_intercept: float = -1024.0,
    suffix: str = ".dcm",
    shuffle: bool = True,
    seed: int = 0,
    label: int = 0,
    bits_stored: int = 16,
    pixel_representation: int = 0,
    frame_of_reference_uid: str | None = None,
) -> SyntheticSeries:
    """Write ``hu`` (``[z, y, x]``, HU) as one DICOM file per slice directly into ``out_dir``.

    ``spacing`` x-y-z mm, ``origin`` LPS mm of voxel (0, 0, 0), ``direction`` SimpleITK 9-tuple
    (orthonormal, right-handed).  Stored = round((hu - intercept) / slope) as uint16
    (``pixel_representation=0``) or int16 (``=1``) limited to ``bits_stored`` bits; ValueError if out of
    range.  ``study_uid``/``series_uid`` default to fresh random UIDs; SOP instance and frame of reference
    UIDs are derived deterministically from them.  With ``shuffle`` the file names are a seeded random
    permutation (never the identity for >1 slice) so name order differs from slice order; InstanceNumber
    always follows slice order.  Returns the ground truth, with ``hu`` recomputed from the stored values.
    """
    vol = np.asarray(hu)
    if vol.ndim != 3 or 0 in vol.shape:
        raise ValueError(f"hu must be a non-empty 3D [z, y, x] array, got shape {vol.shape}")
    sx, sy, sz = (float(v) for v in spacing)
    if min(sx, sy, sz) <= 0:
        raise ValueError(f"spacing must be positive, got {tuple(spacing)}")
    mat = _direction_matrix(direction)
    modality = modality.upper()
    stored = _to_stored(
        vol,
        slope=float(rescale_slope),
        intercept=float(rescale_intercept),
        bits_stored=int(bits_stored),
        pixel_representation=int(pixel_representation),
    )
    hu_rt = np.rint(stored.astype(np.float64) * rescale_slope + rescale_intercept)
    if hu_rt.min() < np.iinfo(np.int16).min or hu_rt.max() > np.iinfo(np.int16).max:
        raise ValueError("rescaled values do not fit in int16")
    hu_rt = hu_rt.astype(np.int16)

    study_uid = study_uid or generate_uid()
    series_uid = series_uid or generate_uid()
    for_uid = frame_of_reference_uid or generate_uid(
        entropy_srcs=[_UID_NAMESPACE, "frame-of-reference", study_uid]
    )
    sop_class = MRImageStorage if modality == "MR" else CTImageStorage

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    nz, ny, nx = vol.shape
    names = np.arange(nz)
    if shuffle and nz > 1:
        names = np.random.default_rng(seed).permutation(nz)
        if np.array_equal(names, np.arange(nz)):
            names = np.roll(names, 1)

    row, col, normal = mat[:, 0], mat[:, 1], mat[:, 2]
    origin_v = np.asarray(origin, dtype=np.float64)
    iop = [_ds(v) for v in (*row, *col)]
    common = {
        "sop_class": sop_class,
        "study_uid": study_uid,
        "series_uid": series_uid,
        "for_uid": for_uid,
        "patient_id": patient_id,
        "patient_name": patient_name,
        "modality": modality,
        "series_description": series_description,
        "series_number": int(series_number),
        "iop": iop,
        "pixel_spacing": [_ds(sy), _ds(sx)],  # DICOM order: [between rows, between columns]
        "thickness": _ds(sz),
        "slope": _ds(rescale_slope),
        "intercept": _ds(rescale_intercept),
        "bits_stored": int(bits_stored),
        "pixel_representation": int(pixel_representation),
        "rows": ny,
        "columns": nx,
    }
    files: list[Path] = []
    first_ipp: list[str] = []
    for k in range(nz):
        pos = origin_v + k * sz * normal
        ipp = [_ds(v) for v in pos]
        if k == 0:
            first_ipp = ipp
        sop_uid = generate_uid(entropy_srcs=[_UID_NAMESPACE, "sop", series_uid, str(k)])
        ds = _slice_dataset(
            common, k=k, sop_uid=sop_uid, ipp=ipp, slice_location=float(pos @ normal), pixels=stored[k]
        )
        path = out / f"IM{int(names[k]):05d}{suffix}"
        ds.save_as(path, enforce_file_format=True)
        files.append(path)

    return SyntheticSeries(
        files=files,
        hu=hu_rt,
        spacing=(sx, sy, sz),
        origin=tuple(float(v) for v in first_ipp),  # type: ignore[arg-type]
        direction=tuple(float(v) for v in mat.ravel()),
        patient_id=patient_id,
        patient_name=patient_name,
        study_uid=study_uid,
        series_uid=series_uid,
        label=int(label),
    )


def new_dataset(sop_class_uid: str, sop_instance_uid: str) -> Dataset:
    """An empty explicit-VR little-endian dataset with its file meta (Part-10 header) and character set."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID(sop_class_uid)
    meta.MediaStorageSOPInstanceUID = UID(sop_instance_uid)
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds = Dataset()
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 100"
    return ds


def _slice_dataset(
    common: dict, *, k: int, sop_uid: str, ipp: list[str], slice_location: float, pixels: np.ndarray
) -> Dataset:
    """Build the dataset (with file meta) of slice ``k``."""
    ds = new_dataset(common["sop_class"], sop_uid)
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.SOPClassUID = common["sop_class"]
    ds.SOPInstanceUID = sop_uid
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = "20240101"
    ds.StudyTime = ds.SeriesTime = ds.ContentTime = "120000"
    ds.AccessionNumber = ""
    ds.Modality = common["modality"]
    ds.Manufacturer = "lightning_dicom synthetic"
    ds.ReferringPhysicianName = ""
    ds.SeriesDescription = common["series_description"]
    ds.PatientName = common["patient_name"]
    ds.PatientID = common["patient_id"]
    ds.PatientBirthDate = "19700101"
    ds.PatientSex = "O"
    ds.SliceThickness = common["thickness"]
    ds.StudyInstanceUID = common["study_uid"]
    ds.SeriesInstanceUID = common["series_uid"]
    ds.StudyID = "1"
    ds.SeriesNumber = common["series_number"]
    ds.InstanceNumber = k + 1
    ds.ImagePositionPatient = ipp
    ds.ImageOrientationPatient = common["iop"]
    ds.FrameOfReferenceUID = common["for_uid"]
    ds.PositionReferenceIndicator = ""
    ds.SliceLocation = _ds(slice_location)
    ds.SpacingBetweenSlices = common["thickness"]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = common["rows"]
    ds.Columns = common["columns"]
    ds.PixelSpacing = common["pixel_spacing"]
    ds.BitsAllocated = 16
    ds.BitsStored = common["bits_stored"]
    ds.HighBit = common["bits_stored"] - 1
    ds.PixelRepresentation = common["pixel_representation"]
    ds.WindowCenter = "40"
    ds.WindowWidth = "400"
    ds.RescaleIntercept = common["intercept"]
    ds.RescaleSlope = common["slope"]
    ds.RescaleType = "HU" if common["modality"] == "CT" else "US"
    ds.PixelData = np.ascontiguousarray(pixels, dtype=pixels.dtype.newbyteorder("<")).tobytes()
    return ds


def _orientation_spec(spec: str | tuple[str, float]) -> tuple[str, float]:
    """``"axial"`` / ``"sagittal:20"`` / ``("coronal", 15.0)`` -> (name, oblique degrees)."""
    if isinstance(spec, str):
        name, _, deg = spec.partition(":")
        return name, float(deg) if deg else 0.0
    name, degrees = spec
    return str(name), float(degrees)


def _hashed(*parts: object) -> str:
    """Non-informative, deterministic directory name."""
    return hashlib.sha1("/".join(map(str, parts)).encode()).hexdigest()[:12]


def write_dataset(
    root: Path | str,
    *,
    n_patients: int = 8,
    series_per_patient: int = 1,
    shape_zyx: Sequence[int] = (32, 48, 48),
    spacing: Sequence[float] = (0.8, 0.8, 2.5),
    lesion_fraction: float = 0.5,
    seed: int = 0,
    orientations: Sequence[str | tuple[str, float]] = ("axial",),
    labels_csv: bool = True,
) -> list[SyntheticSeries]:
    """Write a labelled dataset ``root/<patient>/<study>/<series>/IM*.dcm`` (hashed dir names).

    One study per patient, ``series_per_patient`` series each; exactly
    ``round(n_series * lesion_fraction)`` series get a lesion (label 1), chosen by a seeded permutation.
    Orientations cycle over series (``"axial"``, ``"sagittal:20"`` or ``("coronal", 15.0)``).  Each
    volume is centred near the world origin with a small seeded jitter (+-5 mm).  UIDs are derived from
    ``seed`` and indices, so the same seed reproduces the same dataset byte for byte.  If ``labels_csv``
    writes ``root/labels.csv`` (``SeriesInstanceUID,label``).  Returns the series in write order.
    """
    if n_patients < 1 or series_per_patient < 1:
        raise ValueError("n_patients and series_per_patient must be >= 1")
    if not 0.0 <= lesion_fraction <= 1.0:
        raise ValueError(f"lesion_fraction must be in [0, 1], got {lesion_fraction}")
    if not orientations:
        raise ValueError("orientations must not be empty")
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    n_series = n_patients * series_per_patient
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0xD1C0]))
    n_pos = int(round(n_series * lesion_fraction))
    labels = np.zeros(n_series, dtype=int)
    labels[rng.permutation(n_series)[:n_pos]] = 1
    spacing_t = tuple(float(v) for v in spacing)
    shape_xyz = np.array(list(shape_zyx)[::-1], dtype=np.float64)

    result: list[SyntheticSeries] = []
    for p in range(n_patients):
        patient_id = f"SYN{p + 1:04d}"
        patient_name = f"SYN^PATIENT{p + 1:04d}"
        study_uid = generate_uid(entropy_srcs=[_UID_NAMESPACE, "study", str(seed), str(p)])
        study_dir = root / _hashed(seed, "patient", p) / _hashed(seed, "study", study_uid)
        for s in range(series_per_patient):
            i = p * series_per_patient + s
            name, deg = _orientation_spec(orientations[i % len(orientations)])
            direction = direction_from_orientation(name, deg)
            series_uid = generate_uid(entropy_srcs=[_UID_NAMESPACE, "series", str(seed), str(p), str(s)])
            series_seed = int(np.random.SeedSequence([seed, p, s]).generate_state(1)[0])
            hu = make_phantom(shape_zyx, lesion=bool(labels[i]), seed=series_seed)
            extent = (shape_xyz - 1.0) * np.asarray(spacing_t)
            centre_offset = np.asarray(direction).reshape(3, 3) @ (extent / 2.0)
            origin = -centre_offset + rng.uniform(-5.0, 5.0, size=3)
            result.append(
                write_series(
                    study_dir / _hashed(seed, "series", series_uid),
                    hu,
                    spacing=spacing_t,
                    origin=tuple(np.round(origin, 3)),
                    direction=direction,
                    patient_id=patient_id,
                    patient_name=patient_name,
                    study_uid=study_uid,
                    series_uid=series_uid,
                    series_description=f"SYNTHETIC CT {name.upper()}",
                    series_number=s + 1,
                    seed=series_seed,
                    label=int(labels[i]),
                )
            )
    if labels_csv:
        with open(root / "labels.csv", "w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["SeriesInstanceUID", "label"])
            writer.writerows([s.series_uid, s.label] for s in result)
    return result


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: ``python -m lightning_dicom.demo.synthetic OUT --patients 8 --seed 0``."""
    parser = argparse.ArgumentParser(
        prog="python -m lightning_dicom.demo.synthetic",
        description="Write a synthetic labelled CT DICOM dataset.",
    )
    parser.add_argument("out", type=Path, help="output root directory")
    parser.add_argument("--patients", type=int, default=8, help="number of patients (default 8)")
    parser.add_argument("--series-per-patient", type=int, default=1)
    parser.add_argument("--shape", type=int, nargs=3, default=(32, 48, 48), metavar=("Z", "Y", "X"))
    parser.add_argument(
        "--spacing", type=float, nargs=3, default=(0.8, 0.8, 2.5), metavar=("X", "Y", "Z"), help="mm"
    )
    parser.add_argument("--lesion-fraction", type=float, default=0.5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--orientations",
        nargs="+",
        default=["axial"],
        help='cycled over series: axial, sagittal, coronal, optionally with oblique degrees ("axial:20")',
    )
    parser.add_argument("--no-labels-csv", action="store_true", help="do not write labels.csv")
    args = parser.parse_args(argv)
    series = write_dataset(
        args.out,
        n_patients=args.patients,
        series_per_patient=args.series_per_patient,
        shape_zyx=tuple(args.shape),
        spacing=tuple(args.spacing),
        lesion_fraction=args.lesion_fraction,
        seed=args.seed,
        orientations=args.orientations,
        labels_csv=not args.no_labels_csv,
    )
    n_files = sum(len(s.files) for s in series)
    n_pos = sum(s.label for s in series)
    print(
        f"wrote {len(series)} series ({n_pos} with lesion), {n_files} files, "
        f"{len({s.patient_id for s in series})} patients to {args.out}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
