"""Proposed preprocessing from a dataset fingerprint: target spacing, normalisation, patch size.

Rules, per modality (the sources are nnU-Net v2's, read from MIC-DKFZ/nnUNet at commit 0e49508):

* **Target spacing** (``ExperimentPlanner.determine_fullres_target_spacing``,
  nnunetv2/experiment_planning/experiment_planners/default_experiment_planner.py): the per-axis
  median of the spacings. If the coarsest median axis is more than ``ANISO_THRESHOLD = 3`` times the
  next coarsest (anisotropic spacing) *and* its median size in voxels times 3 is below the smallest
  median size of the other axes (few slices), that axis takes the 10th percentile of its spacings
  instead, but not below the other axes' largest spacing (then that + 1e-5 mm).
* **CT** (``CTNormalization``, nnunetv2/preprocessing/normalization/default_normalization_schemes.py):
  ``window`` = the foreground 0.5 / 99.5 percentiles (the clip), then ``normalize: ct_zscore`` with the
  foreground mean and std of the whole dataset (``zscore_mean``, ``zscore_std``).
* **Other modalities** (MR, ...; ``ZScoreNormalization``): ``normalize: zscore``, per image, no window.
* **Patch size** (after ``ExperimentPlanner.get_plans_for_configuration``, with a memory rule of thumb
  in place of nnU-Net's network-specific VRAM estimate): start from a patch with the aspect ratio of
  ``1 / target spacing`` and the volume of 256^3 voxels, clip it to the median size after resampling
  (``size x spacing / target``), round every axis down to a multiple of ``divisor`` (at least
  ``divisor``; smaller volumes are padded by the patch sampler); then, while ``batch_size x voxels x
  bytes_per_voxel`` exceeds ``memory_gb``, shrink by ``divisor`` the axis that is largest relative to
  the median size (nnU-Net's order). ``bytes_per_voxel = 2000`` is calibrated on nnU-Net's default:
  its 3D U-Net trains batch 2 of 128^3 patches within its 8 GB target (``UNet_vram_target_GB``); set
  it for another network.

Axis orders: spacing x-y-z mm (as ``preprocessing.spacing``), patch and sizes z-y-x voxels (as
``patches.size``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lightning_dicom.config import PatchConfig, PreprocessingConfig

__all__ = ["ANISO_THRESHOLD", "PlanSettings", "patch_size", "plan_modality", "plan_yaml", "target_spacing"]

#: nnU-Net's ``ANISO_THRESHOLD`` (nnunetv2/configuration.py).
ANISO_THRESHOLD = 3.0


@dataclass(frozen=True)
class PlanSettings:
    """Memory budget of the patch-size rule.

    Attributes:
        memory_gb: accelerator memory for training, GB (1e9 bytes); nnU-Net's default target is 8.
        batch_size: patches per batch (nnU-Net's 3D reference: 2).
        bytes_per_voxel: memory per patch voxel per sample (activations, gradients) of the network.
        divisor: patch sides are multiples of this (2^poolings of a U-Net; 16 = four poolings).
    """

    memory_gb: float = 8.0
    batch_size: int = 2
    bytes_per_voxel: float = 2000.0
    divisor: int = 16


def target_spacing(spacings: np.ndarray, sizes: np.ndarray) -> tuple[list[float], bool]:
    """``(target spacing x-y-z mm, anisotropic rule applied)`` from ``[n, 3]`` spacings and sizes."""
    spacings = np.asarray(spacings, float).reshape(-1, 3)
    target = np.percentile(spacings, 50, axis=0)
    median_size = np.percentile(np.asarray(sizes, float).reshape(-1, 3), 50, axis=0)
    worst = int(np.argmax(target))
    others = [i for i in range(3) if i != worst]
    aniso_spacing = target[worst] > ANISO_THRESHOLD * max(target[i] for i in others)
    aniso_voxels = median_size[worst] * ANISO_THRESHOLD < min(median_size[i] for i in others)
    if not (aniso_spacing and aniso_voxels):
        return [float(x) for x in target], False
    low = float(np.percentile(spacings[:, worst], 10))
    top = float(max(target[i] for i in others))
    if low < top:
        low = max(top, low) + 1e-5
    target[worst] = low
    return [float(x) for x in target], True


def patch_size(
    spacing_xyz: Sequence[float], median_size_zyx: Sequence[float], settings: PlanSettings
) -> tuple[list[int], float]:
    """``(patch z-y-x voxels, estimated GB for a batch)`` by the rule in the module docstring."""
    d = settings.divisor
    inv = 1.0 / np.asarray(spacing_xyz, float)[::-1]  # z-y-x
    initial = np.round(inv * (256**3 / np.prod(inv)) ** (1 / 3))
    median = np.asarray(median_size_zyx, float)
    patch = [max(d, int(min(i, m) // d) * d) for i, m in zip(initial, median, strict=True)]

    def gb(p: Sequence[int]) -> float:
        return settings.batch_size * math.prod(p) * settings.bytes_per_voxel / 1e9

    while gb(patch) > settings.memory_gb:
        ratios = [p / max(m, 1.0) if p > d else -1.0 for p, m in zip(patch, median, strict=True)]
        axis = int(np.argmax(ratios))
        if ratios[axis] < 0:
            break  # every side at the divisor: report it as it is
        patch[axis] -= d
    return patch, gb(patch)


@dataclass
class ModalityPlan:
    """What :func:`plan_modality` proposes for one modality, and why."""

    modality: str
    preprocessing: dict[str, Any]
    patch: list[int]
    patch_gb: float
    anisotropic: bool
    median_size_zyx: list[float]
    notes: list[str] = field(default_factory=list)


def plan_modality(modality: str, fp: dict[str, Any], settings: PlanSettings) -> ModalityPlan:
    """Apply the rules of this module to one modality's fingerprint (``fingerprint["modalities"][m]``)."""
    spacings = np.array(fp["spacings"], float)
    sizes = np.array(fp["sizes"], float)
    spacing, aniso = target_spacing(spacings, sizes)
    resampled = sizes * spacings / np.array(spacing)
    median_zyx = [float(x) for x in np.median(resampled, axis=0)[::-1]]
    prep: dict[str, Any] = {"spacing": [round(x, 4) for x in spacing]}
    notes = []
    inten = fp["intensity"]
    if modality == "CT" and "mean" in inten:
        prep.update(
            window=[round(inten["percentile_00_5"], 2), round(inten["percentile_99_5"], 2)],
            normalize="ct_zscore",
            zscore_mean=round(inten["mean"], 3),
            zscore_std=round(max(inten["std"], 1e-3), 3),
        )
    else:
        prep["normalize"] = "zscore"
        if modality == "CT":
            notes.append("no foreground voxel was read: per-image z-score instead of ct_zscore")
    PreprocessingConfig.model_validate(prep)  # the proposal is a valid config
    patch, gb = patch_size(spacing, median_zyx, settings)
    PatchConfig(size=tuple(patch))  # type: ignore[arg-type]
    if gb > settings.memory_gb:
        notes.append(f"smallest patch {patch} still needs {gb:.1f} GB > {settings.memory_gb} GB")
    return ModalityPlan(modality, prep, patch, gb, aniso, median_zyx, notes)


def plan_yaml(plan: ModalityPlan, fingerprint_path: str, with_patches: bool = True) -> str:
    """A LightningCLI YAML fragment (``--config``) with the proposal and its reasons as comments."""
    import yaml

    data: dict[str, Any] = {"selection": {"modalities": [plan.modality]}, "preprocessing": plan.preprocessing}
    if with_patches:
        data["patches"] = {"size": plan.patch}
    head = [
        f"# lightning-dicom plan for {plan.modality}; fingerprint: {fingerprint_path}",
        "# rules: lightning_dicom/planning/plan.py (nnU-Net v2's target spacing and CT normalisation)",
        f"# target spacing x-y-z mm: per-axis median{' (anisotropic: 10th percentile on the coarse axis)' if plan.anisotropic else ''}",
        f"# patches.size z-y-x: {plan.patch} ~ {plan.patch_gb:.2f} GB per batch (median size after resampling "
        f"{[round(x) for x in plan.median_size_zyx]})",
    ]
    head += [f"# note: {n}" for n in plan.notes]
    return "\n".join(head) + "\n" + yaml.safe_dump({"data": data}, sort_keys=False, default_flow_style=None)
