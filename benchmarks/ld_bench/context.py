"""What every loader row reads: the run's settings, as the parent wrote them to ``spec.json``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Ctx:
    """Settings of one loader process (built from the parent's spec by :meth:`from_spec`).

    Attributes:
        spec: the whole spec (data root, masks CSV, tiny warm-up series, variant sizes, ...).
        work: scratch folder for the caches.
        folders: one DICOM series folder per series.
        workers: DataLoader workers (and cache-build processes, and variant (c) threads).
        target: isotropic resampling target, mm.
        window: (low, high) HU clip window.
        epochs: epochs of the cached loaders.
        patch_zyx: patch size, z-y-x voxels.
        per_volume: patches per volume per epoch.
        uncached_epochs: epochs of the loaders without a cache that a target compares against.
        reference_epochs: epochs of the other loaders without a cache.
    """

    spec: dict[str, Any]
    work: Path
    folders: list[str]
    workers: int
    target: float
    window: tuple[float, float]
    epochs: int
    patch_zyx: list[int]
    per_volume: int
    uncached_epochs: int
    reference_epochs: int

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> Ctx:
        epochs = spec["epochs"]
        #: loaders that redo all the work every epoch run fewer epochs (their warm epoch = their cold one)
        uncached = min(epochs, spec["uncached_epochs"])
        lo, hi = spec["window"]
        return cls(
            spec=spec,
            work=Path(spec["work"]),
            folders=list(spec["folders"]),
            workers=spec["workers"],
            target=spec["target_spacing"],
            window=(lo, hi),
            epochs=epochs,
            patch_zyx=spec["patch_zyx"],
            per_volume=spec["per_volume"],
            uncached_epochs=uncached,
            reference_epochs=min(uncached, spec["reference_epochs"]),
        )
