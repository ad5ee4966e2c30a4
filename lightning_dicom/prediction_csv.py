"""Classification predictions as CSV: one row per series, written as batches arrive.

Columns: ``series_uid`` (SeriesInstanceUID (0020,000E)), ``series_id`` (the volume id: the UID, or
``<uid>#2`` for a second volume of the same UID), ``predicted_class``, one ``prob_<class>`` per
class, and ``label`` when the batches carry one. Class names come from the labels CSV (its classes,
in label order) when known, else ``0..K-1``.

:class:`PredictionCSV` is plain (no Lightning; the sliding-window inference uses it too);
:class:`ClassificationCSVWriter` is the Lightning callback that ``lightning-dicom predict`` adds when
no other prediction writer is configured. Each run writes a new file, never over an old one, and only
a finished run leaves one: rows go to a hidden ``.<name>.part`` beside it, moved into place
(``os.replace``, atomic) at the end of the run; a run that fails removes both.
"""

from __future__ import annotations

import csv
import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pytorch_lightning.callbacks import BasePredictionWriter

from lightning_dicom.errors import ConfigError

__all__ = ["ClassificationCSVWriter", "ClassificationCSVWriterImpl", "PredictionCSV", "new_run_path"]

log = logging.getLogger(__name__)


def new_run_path(folder: Path, stem: str = "predictions", suffix: str = ".csv") -> Path:
    """``<folder>/<stem>-<YYYYmmdd-HHMMSS>[-k].csv``: a file name no earlier run used (created empty,
    with O_EXCL, so two processes cannot pick the same one)."""
    folder.mkdir(parents=True, exist_ok=True)
    base = f"{stem}-{time.strftime('%Y%m%d-%H%M%S')}"
    for k in range(1000):
        path = folder / f"{base}{'' if k == 0 else f'-{k}'}{suffix}"
        try:
            os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
        except FileExistsError:
            continue
        return path
    raise ConfigError(f"no free prediction file name in {folder}")


