"""Pydantic v2 configuration models: what to index, which series to use, how to preprocess,
split, cache and load them.

Every model forbids unknown keys; every field documents its unit. :class:`DataConfig` is the
root. ``DataConfig.model_json_schema()`` (or ``lightning-dicom schema``) exports a JSON Schema for
editors and for validating YAML files.

Axis conventions: ``spacing`` is x-y-z in mm (SimpleITK/DICOM order); ``size`` and ``patch_size``
are z-y-x voxels, the order of the output tensor ``[C, D, H, W]``.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from lightning_dicom._validators import ordered_window
from lightning_dicom.errors import ConfigError
from lightning_dicom.subjects.config import SubjectsConfig

__all__ = [
    "AugmentConfig",
    "CacheConfig",
    "DataConfig",
    "InferenceConfig",
    "LoaderConfig",
    "MaskConfig",
    "PatchConfig",
    "PreprocessingConfig",
    "SelectionConfig",
    "SplitConfig",
    "cache_home",
    "default_work_dir",
    "validation_message",
]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


def _positive3(v: tuple[float, float, float] | None, name: str) -> tuple[float, float, float] | None:
    if v is not None and any(not (x > 0) for x in v):
        raise ValueError(f"{name} must be three positive numbers, got {list(v)}")
    return v


class SelectionConfig(_Model):
    """Rules that choose which indexed series become samples (never "the first series")."""

    modalities: list[str] | None = Field(
        default=["CT", "MR"],
        description="Modality (0008,0060) values to keep, e.g. ['CT']; null keeps every image modality.",
    )
    min_slices: int = Field(default=1, ge=1, description="Minimum number of slices (frames) a series needs.")
    colour: Literal["drop", "keep"] = Field(
        default="drop",
        description="Colour images (SamplesPerPixel (0028,0002) > 1: RGB/YBR screenshots, derived maps) are "
        "dropped by default, since they cannot be batched with grayscale volumes; 'keep' reads them as "
        "3-channel volumes.",
    )
    description: str | None = Field(
        default=None,
        description="Regular expression searched (case-insensitive) in SeriesDescription (0008,103E).",
    )
    exclude_description: str | None = Field(
        default=None, description="Regular expression; series whose description matches are dropped."
    )
    orientations: list[Literal["axial", "sagittal", "coronal", "oblique"]] | None = Field(
        default=None, description="Acquisition planes to keep (from ImageOrientationPatient); null keeps all."
    )
    b_value: list[float] | None = Field(
        default=None,
        description="Diffusion b-values (s/mm2) to keep, e.g. [0]; a volume without a b-value is dropped. "
        "null keeps every volume (DiffusionBValue (0018,9087) or the vendor's private b-value).",
    )
    echo_number: list[int] | None = Field(
        default=None,
        description="EchoNumbers (0018,0086) to keep, e.g. [1] for the first echo; null keeps all.",
    )
    temporal_index: list[int] | None = Field(
        default=None,
        description="0-based indices along a series' 4th dimension (time points / diffusion volumes, in "
        "dcm2niix's order) to keep, e.g. [0]; null keeps every volume.",
    )
    image_type: str | None = Field(
        default=None,
        description="Regular expression searched (case-insensitive) in ImageType (0008,0008) / FrameType "
        "(0008,9007) values joined by '\\', e.g. 'M(AGNITUDE)?$' or 'FIELD_MAP'; null keeps all.",
    )


class PreprocessingConfig(_Model):
    """SimpleITK preprocessing, applied in order: reorient, resample, clip, normalise, crop/pad."""

    irregular_stacks: Literal["reject", "resample"] = Field(
        default="reject",
        description="Stacks with missing slices, non-uniform spacing (beyond gap_tolerance) or gantry tilt: "
        "'reject' them with a reason, or 'resample' them onto an orthogonal uniform grid (linear, float32).",
    )
    gap_tolerance: float = Field(
        default=0.05,
        gt=0.0,
        lt=1.0,
        description="Largest relative deviation of a slice gap from the median before a stack is irregular.",
    )
    orientation: Literal["RAS", "LPS", "none"] = Field(
        default="LPS",
        description="Reorient the voxel axes so that x, y, z point to these directions (DICOM's "
        "convention of letters: 'LPS' gives an identity direction; 'RAS' flips x and y). 'none' keeps the "
        "acquisition order.",
    )
    spacing: tuple[float, float, float] | None = Field(
        default=None, description="Target voxel spacing in mm, x-y-z. null keeps the native spacing."
    )
    interpolation: Literal["linear", "bspline", "nearest"] = Field(
        default="linear", description="Interpolator used when resampling the image."
    )
    window: tuple[float, float] | None = Field(
        default=None, description="Clip intensities to [low, high] in modality units (HU for CT)."
    )
    normalize: Literal["minmax", "zscore", "ct_zscore", "none"] = Field(
        default="minmax",
        description="'minmax' scales to [0, 1] (using the window when set), 'zscore' to zero mean and unit "
        "variance per image, 'ct_zscore' clips to the window then subtracts zscore_mean and divides by "
        "zscore_std, fixed for the whole dataset (nnU-Net's CTNormalization; `lightning-dicom plan` proposes "
        "the three values from the foreground), 'none' keeps modality units.",
    )
    zscore_mean: float | None = Field(
        default=None,
        description="Dataset foreground mean in modality units (HU for CT), subtracted by 'ct_zscore'.",
    )
    zscore_std: float | None = Field(
        default=None,
        gt=0.0,
        description="Dataset foreground standard deviation in modality units, divided by 'ct_zscore'.",
    )
    size: tuple[int, int, int] | None = Field(
        default=None,
        description="Centre-crop / pad to this size in voxels, z-y-x (the tensor's D, H, W). "
        "Padding uses the image's minimum (background).",
    )

    @field_validator("spacing")
    @classmethod
    def _spacing_positive(cls, v: tuple[float, float, float] | None) -> tuple[float, float, float] | None:
        return _positive3(v, "spacing")

    @field_validator("size")
    @classmethod
    def _size_positive(cls, v: tuple[int, int, int] | None) -> tuple[int, int, int] | None:
        if v is not None and any(x < 1 for x in v):
            raise ValueError(f"size must be three integers >= 1 (z-y-x voxels), got {list(v)}")
        return v

    @field_validator("window")
    @classmethod
    def _window_ordered(cls, v: tuple[float, float] | None) -> tuple[float, float] | None:
        return ordered_window(v)

    @model_validator(mode="after")
    def _ct_zscore(self) -> PreprocessingConfig:
        fixed = self.zscore_mean is not None or self.zscore_std is not None
        if self.normalize == "ct_zscore":
            if self.window is None or self.zscore_mean is None or self.zscore_std is None:
                raise ValueError(
                    "normalize 'ct_zscore' needs window (the clip, e.g. the foreground 0.5/99.5 percentiles), "
                    "zscore_mean and zscore_std (see `lightning-dicom plan`)"
                )
        elif fixed:
            raise ValueError(
                f"zscore_mean/zscore_std are used only by normalize 'ct_zscore', not {self.normalize!r}"
            )
        return self

    def digest(self) -> str:
        """Stable hash of the settings that change the preprocessed array (part of the cache key).

        ``zscore_mean``/``zscore_std`` enter only when set, so configs without them keep the keys they
        had before the fields existed (no cache rebuilt by the upgrade)."""
        dump = self.model_dump(mode="json")
        for k in ("zscore_mean", "zscore_std"):
            if dump[k] is None:
                del dump[k]
        return hashlib.sha256(json.dumps(dump, sort_keys=True).encode()).hexdigest()


class SplitConfig(_Model):
    """Train/val/test split by series, optionally grouped so a patient's series stay together."""

    val: float = Field(
        default=0.2, ge=0.0, lt=1.0, description="Fraction of groups in validation (ignored with folds)."
    )
    test: float = Field(default=0.0, ge=0.0, lt=1.0, description="Fraction of groups in test.")
    seed: int = Field(default=0, description="Seed of the hash-based assignment.")
    group_by: Literal["patient", "study", "series"] = Field(
        default="patient",
        description="Unit kept together: 'patient' (default; series-level splits leak patients), 'study', "
        "or 'series'.",
    )
    folds: int | None = Field(
        default=None,
        ge=2,
        description="K-fold cross-validation: the non-test groups are cut into K folds and fold `fold` is "
        "the validation part (replaces val). The test part is held out first, the same for every fold.",
    )
    fold: int = Field(default=0, ge=0, description="Which fold (0..folds-1) validates; the others train.")
    stratify: bool = Field(
        default=False,
        description="Keep each class's share equal in every part (and fold), still grouped: a group's "
        "class is its most frequent label (ties: the smallest). Needs one class label column.",
    )

    @model_validator(mode="after")
    def _fractions(self) -> SplitConfig:
        if self.folds is not None:
            if self.fold >= self.folds:
                raise ValueError(
                    f"fold must be in 0..{self.folds - 1} for folds={self.folds}, got {self.fold}"
                )
        elif self.fold != 0:
            raise ValueError(f"fold={self.fold} needs folds (the number of folds K)")
        elif self.val + self.test >= 1.0:
            raise ValueError(f"val + test must be < 1 to leave a training set, got {self.val} + {self.test}")
        return self


