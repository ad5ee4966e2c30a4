"""The data config of prediction: the training preprocessing (without its crop/pad under a sliding
window), the sliding window, and the data config a checkpoint carries.

Rules (documented in the README, "Predict on new scans"):

* **Whole volumes with a window, training's size without.** With a sliding-window inferer
  (:func:`make_inferer`: ``inference.roi_size`` or ``patches``) ``predict`` reads every series through
  the training preprocessing (orientation, spacing, window, normalisation, stack rules) *except*
  ``preprocessing.size``: the window slides over the whole resampled volume, so a predicted volume has
  the shape of the resampled source. Without one the model runs once per series on exactly what it was
  trained on, ``preprocessing.size`` included (a classifier trained on fixed-size crops sees the same
  field of view, and a volume thinner than its pooling is padded as in training). The predict stage
  reads no masks; the cache key holds the preprocessing and the mask settings, so an entry is reused
  only under the same ones.
* **Sliding window.** ``data.inference`` (:class:`~lightning_dicom.config.InferenceConfig`) holds the
  window settings; ``roi_size`` defaults to ``data.patches.size``. The DataModule builds the inferer
  (``dm.inferer()``), a model asks for it in ``predict_step`` (``self.trainer.datamodule.inferer()``)
  and falls back to one whole-volume pass when it gets None.
* **The checkpoint's data config wins.** ``DicomDataModule.state_dict`` saves the whole data config as
  plain data (``model_dump(mode="json")``: str, int, float, bool, None, lists and dicts; it loads with
  ``torch.load(weights_only=True)``). ``lightning-dicom predict --ckpt_path`` reads it from the file
  before the DataModule prepares anything and replaces the command's ``preprocessing`` (and
  ``subjects``) with the checkpoint's, logging one warning line that names every differing key
  (``size`` is compared only without an inferer: with one, predict does not apply it). A model trained
  on one preprocessing is thus never fed another; a change of preprocessing means training again.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch

from lightning_dicom.config import DataConfig
from lightning_dicom.errors import ConfigError
from lightning_dicom.inference import SlidingWindowInferer

__all__ = [
    "COMPARED",
    "DATA_CONFIG_KEY",
    "apply_checkpoint_data_config",
    "checkpoint_data_config",
    "differences",
    "make_inferer",
    "predict_view",
    "with_checkpoint_preprocessing",
]

log = logging.getLogger("lightning_dicom.predict")

DATA_CONFIG_KEY = "data_config"
"""Key of the plain-data config in ``DicomDataModule.state_dict()``."""

COMPARED = ("preprocessing", "subjects")
"""Sections of the data config that must equal training's at prediction (``preprocessing.size`` aside)."""


def predict_view(config: DataConfig) -> DataConfig:
    """``config`` as the predict stage uses it: no masks, one volume per batch, and
    ``preprocessing.size`` null (whole volumes, shapes differ; ``inference.sw_batch_size`` batches the
    windows) when there is a sliding-window inferer (:func:`make_inferer`), else training's ``size``
    kept (the model runs once on the crop/pad it was trained on)."""
    prep = config.preprocessing
    if make_inferer(config) is not None:
        prep = prep.model_copy(update={"size": None})
    loader = config.loader.model_copy(update={"batch_size": 1})
    return config.model_copy(update={"preprocessing": prep, "masks": None, "loader": loader})


def make_inferer(config: DataConfig) -> SlidingWindowInferer | None:
    """The sliding-window inferer of ``config.inference`` (roi: ``roi_size``, else ``patches.size``);
    None when neither is set (the model then runs once on the whole volume)."""
    inf = config.inference
    roi = inf.roi_size or (config.patches.size if config.patches is not None else None)
    if roi is None:
        return None
    return SlidingWindowInferer(
        roi_size=tuple(roi),  # type: ignore[arg-type]
        overlap=inf.overlap,
        blending=inf.blending,
        sw_batch_size=inf.sw_batch_size,
        tta_flips=inf.tta_flips,
        output=inf.output,
        accumulator_device=inf.accumulator_device,
    )


def _flat(value: Any, prefix: str) -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(_flat(v, f"{prefix}.{k}"))
        return out
    return {prefix: value}


def differences(ours: DataConfig, theirs: dict[str, Any]) -> list[str]:
    """Dotted keys of :data:`COMPARED` sections whose values differ between ``ours`` and ``theirs`` (a
    plain ``model_dump(mode="json")`` dict), e.g. ``["preprocessing.spacing"]``; ``preprocessing.size``
    only when ``ours`` has no sliding-window inferer (with one, predict reads whole volumes)."""
    mine = ours.model_dump(mode="json")
    a: dict[str, Any] = {}
    b: dict[str, Any] = {}
    for section in COMPARED:
        a.update(_flat(mine.get(section), section))
        b.update(_flat(theirs.get(section), section))
    skip = {"preprocessing.size"} if make_inferer(ours) is not None else set()
    return sorted(k for k in set(a) | set(b) if k not in skip and a.get(k) != b.get(k))


def checkpoint_data_config(path: str | Path) -> dict[str, Any] | None:
    """The data config saved in a Lightning checkpoint by ``DicomDataModule.state_dict`` (plain data,
    read with ``torch.load(weights_only=True)``), or None when the checkpoint has none.

    Raises:
        ConfigError: the file does not exist or is not a checkpoint torch can read.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError("--ckpt_path: no such checkpoint file", path=path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001  # any unreadable file: one line
        raise ConfigError(
            f"--ckpt_path: not a readable checkpoint ({type(err).__name__})", path=path
        ) from None
    for key, value in state.items() if isinstance(state, dict) else ():
        if str(key).endswith("DataModule") and isinstance(value, dict) and DATA_CONFIG_KEY in value:
            return dict(value[DATA_CONFIG_KEY])
    return None


def with_checkpoint_preprocessing(ours: DataConfig, theirs: dict[str, Any]) -> tuple[DataConfig, list[str]]:
    """``ours`` with the checkpoint's :data:`COMPARED` sections, and the keys that differed."""
    diff = differences(ours, theirs)
    if not diff:
        return ours, []
    update = {s: theirs.get(s) for s in COMPARED}
    merged = ours.model_dump(mode="json") | update
    return DataConfig.model_validate(merged), diff


def apply_checkpoint_data_config(datamodule: Any, ckpt_path: str | Path) -> list[str]:
    """Give ``datamodule`` (a DicomDataModule not yet prepared) the preprocessing saved in ``ckpt_path``;
    returns the keys that differed from its own (one warning line names them). A checkpoint without a
    data config (written by another DataModule or an older version) leaves the config, and says so.

    Raises:
        ConfigError: the checkpoint file is missing or unreadable.
    """
    saved = checkpoint_data_config(ckpt_path)
    if saved is None:
        log.warning(
            "%s holds no data config: predicting with the command's preprocessing", Path(ckpt_path).name
        )
        return []
    merged, diff = with_checkpoint_preprocessing(datamodule.config, saved)
    if diff:
        datamodule.use_data_config(merged)
        log.warning(
            "using the checkpoint's preprocessing (the model was trained on it); the command's differed in: %s",
            ", ".join(diff),
        )
    return diff
