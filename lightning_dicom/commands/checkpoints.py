"""``--ckpt_path best`` / ``last`` in a new process: the files of the latest run.

Lightning resolves ``best`` and ``last`` only from the ModelCheckpoint callbacks of the *current*
process, so ``lightning-dicom validate --ckpt_path best`` after a ``fit`` in another process fails.
Here the checkpoint folders a config implies are searched instead:

* each ModelCheckpoint with a ``dirpath`` -> that folder;
* otherwise the logger's run folders ``<save_dir>/<name>/version_*/checkpoints`` (Lightning's default),
  or ``<default_root_dir>/checkpoints`` without a logger.

The latest run is the folder holding the newest ``.ckpt``. ``last`` is its ``last*.ckpt`` (newest),
else its newest checkpoint; ``best`` is the ``best_model_path`` recorded in that checkpoint's
ModelCheckpoint state (Lightning saves it in every checkpoint), else its newest checkpoint.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch

from lightning_dicom.errors import ConfigError

__all__ = ["checkpoint_dirs", "resolve_checkpoint"]


def checkpoint_dirs(trainer: Any) -> list[Path]:
    """Folders where this trainer's configuration writes checkpoints (existing or not)."""
    out: list[Path] = []
    callbacks = list(getattr(trainer, "checkpoint_callbacks", []))
    if any(getattr(cb, "dirpath", None) is None for cb in callbacks) or not callbacks:
        if trainer.loggers:
            logger = trainer.loggers[0]
            base = Path(logger.save_dir or trainer.default_root_dir) / (logger.name or "")
            out += sorted(p / "checkpoints" for p in base.glob("version_*") if p.is_dir())
        else:
            out.append(Path(trainer.default_root_dir) / "checkpoints")
    out += [Path(cb.dirpath) for cb in callbacks if getattr(cb, "dirpath", None) is not None]
    return out


def _newest(paths: list[Path]) -> Path | None:
    return max(paths, key=lambda p: p.stat().st_mtime_ns, default=None)


def resolve_checkpoint(which: str, trainer: Any) -> Path:
    """The file ``which`` ('best' or 'last') means for the latest run of this configuration.

    Raises:
        ConfigError: no checkpoint in any folder the configuration writes to.
    """
    dirs = checkpoint_dirs(trainer)
    files = {d: sorted(d.glob("*.ckpt")) for d in dirs if d.is_dir()}
    latest = _newest([f for fs in files.values() for f in fs])
    if latest is None:
        patterns = dict.fromkeys(re.sub(r"version_\d+", "version_*", str(d)) for d in dirs)
        where = ", ".join(patterns) or "(no checkpoint folder configured)"
        raise ConfigError(
            f"--ckpt_path {which}: no checkpoint found in {where}; run `lightning-dicom fit` with this config "
            "first (from the same folder), or pass --ckpt_path path/to/file.ckpt"
        )
    run_files = files[latest.parent]
    if which == "last":
        return _newest([f for f in run_files if f.name.startswith("last")]) or latest
    best = _recorded_best(latest)
    if best is not None:
        for cand in (best, latest.parent / best.name):
            if cand.is_file():
                return cand
    return latest


def _recorded_best(ckpt: Path) -> Path | None:
    """``best_model_path`` of the ModelCheckpoint state saved in ``ckpt`` (None when absent)."""
    try:
        state = torch.load(ckpt, map_location="cpu", weights_only=True)
    except Exception:  # an unreadable file: fall back to the newest checkpoint  # noqa: BLE001
        return None
    for key, value in (state.get("callbacks") or {}).items():
        if (
            str(key).startswith("ModelCheckpoint")
            and isinstance(value, dict)
            and value.get("best_model_path")
        ):
            return Path(value["best_model_path"])
    return None