class LoaderConfig(_Model):
    """torch DataLoader settings."""

    batch_size: int = Field(default=2, ge=1, description="Samples per batch.")
    backend: Literal["auto", "threads", "processes"] = Field(
        default="auto",
        description="How batches are assembled. 'threads': in the main process by a thread pool over the "
        "cache's memory maps (no inter-process hand-off: fastest for cached data); 'processes': DataLoader "
        "worker processes (needed to read and preprocess DICOM on the fly); 'auto': threads when the cache is "
        "enabled, else processes.",
    )
    num_threads: int | None = Field(
        default=None, ge=1, description="Threads of the 'threads' backend; default max(2, num_workers)."
    )
    num_workers: int = Field(
        default=2, ge=0, description="DataLoader worker processes ('processes' backend)."
    )
    threads_per_worker: int = Field(
        default=1, ge=1, description="SimpleITK/ITK, OpenMP and torch threads in each worker."
    )
    pin_memory: bool = Field(
        default=False,
        description="Pin batches in page-locked memory when training on an accelerator (ignored on the CPU).",
    )
    persistent_workers: bool = Field(default=True, description="Keep workers alive between epochs.")
    prefetch_factor: int | None = Field(default=None, ge=1, description="Batches prefetched per worker.")
    sampler: Literal["shuffle", "balanced"] = Field(
        default="shuffle",
        description="Training samples per epoch: 'shuffle' (each once, in a new order) or 'balanced' "
        "(drawn with replacement, weight of a sample = its class weight / its class's count, so every "
        "class is drawn equally often, or in proportion to class_weights).",
    )
    class_weights: list[float] | None = Field(
        default=None,
        description="'balanced': share of draws per class index (normalised); default equal shares.",
    )
    samples_per_epoch: int | None = Field(
        default=None, ge=1, description="'balanced': draws per epoch over all ranks; default the train size."
    )

    @field_validator("class_weights")
    @classmethod
    def _weights_positive(cls, v: list[float] | None) -> list[float] | None:
        if v is not None and (not v or any(not (w >= 0) for w in v) or not sum(v) > 0):
            raise ValueError(f"class_weights must be non-negative numbers, not all zero, got {v}")
        return v


