"""``--ckpt_path best`` / ``last`` in a new process: the files of the latest run.

Lightning resolves ``best`` and ``last`` only from the ModelCheckpoint callbacks of the *current*
process, so ``lightning-dicom validate --ckpt_path best`` after a ``fit`` in another process fails.
Here the checkpoint folders a config implies are searched instead:

* each ModelCheckpoint with a ``dirpath`` -> that folder;
* otherwise the logger's run folders ``<save_dir>/<name>/version_*/checkpoints`` (Lightning's default),
  or ``<default_root_dir>/checkpoints`` without a logger.

The latest run is the folder holding the newest ``.ckpt``, whatever config that run was trained with
(its ``config.yaml`` is not compared). ``last`` is its ``last*.ckpt`` (newest), else its newest
checkpoint; ``best`` is the ``best_model_path`` recorded in that checkpoint's ModelCheckpoint state
(Lightning saves it in every checkpoint), else its newest checkpoint. The file picked is logged (one
line: its path, which holds no patient data).

A ``--ckpt_path`` naming a local file that does not exist is one :class:`ConfigError`
(:func:`check_checkpoint_file`) for every subcommand, before Lightning sees it.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch

from lightning_dicom.errors import ConfigError

__all__ = ["check_checkpoint_file", "checkpoint_dirs", "resolve_checkpoint"]

log = logging.getLogger("lightning_dicom.checkpoints")

SPECIAL = ("best", "last", "hpc")
"""``--ckpt_path`` values Lightning resolves itself (``best``/``last`` are resolved here first)."""


def check_checkpoint_file(ckpt_path: str | Path | None) -> None:
    """Raise one line when ``ckpt_path`` names a local file that does not exist.

    None, the names of :data:`SPECIAL`, ``registry...`` and URLs (``s3://...``: Lightning reads them
    through fsspec) are left to Lightning.

    Raises:
        ConfigError: ``[file <path>] --ckpt_path: no such checkpoint file``.
    """
    if ckpt_path is None:
        return
    text = str(ckpt_path)
    if text in SPECIAL or text.startswith("registry") or "://" in text:
        return
    if not Path(text).is_file():
        raise ConfigError("--ckpt_path: no such checkpoint file", path=text)


def checkpoint_dirs(trainer: Any) -> list[Path]:
    """Folders where this trainer's configuration writes checkpoints (the existing run folders of the
    logger; a callback's ``dirpath`` or ``<default_root_dir>/checkpoints`` existing or not)."""
    return [d for pattern in _searched(trainer) for d in _expand(pattern)]


def _searched(trainer: Any) -> list[Path]:
    """The folders searched, as written in messages: ``<save_dir>/<name>/version_*/checkpoints``."""
    out: list[Path] = []
    callbacks = list(getattr(trainer, "checkpoint_callbacks", []))
    if any(getattr(cb, "dirpath", None) is None for cb in callbacks) or not callbacks:
        if trainer.loggers:
            logger = trainer.loggers[0]
            base = Path(logger.save_dir or trainer.default_root_dir) / (logger.name or "")
            out.append(base / "version_*" / "checkpoints")
        else:
            out.append(Path(trainer.default_root_dir) / "checkpoints")
    out += [Path(cb.dirpath) for cb in callbacks if getattr(cb, "dirpath", None) is not None]
    return out


def _expand(pattern: Path) -> list[Path]:
    if pattern.parent.name != "version_*":
        return [pattern]
    return sorted(p / pattern.name for p in pattern.parent.parent.glob("version_*") if p.is_dir())


def _newest(paths: list[Path]) -> Path | None:
    return max(paths, key=lambda p: p.stat().st_mtime_ns, default=None)


def resolve_checkpoint(which: str, trainer: Any) -> Path:
    """The file ``which`` ('best' or 'last') means for the latest run of this configuration.

    Raises:
        ConfigError: no checkpoint in any folder the configuration writes to.
    """
    searched = _searched(trainer)
    dirs = [d for pattern in searched for d in _expand(pattern)]
    files = {d: sorted(d.glob("*.ckpt")) for d in dirs if d.is_dir()}
    latest = _newest([f for fs in files.values() for f in fs])
    if latest is None:
        where = ", ".join(dict.fromkeys(str(p) for p in searched))
        raise ConfigError(
            f"--ckpt_path {which}: no checkpoint found in {where}; run `lightning-dicom fit` with this config "
            "first (from the same folder), or pass --ckpt_path path/to/file.ckpt"
        )
    picked = _pick(which, latest, files[latest.parent])
    log.info("--ckpt_path %s: %s (the newest run in %s)", which, picked, ", ".join(map(str, searched)))
    return picked


def _pick(which: str, latest: Path, run_files: list[Path]) -> Path:
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