class PredictionCSV:
    """Append classification rows to a CSV (header written with the first row).

    Args:
        path: the CSV file (created or truncated).
        class_names: names of classes 0..K-1; default their indices.
    """

    def __init__(self, path: str | Path, class_names: Sequence[Any] | None = None) -> None:
        self.path = Path(path)
        self.class_names = [str(c) for c in class_names] if class_names is not None else None
        self.rows = 0
        self._with_label: bool | None = None

    def add(
        self, series_ids: Sequence[str], probs: np.ndarray, labels: Sequence[Any] | np.ndarray | None = None
    ) -> None:
        """Write one row per series: ``probs`` is ``[B, K]`` (probabilities, rows summing to 1)."""
        probs = np.asarray(probs, dtype=np.float64)
        if probs.ndim != 2 or probs.shape[0] != len(series_ids):
            raise ConfigError(
                f"predictions must be [B, K] probabilities for {len(series_ids)} series, got shape {probs.shape}"
            )
        names = self.class_names or [str(k) for k in range(probs.shape[1])]
        if len(names) != probs.shape[1]:
            raise ConfigError(f"{probs.shape[1]} class probabilities but {len(names)} class names ({names})")
        first = self._with_label is None
        if first:
            self._with_label = labels is not None
        with open(self.path, "w" if first else "a", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            if first:
                head = ["series_uid", "series_id", "predicted_class", *(f"prob_{n}" for n in names)]
                w.writerow(head + (["label"] if self._with_label else []))
            for i, sid in enumerate(series_ids):
                row = [sid.split("#")[0], sid, names[int(probs[i].argmax())], *(f"{p:.6f}" for p in probs[i])]
                if self._with_label:
                    row.append(_label_text(labels[i], names) if labels is not None else "")
                w.writerow(row)
        self.rows += len(series_ids)


def _label_text(value: Any, names: list[str]) -> str:
    v = np.asarray(value)
    if v.ndim == 0 and np.issubdtype(v.dtype, np.integer) and 0 <= int(v) < len(names):
        return names[int(v)]
    return " ".join(str(x) for x in v.ravel())


class ClassificationCSVWriterImpl:
    """Write ``predict_step`` outputs ``{"series_id": [...], "probs": [B, K], "label"?: [B]}`` to a CSV per run.

    YAML (LightningCLI)::

        trainer:
          callbacks:
            - class_path: lightning_dicom.prediction_csv.ClassificationCSVWriter
              init_args: {output_dir: predictions}

    Args:
        output_dir: folder of the CSV files; default ``<trainer.log_dir>/predictions`` (the run's logs).
        class_names: names of classes 0..K-1; default the labels CSV's classes, else indices.
        strict: a prediction without ``probs`` raises (True), or is left out with one log line (False: how
            ``lightning-dicom predict`` adds this writer to a model it does not know).
    """

    def __init__(
        self, output_dir: Path | None = None, class_names: list[str] | None = None, strict: bool = True
    ) -> None:
        super().__init__("batch")  # type: ignore[call-arg]  # BasePredictionWriter
        self.output_dir = Path(output_dir) if output_dir is not None else None
        self.class_names = class_names
        self.strict = strict
        self.csv: PredictionCSV | None = None
        self.path: Path | None = None  # the run's CSV: reserved empty, filled at the end of a run
        self._warned = False

    def on_predict_start(self, trainer: Any, pl_module: Any) -> None:
        folder = self.output_dir or Path(trainer.log_dir or trainer.default_root_dir) / "predictions"
        stem = "predictions" if trainer.world_size == 1 else f"predictions-rank{trainer.global_rank}"
        names = self.class_names
        if names is None:
            report = getattr(getattr(trainer, "datamodule", None), "report", None) or {}
            names = report.get("classes")
        self.path = new_run_path(folder, stem)
        self.csv = PredictionCSV(self.path.with_name(f".{self.path.name}.part"), names)

    def write_on_batch_end(
        self,
        trainer: Any,
        pl_module: Any,
        prediction: Any,
        batch_indices: Sequence[int] | None,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if prediction is None:  # a series left out (lightning-dicom predict, on_error: skip)
            return
        if not isinstance(prediction, dict) or "probs" not in prediction:
            if not self.strict:
                if not self._warned:
                    log.info("predictions are not class probabilities: no CSV written")
                self._warned = True
                return
            raise ConfigError(
                "ClassificationCSVWriter needs predict_step to return {'series_id': [...], 'probs': [B, K]}, "
                f"got {type(prediction).__name__}"
                + (f" with keys {sorted(prediction)}" if isinstance(prediction, dict) else "")
            )
        assert self.csv is not None
        ids = prediction.get("series_id") or batch["meta"]["series_id"]
        label = prediction.get("label")
        self.csv.add(
            list(ids),
            prediction["probs"].detach().float().cpu().numpy(),
            label.detach().cpu().numpy() if label is not None else None,
        )

    def on_predict_end(self, trainer: Any, pl_module: Any) -> None:
        if self.csv is not None and self.path is not None and self.csv.rows:
            os.replace(self.csv.path, self.path)
            log.info("%d predictions written to %s", self.csv.rows, self.path)
            self.csv.path = self.path
        else:
            self._discard()

    def on_exception(self, trainer: Any, pl_module: Any, exception: BaseException) -> None:
        """A failed (or interrupted) run leaves no CSV: neither the rows so far nor the reserved name."""
        if self.csv is not None and self.csv.path != self.path:
            self._discard()

    def _discard(self) -> None:
        if self.csv is not None:
            self.csv.path.unlink(missing_ok=True)
        if self.path is not None:
            self.path.unlink(missing_ok=True)


class ClassificationCSVWriter(ClassificationCSVWriterImpl, BasePredictionWriter):
    __doc__ = (
        ClassificationCSVWriterImpl.__doc__
    )  # the implementation is shared with :mod:`lightning_dicom.unified`