class CacheConfig(_Model):
    """Persistent cache of preprocessed volumes: one ``.npy`` + JSON sidecar per series."""

    enabled: bool = Field(default=True, description="Preprocess once and train from the on-disk cache.")
    dir: Path | None = Field(default=None, description="Cache directory; default <work_dir>/cache.")
    dtype: Literal["float16", "float32"] = Field(
        default="float16", description="Stored dtype of preprocessed images (cast to float32 in batches)."
    )
    workers: int | None = Field(
        default=None, ge=1, description="Processes that build the cache; default: the number of CPUs."
    )
    in_memory: bool = Field(
        default=False,
        description="Load the whole cache into shared memory once (datasets that fit in RAM).",
    )
    device: Literal["auto", "cpu", "cuda"] = Field(
        default="auto",
        description="Where training volumes live. 'cuda': uploaded once per rank to the accelerator (error "
        "if they do not fit in device_budget); 'auto': there when the trainer runs on an accelerator and "
        "they fit, else batches are assembled in pinned buffers and copied ahead on a side stream; "
        "'cpu': today's host path. Validation/test/predict data stays on the host.",
    )
    device_budget: float = Field(
        default=0.5,
        gt=0.0,
        le=0.95,
        description="Share of the accelerator's free memory (at setup) the resident training set may use.",
    )


