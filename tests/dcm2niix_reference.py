"""dcm2niix as the independent reference for the real scanner data in ``../shared/realdata``.

Plain functions (no fixtures): run dcm2niix on a folder, load every NIfTI it writes (nibabel) with its
JSON sidecar (and .bval/.bvec), and turn each one into OUR convention so that it can be compared voxel
for voxel with a reader that yields z-y-x arrays and ITK geometry (origin, spacing, direction in DICOM
LPS, x-y-z order):

* each 3D volume (one per index of the NIfTI's 4th dimension) is a z-y-x array (RGB keeps a trailing
  channel axis), in modality units (scl_slope/scl_inter applied when set);
* its geometry is a 4x4 LPS affine mapping the voxel index (x, y, z) = (column, row, slice) to world mm
  (the NIfTI RAS affine with the first two rows negated).

dcm2niix flips rows (NIfTI j) relative to DICOM and may reverse the slice order, so a volume read
another way differs from it by a permutation/flip of axes. :func:`canonical` reorients any volume to the
axis order and signs nearest to +L, +P, +S (nibabel's ``as_closest_canonical`` in LPS); :func:`compare`
canonicalises both sides before comparing values and the world position of the 8 corner voxels.

Options (see ``dcm2niix -h``), chosen so that nothing is merged across series and values are DICOM's:
``-m n`` never merge series that differ in echo/TR/etc.; ``-i n`` keep derived images and localizers;
``-l o`` keep the stored integer type; ``-x i`` neither crop nor rotate 3D acquisitions (with ``-x n`` dcm2niix still reorients them to the nearest
  orthogonal axes, so its array no longer matches the shape it logs); ``-p n`` Philips display values
(RescaleSlope/Intercept = modality units, not "precise" FP values); ``-d 0`` only the given folder;
``-g i`` ignore any user defaults file; ``-ba n`` keep SeriesInstanceUID etc. in the sidecar.
One catch: with ``-p n`` dcm2niix ignores a slope/intercept that varies between slices, so when it warns
about that the folder is converted again with ``-p y`` (32-bit float, per-slice scaling applied; for
non-Philips data that is the same as display scaling). Outputs without their own sidecar are derived
variants: ``_Tilt_1`` (gantry tilt corrected, resampled), ``_Eq_1`` (uneven slices resampled to equal
spacing); their ``variant`` says so and they share the primary output's sidecar.

dcm2niix does not list the files behind an output; :func:`source_files` maps an output back to its DICOM
files by SeriesInstanceUID, SeriesNumber and (when the sidecar has one) EchoNumber.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np
from nibabel.orientations import apply_orientation, inv_ornt_aff, io_orientation


def _find_realdata() -> Path:
    """``$REALDATA_DIR``, else ``../shared/realdata`` from the repository root; from a git worktree
    elsewhere, from the main checkout's root (found through git's common dir)."""
    if os.environ.get("REALDATA_DIR"):
        return Path(os.environ["REALDATA_DIR"])
    repo = Path(__file__).resolve().parents[1]
    candidates = [repo.parent / "shared" / "realdata"]
    git = repo / ".git"
    if git.is_file():  # a worktree: "gitdir: <main>/.git/worktrees/<name>"
        gitdir = Path(git.read_text().split(":", 1)[1].strip())
        candidates.append(gitdir.parents[2].parent / "shared" / "realdata")
    return next((c for c in candidates if c.is_dir()), candidates[0])


REALDATA = _find_realdata()
CORNER_TOL_MM = 0.01
VALUE_RTOL = 1e-3
_LPS_FROM_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
BASE_ARGS = (
    "-b",
    "y",
    "-ba",
    "n",
    "-z",
    "n",
    "-m",
    "n",
    "-i",
    "n",
    "-l",
    "o",
    "-x",
    "i",
    "-g",
    "i",
    "-w",
    "2",
    "-f",
    "%s_%j_%e",
)
_VARIANCE_IGNORED = "slope/intercept is being ignored"


def dcm2niix_path() -> str | None:
    """The dcm2niix executable: on PATH, or next to this interpreter (a venv's bin/ need not be on PATH)."""
    found = shutil.which("dcm2niix")
    if found:
        return found
    local = Path(sys.executable).parent / "dcm2niix"
    return str(local) if local.exists() else None


def dcm2niix_version() -> str:
    exe = dcm2niix_path()
    if exe is None:
        return ""
    out = subprocess.run([exe, "--version"], capture_output=True, text=True, check=False)
    match = re.search(r"v\d+\.\d+\.\d+\w*", out.stdout + out.stderr)
    return match.group(0) if match else ""


# --------------------------------------------------------------------------------------------- data


@dataclass
class RefVolume:
    """One 3D volume: z-y-x array (modality units) and the LPS affine of voxel index (x, y, z)."""

    array: np.ndarray
    affine: np.ndarray

    @property
    def origin(self) -> np.ndarray:
        return self.affine[:3, 3].copy()

    @property
    def spacing(self) -> np.ndarray:
        return np.linalg.norm(self.affine[:3, :3], axis=0)

    @property
    def direction(self) -> np.ndarray:
        return self.affine[:3, :3] / self.spacing

    def corners(self) -> np.ndarray:
        return corners(self.array.shape[:3], self.affine)

    def canonical(self) -> RefVolume:
        return RefVolume(*canonical(self.array, self.affine))


@dataclass
class RefSeries:
    """One NIfTI written by dcm2niix: its volumes (4th dimension in dcm2niix's order) and sidecar."""

    nifti: Path
    volumes: list[RefVolume]
    sidecar: dict = field(default_factory=dict)
    bvals: np.ndarray | None = None  # one per volume (.bval)
    bvecs: np.ndarray | None = None  # 3 x volumes, FSL image-space convention (.bvec), not LPS
    variant: str = ""  # "" for a primary output; "Tilt_1", "Eq_1", "Tilt_Eq_1" for resampled variants
    p_option: str = "n"  # the -p option the folder was converted with
    log: str = ""  # dcm2niix's stdout+stderr for the folder

    @property
    def shape(self) -> tuple[int, ...]:
        """(nx, ny, nz, volumes) as dcm2niix reports it (+ channels for RGB)."""
        a = self.volumes[0].array
        return (a.shape[2], a.shape[1], a.shape[0], len(self.volumes), *a.shape[3:])

    @property
    def series_uid(self) -> str:
        return str(self.sidecar.get("SeriesInstanceUID", ""))

    @property
    def series_number(self) -> int | None:
        return self.sidecar.get("SeriesNumber")

    @property
    def acquisition_number(self) -> int | None:
        return self.sidecar.get("AcquisitionNumber")

    @property
    def echo_number(self) -> int | None:
        return self.sidecar.get("EchoNumber")

    @property
    def echo_time(self) -> float | None:
        return self.sidecar.get("EchoTime")

    @property
    def image_type(self) -> tuple[str, ...]:
        return tuple(self.sidecar.get("ImageType", ()))

    @property
    def fourth_dim(self) -> str:
        """What dcm2niix's 4th dimension runs over: "" (one volume), "bval" (a .bval was written: b-value
        and direction), else "time" (with ``-m n`` dcm2niix writes each echo to its own file)."""
        if len(self.volumes) == 1:
            return ""
        return "bval" if self.bvals is not None else "time"


# ------------------------------------------------------------------------------------ geometry


def itk_affine(origin_xyz: Sequence[float], spacing_xyz: Sequence[float], direction_3x3) -> np.ndarray:
    """4x4 LPS affine of an ITK-style geometry (world = origin + direction @ diag(spacing) @ index)."""
    aff = np.eye(4)
    aff[:3, :3] = np.asarray(direction_3x3, float).reshape(3, 3) * np.asarray(spacing_xyz, float)
    aff[:3, 3] = np.asarray(origin_xyz, float)
    return aff


def corners(shape_zyx: Sequence[int], affine_lps: np.ndarray) -> np.ndarray:
    """World LPS coordinates (8 x 3, mm) of the centres of the corner voxels, index (0,0,0) first,
    (nx-1, ny-1, nz-1) last, x varying fastest."""
    nz, ny, nx = shape_zyx[:3]
    idx = np.array([[i, j, k, 1.0] for k in (0, nz - 1) for j in (0, ny - 1) for i in (0, nx - 1)])
    return (idx @ affine_lps.T)[:, :3]


def canonical(array_zyx: np.ndarray, affine_lps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Reorient a z-y-x volume (trailing channel axes allowed) so that its x, y, z index axes are the
    ones nearest to +L, +P, +S; returns the new array (a view where possible) and its LPS affine. The
    voxels' world positions are unchanged."""
    rest = tuple(range(3, array_zyx.ndim))
    xyz = array_zyx.transpose(2, 1, 0, *rest)
    ornt = io_orientation(affine_lps)
    out = apply_orientation(xyz, ornt)
    aff = affine_lps @ inv_ornt_aff(ornt, xyz.shape[:3])
    return out.transpose(2, 1, 0, *rest), aff


# ------------------------------------------------------------------------------------ loading


def _to_zyx_volumes(img: nib.Nifti1Image) -> list[np.ndarray]:
    raw = np.asanyarray(img.dataobj.get_unscaled())
    if raw.dtype.names:  # RGB24 / RGBA32: structured -> trailing channel axis
        raw = np.stack([raw[name] for name in raw.dtype.names], axis=-1)
        colour = 1
    else:
        colour = 0
        slope, inter = img.dataobj.slope, img.dataobj.inter
        if slope != 1 or inter != 0:
            raw = raw.astype(np.float64) * float(slope) + float(inter)
    spatial_nd = raw.ndim - colour
    while spatial_nd < 3:  # 2D image written as 2D
        raw = raw[:, :, None] if colour == 0 else raw[:, :, None, :]
        spatial_nd += 1
    if spatial_nd == 3:
        raw = raw[:, :, :, None] if colour == 0 else raw[:, :, :, None, :]
    elif spatial_nd > 4:
        raw = raw.reshape(*raw.shape[:3], -1, *raw.shape[spatial_nd:])
    chan = raw.shape[4:]
    return [
        np.ascontiguousarray(raw[:, :, :, t].transpose(2, 1, 0, *range(3, 3 + len(chan))))
        for t in range(raw.shape[3])
    ]


def load_nifti(path: str | Path) -> list[RefVolume]:
    """A NIfTI as a list of z-y-x volumes with their LPS affines (sform when set, else qform)."""
    img = nib.load(str(path))
    affine = _LPS_FROM_RAS @ img.affine
    return [RefVolume(arr, affine.copy()) for arr in _to_zyx_volumes(img)]


def _sidecar_for(nii: Path, jsons: dict[str, Path]) -> tuple[Path | None, str]:
    if nii.stem in jsons:
        return jsons[nii.stem], ""
    prefixes = [s for s in jsons if nii.stem.startswith(s + "_")]
    if not prefixes:
        return None, "?"
    best = max(prefixes, key=len)
    return jsons[best], nii.stem[len(best) + 1 :]


def load_outputs(out_dir: str | Path, *, p_option: str = "n", log: str = "") -> list[RefSeries]:
    """Every NIfTI in ``out_dir`` (a dcm2niix output folder), sorted by file name."""
    out_dir = Path(out_dir)
    jsons = {p.stem: p for p in out_dir.glob("*.json")}
    series = []
    for nii in sorted(out_dir.glob("*.nii")):
        side, variant = _sidecar_for(nii, jsons)
        bval, bvec = nii.with_suffix(".bval"), nii.with_suffix(".bvec")
        series.append(
            RefSeries(
                nifti=nii,
                volumes=load_nifti(nii),
                sidecar=json.loads(side.read_text()) if side else {},
                bvals=np.loadtxt(bval, ndmin=1) if bval.exists() else None,
                bvecs=np.loadtxt(bvec, ndmin=2) if bvec.exists() else None,
                variant=variant,
                p_option=p_option,
                log=log,
            )
        )
    return series


# ----------------------------------------------------------------------------------- conversion


def _run(src: Path, out_dir: Path, p_option: str) -> str:
    exe = dcm2niix_path()
    if exe is None:
        raise FileNotFoundError("dcm2niix is not installed (pip install dcm2niix)")
    for old in out_dir.iterdir():
        if old.is_file():
            old.unlink()
    cmd = [exe, *BASE_ARGS, "-p", p_option, "-d", "0", "-o", str(out_dir), str(src)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    log = f"exit {proc.returncode}\n{proc.stdout}{proc.stderr}"
    if proc.returncode not in (0, 2, 8, 10):  # 2: no DICOM found, 8: some failed, 10: incomplete volumes
        raise RuntimeError(f"dcm2niix failed ({proc.returncode}) on {src}:\n{log}")
    return log


def convert(folder_or_files: str | Path | Iterable[str | Path], out_dir: str | Path) -> list[RefSeries]:
    """Run dcm2niix on one folder (not its sub-folders) or on a list of files (symlinked into a
    temporary folder first) into ``out_dir``, and load every output (see module docstring). Files
    already in ``out_dir`` are deleted first: give each conversion its own folder."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        if isinstance(folder_or_files, (str, os.PathLike)):
            src = Path(folder_or_files)
        else:
            src = Path(tmp)
            for k, f in enumerate(folder_or_files):
                (src / f"{k:05d}_{Path(f).name}").symlink_to(Path(f).resolve())
        p_option = "n"
        log = _run(src, out_dir, p_option)
        if _VARIANCE_IGNORED in log:
            p_option = "y"
            log = _run(src, out_dir, p_option)
    (out_dir / "dcm2niix.log").write_text(f"-p {p_option}\n{log}")
    return load_outputs(out_dir, p_option=p_option, log=log)


NOT_DICOM_SUFFIXES = (".md", ".txt", ".json")


def realdata_folders(root: str | Path = REALDATA) -> list[Path]:
    """Every folder under ``root`` that directly holds DICOM files (not only README/notes), sorted."""
    root = Path(root)
    return sorted(
        {p.parent for p in root.rglob("*") if p.is_file() and p.suffix.lower() not in NOT_DICOM_SUFFIXES}
    )


def _cache_key() -> str:
    return json.dumps({"version": dcm2niix_version(), "args": BASE_ARGS})


def convert_realdata(cache_dir: str | Path, root: str | Path = REALDATA) -> dict[str, list[RefSeries]]:
    """dcm2niix on every folder of the real data, one output folder per input folder (relative path,
    '/' separated, is the key). Conversion is cached in ``cache_dir`` (keyed on dcm2niix's version and
    options); a second call only loads the NIfTIs. All 764 files convert in about 2 s."""
    root, cache_dir = Path(root), Path(cache_dir)
    key = _cache_key()
    out = {}
    for folder in realdata_folders(root):
        rel = folder.relative_to(root).as_posix()
        dest = cache_dir / rel
        stamp = dest / "dcm2niix.key"
        if stamp.exists() and stamp.read_text() == key:
            log = (dest / "dcm2niix.log").read_text()
            p_option = log.split("\n", 1)[0].split()[-1]
            out[rel] = load_outputs(dest, p_option=p_option, log=log.split("\n", 1)[1])
        else:
            out[rel] = convert(folder, dest)
            stamp.write_text(key)
    return out


def time_realdata_conversion(root: str | Path = REALDATA) -> float:
    """Seconds to convert all of the real data (without loading the outputs)."""
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        for k, folder in enumerate(realdata_folders(root)):
            dest = Path(tmp) / str(k)
            dest.mkdir()
            _run(folder, dest, "n")
        return time.perf_counter() - start


# ------------------------------------------------------------------------------ mapping back


def _header(path: Path):
    import pydicom

    try:
        return pydicom.dcmread(str(path), stop_before_pixels=True, force=True)
    except Exception:  # not DICOM
        return None


def source_files(ref: RefSeries, candidates: str | Path | Iterable[str | Path]) -> list[Path]:
    """The DICOM files (among a folder's files, or a list) behind a dcm2niix output: same
    SeriesInstanceUID, same SeriesNumber and, when the sidecar has an EchoNumber, same EchoNumbers."""
    if isinstance(candidates, (str, os.PathLike)):
        candidates = [
            p
            for p in Path(candidates).iterdir()
            if p.is_file() and p.suffix.lower() not in NOT_DICOM_SUFFIXES
        ]
    out = []
    for path in sorted(Path(p) for p in candidates):
        ds = _header(path)
        if ds is None or str(ds.get("SeriesInstanceUID", "")) != ref.series_uid:
            continue
        if (
            ref.series_number is not None
            and ds.get("SeriesNumber") is not None
            and int(ds.SeriesNumber) != int(ref.series_number)
        ):
            continue
        if (
            ref.echo_number is not None
            and ds.get("EchoNumbers") is not None
            and int(ds.EchoNumbers) != int(ref.echo_number)
        ):
            continue
        out.append(path)
    return out


# ---------------------------------------------------------------------------------- comparison


@dataclass
class Comparison:
    shape_ours: tuple[int, ...]  # z-y-x after canonicalisation
    shape_ref: tuple[int, ...]
    max_abs_diff: float  # nan when the shapes differ
    max_corner_mm: float  # nan when the shapes differ
    values_close: bool
    integer_exact: bool  # both sides integer-valued arrays (then values_close means exactly equal)

    @property
    def same_shape(self) -> bool:
        return self.shape_ours == self.shape_ref

    def ok(self, corner_tol_mm: float = CORNER_TOL_MM) -> bool:
        return self.same_shape and self.values_close and self.max_corner_mm <= corner_tol_mm

    def __str__(self) -> str:
        return (
            f"shape ours {self.shape_ours} ref {self.shape_ref}, max |diff| {self.max_abs_diff:.6g}, "
            f"max corner distance {self.max_corner_mm:.6g} mm"
        )


def _values_close(ours: np.ndarray, ref: np.ndarray, rtol: float) -> tuple[float, bool, bool]:
    ints = ours.dtype.kind in "iub" and ref.dtype.kind in "iub"
    if ints:
        diff = np.abs(ours.astype(np.int64) - ref.astype(np.int64))
        top = float(diff.max()) if diff.size else 0.0
        return top, top == 0, True
    a, b = ours.astype(np.float64), ref.astype(np.float64)
    diff = np.abs(a - b)
    top = float(diff.max()) if diff.size else 0.0
    scale = float(np.abs(b).max()) if b.size else 0.0
    close = bool(np.all(diff <= rtol * np.abs(b) + 1e-6 * max(scale, 1.0)))
    return top, close, False


def compare(
    ours_zyx: np.ndarray,
    ours_origin_xyz,
    ours_spacing_xyz,
    ours_direction_3x3,
    ref: RefVolume,
    *,
    rtol: float = VALUE_RTOL,
) -> Comparison:
    """Compare a volume in ITK geometry (z-y-x array; origin, spacing, direction in LPS) with a dcm2niix
    volume, both canonicalised: max |value difference| and max distance (mm) between corner voxels."""
    ours_arr, ours_aff = canonical(
        np.asarray(ours_zyx), itk_affine(ours_origin_xyz, ours_spacing_xyz, ours_direction_3x3)
    )
    ref_arr, ref_aff = canonical(ref.array, ref.affine)
    if ours_arr.shape != ref_arr.shape:
        return Comparison(ours_arr.shape, ref_arr.shape, float("nan"), float("nan"), False, False)
    top, close, ints = _values_close(ours_arr, ref_arr, rtol)
    dist = np.linalg.norm(corners(ours_arr.shape, ours_aff) - corners(ref_arr.shape, ref_aff), axis=1)
    return Comparison(ours_arr.shape, ref_arr.shape, top, float(dist.max()), close, ints)


def compare_sitk(image, ref: RefVolume, **kw) -> Comparison:
    """:func:`compare` for a SimpleITK image."""
    import SimpleITK as sitk

    return compare(
        sitk.GetArrayFromImage(image),
        image.GetOrigin(),
        image.GetSpacing(),
        np.reshape(image.GetDirection(), (3, 3)),
        ref,
        **kw,
    )


def assert_same_volume(
    ours_zyx: np.ndarray,
    ours_origin_xyz,
    ours_spacing_xyz,
    ours_direction_3x3,
    ref: RefVolume,
    *,
    corner_tol_mm: float = CORNER_TOL_MM,
    rtol: float = VALUE_RTOL,
) -> Comparison:
    """Same shape after canonicalisation, corners within ``corner_tol_mm``, values exactly equal
    (integers) or within ``rtol`` relative (floats)."""
    report = compare(ours_zyx, ours_origin_xyz, ours_spacing_xyz, ours_direction_3x3, ref, rtol=rtol)
    assert report.same_shape, f"canonical shapes differ: {report}"
    assert report.values_close, f"values differ: {report}"
    assert report.max_corner_mm <= corner_tol_mm, f"corners differ: {report}"
    return report
