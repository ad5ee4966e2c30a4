"""Experiment planning: a dataset fingerprint (spacing, size, orientation, foreground intensities per
modality) and the preprocessing, normalisation and patch size it proposes (nnU-Net v2's rules)."""

from lightning_dicom.planning.fingerprint import FingerprintSettings, dataset_fingerprint
from lightning_dicom.planning.plan import PlanSettings, patch_size, plan_modality, target_spacing
from lightning_dicom.planning.report import PlanResult, plan_dataset

__all__ = [
    "FingerprintSettings",
    "PlanResult",
    "PlanSettings",
    "dataset_fingerprint",
    "patch_size",
    "plan_dataset",
    "plan_modality",
    "target_spacing",
]