class PatchConfig(_Model):
    """Random patch sampling for training (validation and prediction use whole volumes)."""

    size: tuple[int, int, int] = Field(description="Patch size in voxels, z-y-x.")
    per_volume: int = Field(default=4, ge=1, description="Patches drawn from each volume per epoch.")

    @field_validator("size")
    @classmethod
    def _size_positive(cls, v: tuple[int, int, int]) -> tuple[int, int, int]:
        if any(x < 1 for x in v):
            raise ValueError(f"patch size must be three integers >= 1, got {list(v)}")
        return v


class InferenceConfig(_Model):
    """Sliding-window prediction of whole volumes (``predict``), read by a model through
    ``trainer.datamodule.inferer()`` (:class:`~lightning_dicom.inference.SlidingWindowInferer`).

    The setting lives here, in the data config, because the window size follows the data (the
    training patch size) and one YAML ``data:`` section then drives training and inference alike; the
    model decides whether to use it (the demo :class:`~lightning_dicom.demo.segmentation_models.UNet3D`
    does in ``predict_step``)."""

    roi_size: tuple[int, int, int] | None = Field(
        default=None,
        description="Window size in voxels, z-y-x; null: patches.size (no patches: the model sees the whole "
        "volume, no sliding window).",
    )
    overlap: float = Field(
        default=0.5, ge=0.0, lt=1.0, description="Least fraction of a window its neighbours share."
    )
    blending: Literal["gaussian", "constant"] = Field(
        default="gaussian", description="'gaussian' importance map (nnU-Net) or 'constant' (plain mean)."
    )
    sw_batch_size: int = Field(default=4, ge=1, description="Windows per model call.")
    tta_flips: bool = Field(
        default=False, description="Mirroring test-time augmentation (flips along z, y, x)."
    )
    output: Literal["labels", "probabilities"] = Field(
        default="labels", description="'labels' (argmax, int64 [B, 1, D, H, W]) or softmax 'probabilities'."
    )
    accumulator_device: str | None = Field(
        default=None,
        description="Where the whole-volume output is accumulated: null (the model's device), 'cpu', 'auto'.",
    )

    @field_validator("roi_size")
    @classmethod
    def _roi_positive(cls, v: tuple[int, int, int] | None) -> tuple[int, int, int] | None:
        if v is not None and any(x < 1 for x in v):
            raise ValueError(f"roi_size must be three integers >= 1 (z-y-x voxels), got {list(v)}")
        return v


