"""Synthetic multi-series studies for subjects: a T1, a T2 on another grid (other spacing, field of
view and an oblique orientation) and, for some patients, a FLAIR, all sampled from one smooth field
defined in world coordinates (LPS mm), so that a correct resampling onto the T1 grid is checkable.

Values are MR units (RescaleIntercept 0): ``field(p) = 400 + 120 sin(x/9) + 80 cos(y/7) + 3 z`` plus
``lesion_gain`` inside a sphere of radius 6 mm when the study is labelled 1; the T2 is ``0.5 x`` that
field + 200, the FLAIR ``0.8 x`` + 100, each rounded to integers.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom.uid import generate_uid

from lightning_dicom.demo.synthetic import SyntheticSeries, direction_from_orientation, write_series

__all__ = ["SyntheticStudy", "field", "main", "write_subject_dataset", "world_points"]

_NS = "lightning_dicom.demo.synthetic_subjects"


@dataclass(frozen=True)
class SyntheticStudy:
    """One study: its series by input name (``t1``, ``t2``, maybe ``flair``) and its label."""

    study_uid: str
    patient_id: str
    label: int
    series: dict[str, SyntheticSeries]


def world_points(shape_zyx: Sequence[int], spacing: Sequence[float], origin: Sequence[float],
                 direction: Sequence[float]) -> np.ndarray:  # fmt: skip
    """LPS mm of every voxel centre, ``[z, y, x, 3]``: origin + D @ (index_xyz * spacing)."""
    nz, ny, nx = (int(v) for v in shape_zyx)
    k, j, i = np.meshgrid(np.arange(nz), np.arange(ny), np.arange(nx), indexing="ij")
    idx = np.stack([i, j, k], axis=-1).astype(np.float64) * np.asarray(spacing, dtype=np.float64)
    mat = np.asarray(direction, dtype=np.float64).reshape(3, 3)
    return idx @ mat.T + np.asarray(origin, dtype=np.float64)


def field(points: np.ndarray, *, lesion: bool, centre: Sequence[float] = (2.0, -3.0, 1.0),
          lesion_gain: float = 300.0) -> np.ndarray:  # fmt: skip
    """The T1 intensity at LPS points ``[..., 3]`` (see the module docstring)."""
    x, y, z = points[..., 0], points[..., 1], points[..., 2]
    out = 400.0 + 120.0 * np.sin(x / 9.0) + 80.0 * np.cos(y / 7.0) + 3.0 * z
    if lesion:
        out = out + lesion_gain * (np.linalg.norm(points - np.asarray(centre), axis=-1) <= 6.0)
    return out


def write_subject_dataset(
    root: Path | str,
    *,
    n_patients: int = 6,
    flair_every: int = 2,
    t1_shape: Sequence[int] = (12, 24, 24),
    seed: int = 0,
) -> list[SyntheticStudy]:
    """Write ``n_patients`` studies under ``root/<patient>/<series>/`` and ``root/labels.csv``
    (StudyInstanceUID -> label, half the studies labelled 1 with a lesion).

    T1: axial, spacing (1, 1, 2) mm, ``t1_shape`` voxels centred on the origin. T2: oblique (20 degrees
    about the row axis), spacing (1.3, 1.3, 2.5) mm, a field of view shifted by (3, -2, 1) mm and 2
    voxels smaller in-plane. FLAIR: coronal, spacing (1.5, 2, 1.5), for every ``flair_every``-th patient.
    All series of a study share its FrameOfReferenceUID.
    """
    root = Path(root)
    studies = []
    nz, ny, nx = (int(v) for v in t1_shape)
    for p in range(n_patients):
        pid = f"SUBJ{p:04d}"
        study_uid = generate_uid(entropy_srcs=[_NS, "study", pid, str(seed)])
        label = int(p % 2)
        grids = {
            "t1": ("T1 MPRAGE", (nz, ny, nx), (1.0, 1.0, 2.0), direction_from_orientation("axial"), (0, 0, 0), 1.0, 0.0),
            "t2": ("T2 TSE", (max(nz - 2, 2), ny - 2, nx - 2), (1.3, 1.3, 2.5),
                   direction_from_orientation("axial", 20.0), (3.0, -2.0, 1.0), 0.5, 200.0),
        }  # fmt: skip
        if flair_every and p % flair_every == 0:
            grids["flair"] = ("FLAIR", (ny // 2, nz, nx), (1.5, 2.0, 1.5), direction_from_orientation("coronal"),
                              (0.0, 0.0, 0.0), 0.8, 100.0)  # fmt: skip
        series = {}
        for k, (name, (desc, (sz, sy, sx), spacing, direction, shift, gain, offset)) in enumerate(
            grids.items()
        ):
            mat = np.asarray(direction).reshape(3, 3)
            half = mat @ (np.array([sx - 1, sy - 1, sz - 1], dtype=float) * np.asarray(spacing) / 2.0)
            origin = tuple(float(v) for v in (np.asarray(shift) - half))
            pts = world_points((sz, sy, sx), spacing, origin, direction)
            values = np.rint(gain * field(pts, lesion=bool(label)) + offset)
            series[name] = write_series(
                root / pid / name,
                values,
                spacing=spacing,
                origin=origin,
                direction=direction,
                patient_id=pid,
                patient_name=f"SUBJ^{p:04d}",
                study_uid=study_uid,
                series_uid=generate_uid(entropy_srcs=[_NS, "series", pid, name, str(seed)]),
                modality="MR",
                series_description=desc,
                series_number=k + 1,
                rescale_intercept=0.0,
                seed=seed + p,
                label=label,
            )
        studies.append(SyntheticStudy(study_uid, pid, label, series))
    with open(root / "labels.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["StudyInstanceUID", "label"])
        for s in studies:
            w.writerow([s.study_uid, s.label])
    return studies


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m lightning_dicom.demo.synthetic_subjects OUT [--patients N]``: write a subject dataset."""
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("out", type=Path)
    parser.add_argument("--patients", type=int, default=12)
    args = parser.parse_args(argv)
    studies = write_subject_dataset(args.out, n_patients=args.patients)
    print(f"wrote {len(studies)} studies (T1, T2, FLAIR for every second one) and labels.csv to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
