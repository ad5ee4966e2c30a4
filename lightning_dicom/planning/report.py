"""``plan_dataset``: fingerprint, proposal, YAML fragments, text report and PNGs in one call."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lightning_dicom.config import DataConfig
from lightning_dicom.files import atomic_write
from lightning_dicom.planning.fingerprint import (
    CT_BODY_THRESHOLD_HU,
    FingerprintSettings,
    dataset_fingerprint,
)
from lightning_dicom.planning.plan import ModalityPlan, PlanSettings, plan_modality, plan_yaml

__all__ = ["PlanResult", "format_report", "plan_dataset"]


@dataclass
class PlanResult:
    """What :func:`plan_dataset` wrote: the fingerprint and, per modality, the plan and file paths."""

    fingerprint: dict[str, Any]
    fingerprint_path: Path
    plans: dict[str, ModalityPlan]
    files: dict[str, list[Path]] = field(default_factory=dict)
    report: str = ""
    seconds: float = 0.0


def _fmt(v: list[float], nd: int = 3) -> str:
    return "[" + ", ".join(f"{x:.{nd}g}" for x in v) + "]"


def format_report(fingerprint: dict[str, Any], plans: dict[str, ModalityPlan], settings: PlanSettings) -> str:
    """A short human-readable report of the fingerprint and the proposal."""
    lines = []
    for mod, fp in fingerprint["modalities"].items():
        plan = plans[mod]
        sp, sz, inten = fp["spacing"], fp["size"], fp["intensity"]
        planes = ", ".join(f"{k} {v}" for k, v in sorted(fp["planes"].items()))
        lines += [
            f"{mod}: {fp['n_series']} series ({planes})",
            f"  spacing x-y-z mm  median {_fmt(sp['median'])}  p10 {_fmt(sp['p10'])}  p90 {_fmt(sp['p90'])}"
            f"  min {_fmt(sp['min'])}  max {_fmt(sp['max'])}",
            f"  size x-y-z vox    median {_fmt(sz['median'], 4)}  min {_fmt(sz['min'], 4)}  max {_fmt(sz['max'], 4)}",
        ]
        n_read, n_failed = len(inten["series_read"]), len(inten["series_failed"])
        fg = ", ".join(f"{k}: {v}" for k, v in inten["foreground"].items()) or "-"
        if "mean" in inten:
            lines.append(
                f"  foreground ({fg}; {n_read} series read, {n_failed} failed): mean {inten['mean']:.1f}  "
                f"std {inten['std']:.1f}  p0.5 {inten['percentile_00_5']:.1f}  median {inten['median']:.1f}  "
                f"p99.5 {inten['percentile_99_5']:.1f}  min {inten['min']:.1f}  max {inten['max']:.1f}"
            )
        else:
            lines.append(f"  foreground: no voxel read ({n_read} series read, {n_failed} failed)")
        for sid, why in inten["series_failed"][:3]:
            lines.append(f"    failed {sid}: {why}")
        rule = "median per axis" + (
            "; anisotropic: coarse axis at its 10th percentile" if plan.anisotropic else " (not anisotropic)"
        )
        lines += [
            f"  -> preprocessing: {plan.preprocessing}",
            f"     target spacing: {rule}",
            f"  -> patches.size z-y-x {plan.patch}: {plan.patch_gb:.2f} GB for batch {settings.batch_size} "
            f"at {settings.bytes_per_voxel:g} B/voxel (budget {settings.memory_gb:g} GB); median size after "
            f"resampling {_fmt(plan.median_size_zyx, 4)}",
        ]
        lines += [f"  note: {n}" for n in plan.notes]
    lines.append(
        f"foreground without a mask: CT HU > {CT_BODY_THRESHOLD_HU:g}, other modalities above Otsu's threshold"
    )
    return "\n".join(lines)


def _write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda tmp: Path(tmp).write_text(text))


def plan_dataset(
    cfg: DataConfig,
    out_dir: str | Path | None = None,
    *,
    fingerprint_settings: FingerprintSettings | None = None,
    plan_settings: PlanSettings | None = None,
    figures: bool = True,
    with_patches: bool = True,
    progress: bool = False,
) -> PlanResult:
    """Fingerprint the selected series and write, under ``out_dir`` (default ``<work_dir>/plan``):
    ``plan_<MODALITY>.yaml`` (a ``--config`` fragment), ``plan.txt`` (the report) and
    ``plan_<MODALITY>.png`` (histograms; needs matplotlib, the ``viz`` extra).

    Raises:
        LightningDicomError: no series selected.
    """
    t0 = time.perf_counter()
    settings = plan_settings or PlanSettings()
    out = Path(out_dir) if out_dir is not None else cfg.resolved_work_dir() / "plan"
    fp, fp_path = dataset_fingerprint(cfg, out, fingerprint_settings, progress=progress)
    plans = {m: plan_modality(m, f, settings) for m, f in fp["modalities"].items()}
    report = format_report(fp, plans, settings)
    files: dict[str, list[Path]] = {}
    for mod, plan in plans.items():
        y = out / f"plan_{mod}.yaml"
        _write_text(y, plan_yaml(plan, str(fp_path), with_patches))
        files[mod] = [y]
        if figures:
            from lightning_dicom.planning.figures import save_fingerprint_png

            samples = np.load(out / fp["modalities"][mod]["samples"], allow_pickle=False)
            files[mod].append(
                save_fingerprint_png(
                    mod, fp["modalities"][mod], samples, plan.preprocessing, out / f"plan_{mod}.png"
                )
            )
    _write_text(out / "plan.txt", report + "\n")
    return PlanResult(fp, fp_path, plans, files, report, time.perf_counter() - t0)