class DataConfig(_Model):
    """Everything :class:`~lightning_dicom.DicomDataModule` needs."""

    root: list[Path] = Field(description="Folder(s) scanned recursively for DICOM files.")
    labels: Path | None = Field(
        default=None,
        description="CSV keyed by SeriesInstanceUID, StudyInstanceUID or PatientID (the header says which).",
    )
    label_columns: list[str] | None = Field(
        default=None, description="Label columns of the CSV; default: every column but the key."
    )
    work_dir: Path | None = Field(
        default=None,
        description="Where the index (SQLite), split and cache live; default "
        "$XDG_CACHE_HOME/lightning_dicom/<hash of the resolved roots> (~/.cache when XDG_CACHE_HOME is unset), "
        "the same from any working directory.",
    )
    on_error: Literal["raise", "skip"] = Field(
        default="skip",
        description="A series that fails to read or preprocess (or, in lightning-dicom predict, whose "
        "predict_step raises): raise, or skip and report.",
    )
    selection: SelectionConfig = Field(default_factory=SelectionConfig, description="Which series to use.")
    preprocessing: PreprocessingConfig = Field(
        default_factory=PreprocessingConfig, description="Reorient, resample, clip, normalise, crop/pad."
    )
    split: SplitConfig = Field(default_factory=SplitConfig, description="Train/val/test split by series.")
    loader: LoaderConfig = Field(default_factory=LoaderConfig, description="DataLoader settings.")
    cache: CacheConfig = Field(
        default_factory=CacheConfig, description="Persistent cache of preprocessed volumes."
    )
    patches: PatchConfig | None = Field(default=None, description="Train on random patches; null: volumes.")
    augment: AugmentConfig | None = Field(
        default=None, description="Training-batch augmentation on the device."
    )
    masks: MaskConfig | None = Field(
        default=None, description="Segmentation masks (NIfTI, DICOM SEG, RTSTRUCT)."
    )
    subjects: SubjectsConfig | None = Field(
        default=None,
        description="Samples made of several series of one study (channels [C, D, H, W]); null: one series each.",
    )
    inference: InferenceConfig = Field(
        default_factory=InferenceConfig,
        description="Sliding-window prediction (predict then reads whole volumes: preprocessing without size; "
        "without roi_size or patches it keeps size and runs the model once per series).",
    )
    progress: bool = Field(default=True, description="Progress bars while indexing and caching.")

    @field_validator("root", mode="before")
    @classmethod
    def _root_list(cls, v: Any) -> Any:
        if isinstance(v, (str, Path)):
            return [v]
        return v

    @field_validator("root")
    @classmethod
    def _root_nonempty(cls, v: list[Path]) -> list[Path]:
        if not v:
            raise ValueError("root needs at least one folder")
        return v

    def resolved_work_dir(self) -> Path:
        """The work directory: ``work_dir``, else :func:`default_work_dir` of the roots."""
        if self.work_dir is not None:
            return Path(self.work_dir)
        return default_work_dir(self.root)

    def resolved_cache_dir(self) -> Path:
        return Path(self.cache.dir) if self.cache.dir is not None else self.resolved_work_dir() / "cache"

    @classmethod
    def from_yaml(cls, path: str | Path) -> DataConfig:
        """Load a config from a YAML file (the whole file, or its ``data:`` section)."""
        import yaml

        try:
            with open(path, encoding="utf-8") as fh:
                raw = yaml.safe_load(fh) or {}
        except yaml.YAMLError as err:
            raise ConfigError(f"not valid YAML: {err}", path=path) from None
        if isinstance(raw, dict) and "data" in raw and isinstance(raw["data"], dict):
            raw = raw["data"].get("init_args", raw["data"])
        try:
            return parse_config(raw)
        except ConfigError as err:
            raise ConfigError(err.reason, path=path) from None


def cache_home() -> Path:
    """``$XDG_CACHE_HOME/lightning_dicom`` (XDG Base Directory spec), else ``~/.cache/lightning_dicom``."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "lightning_dicom"


def default_work_dir(roots: list[Path]) -> Path:
    """``cache_home() / <sha256 of the resolved roots, 12 hex>``: the same roots give the same index and
    cache from any working directory (symlinks and relative paths resolved first)."""
    key = hashlib.sha256("\n".join(str(Path(r).resolve()) for r in roots).encode()).hexdigest()[:12]
    return cache_home() / key


def validation_message(err: ValidationError, prefix: str = "") -> str:
    """Turn a pydantic error into lines naming each key and what is expected."""
    lines = []
    for e in err.errors():
        loc = list(e["loc"])
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            msg = "unknown key (check spelling; see `lightning-dicom schema`)"
        elif e["type"] == "missing" and len(loc) > 1 and isinstance(loc[-1], int):
            msg = f"too few values: item {loc.pop()} is missing"  # a short list for a fixed-length tuple
        key = ".".join(str(p) for p in loc) or "<root>"
        lines.append(f"{prefix}{key}: {msg} (got {e.get('input')!r})")
    return "invalid configuration:\n  " + "\n  ".join(lines)


def parse_config(raw: dict[str, Any] | DataConfig) -> DataConfig:
    """Validate a mapping into a :class:`DataConfig`, raising :class:`ConfigError` on bad values."""
    if isinstance(raw, DataConfig):
        return raw
    try:
        return DataConfig.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(validation_message(err)) from None


class AugmentConfig(_Model):
    """Light augmentation applied to training batches on the device (see ``augment.py``)."""

    flip_axes: list[Literal[0, 1, 2]] = Field(
        default=[], description="Axes flipped with probability 0.5 per sample: 0 = z, 1 = y, 2 = x."
    )
    rot90: bool = Field(
        default=False, description="Rotate by k x 90 degrees in the y-x plane (square H, W only)."
    )
    intensity_scale: float = Field(
        default=0.0, ge=0.0, lt=1.0, description="Multiply intensities by 1 + U(-s, s) per sample."
    )
    intensity_shift: float = Field(
        default=0.0, ge=0.0, description="Add U(-s, s) per sample (normalised units)."
    )


class MaskConfig(_Model):
    """Segmentation masks: which structures, from which sources, in which form."""

    structures: dict[str, str] = Field(
        description="Structure name -> regular expression searched in segment/ROI names (e.g. "
        '"lung": "(?i)^(lt|rt|left|right)?[ _]?lung"). A list of names matches each name exactly '
        "(case-insensitive). Order is priority in 'labels' mode (first wins overlaps) and channel order."
    )
    mode: Literal["labels", "channels"] = Field(
        default="labels",
        description="'labels': one channel, 0 = background, k = k-th structure (int64 in "
        "batches); 'channels': one binary channel per structure.",
    )
    csv: Path | None = Field(
        default=None,
        description="CSV with SeriesInstanceUID and mask columns: NIfTI/NRRD/MHA paths "
        "(relative to the CSV's folder). DICOM SEG and RTSTRUCT objects are found in the index.",
    )
    sources: list[Literal["csv", "seg", "rtstruct"]] = Field(
        default=["csv", "seg", "rtstruct"],
        description="Where masks come from: the CSV's files, DICOM SEG "
        "and/or RTSTRUCT objects linked to the series (all matching segments are merged per structure).",
    )
    require_all: bool = Field(
        default=True,
        description="A series lacking a structure is reported and left out of fit/validate/test.",
    )
    interpolation: Literal["nearest", "linear"] = Field(
        default="linear",
        description="Mask resampling: 'linear' on one-hot channels then argmax/threshold "
        "(smoother boundaries), or 'nearest'.",
    )
    foreground_fraction: float = Field(
        default=1 / 3,
        ge=0.0,
        le=1.0,
        description="Share of training patches centred on a foreground voxel (nnU-Net uses 1/3).",
    )

    @field_validator("structures", mode="before")
    @classmethod
    def _names(cls, v: Any) -> Any:
        if isinstance(v, (list, tuple)):
            import re

            return {str(n): f"(?i)^{re.escape(str(n))}$" for n in v}
        return v

    @field_validator("structures")
    @classmethod
    def _regexes(cls, v: dict[str, str]) -> dict[str, str]:
        import re

        if not v:
            raise ValueError("structures needs at least one name")
        for name, pattern in v.items():
            try:
                re.compile(pattern)
            except re.error as err:
                raise ValueError(
                    f"structure {name!r}: invalid regular expression {pattern!r} ({err})"
                ) from None
        return v

    def digest(self) -> str:
        """Hash of what changes the cached mask (not the CSV path)."""
        keep = self.model_dump(mode="json", include={"structures", "mode", "interpolation"})
        return hashlib.sha256(json.dumps(keep, sort_keys=True).encode()).hexdigest()
