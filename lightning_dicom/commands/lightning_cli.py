"""fit / validate / test / predict: Lightning's ``LightningCLI`` with three changes.

* The resolved config is saved with the run's logs (``<log_dir>/config.yaml``, a new ``version_N``
  folder per run), or under ``<default_root_dir>/lightning_logs/run-<time>/`` without a logger, never
  over a file that exists (Lightning's default writes ``./config.yaml`` when there is no logger).
* ``--ckpt_path best`` / ``last`` name the files of the latest run (:mod:`.checkpoints`), so they work
  in a new process.
* ``predict`` without a prediction writer adds :class:`~lightning_dicom.prediction_csv.ClassificationCSVWriter`:
  class probabilities go to ``<log_dir>/predictions/predictions-<time>.csv``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pytorch_lightning.callbacks import BasePredictionWriter
from pytorch_lightning.cli import LightningCLI, SaveConfigCallback

from lightning_dicom.commands.checkpoints import resolve_checkpoint
from lightning_dicom.prediction_csv import ClassificationCSVWriter

__all__ = ["DicomCLI", "RunConfigSaver", "run"]


class RunConfigSaver(SaveConfigCallback):
    """Save the resolved config beside the run's logs, under a name no earlier run used."""

    def setup(self, trainer: Any, pl_module: Any, stage: str) -> None:
        if self.already_saved:
            return
        folder = Path(trainer.log_dir) if trainer.loggers else None  # log_dir broadcasts: every rank
        if trainer.is_global_zero:
            if folder is None:
                folder = (
                    Path(trainer.default_root_dir) / "lightning_logs" / time.strftime("run-%Y%m%d-%H%M%S")
                )
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / self.config_filename
            if path.exists():
                path = folder / f"{path.stem}-{stage}-{time.strftime('%Y%m%d-%H%M%S')}{path.suffix}"
            if not path.exists():
                self.parser.save(
                    self.config, path, skip_none=False, overwrite=False, multifile=self.multifile
                )
        self.already_saved = bool(trainer.strategy.broadcast(True))


class DicomCLI(LightningCLI):
    """LightningCLI for a :class:`~lightning_dicom.DicomDataModule` (see the module docstring)."""

    def init_parser(self, **kwargs: Any) -> Any:
        # a bad option raises (one line from lightning_dicom.cli.main) instead of printing the whole usage
        return super().init_parser(**{"exit_on_error": False, **kwargs})

    def parse_arguments(self, parser: Any, args: Any) -> None:
        # Lightning warns when ``args`` is given while sys.argv has arguments: here they are the same ones.
        self.config = parser.parse_args(args)

    def _prepare_subcommand_kwargs(self, subcommand: str) -> dict[str, Any]:
        kwargs = super()._prepare_subcommand_kwargs(subcommand)
        if kwargs.get("ckpt_path") in ("best", "last") and subcommand != "fit":
            kwargs["ckpt_path"] = str(resolve_checkpoint(kwargs["ckpt_path"], self.trainer))
        if subcommand == "predict" and not any(
            isinstance(cb, BasePredictionWriter) for cb in self.trainer.callbacks
        ):
            self.trainer.callbacks.append(ClassificationCSVWriter(strict=False))
        return kwargs


def run(args: Sequence[str]) -> None:
    """Run LightningCLI on ``args`` (``fit --config ...``) with the DicomDataModule."""
    import pytorch_lightning as pl

    from lightning_dicom.datamodule import DicomDataModule

    DicomCLI(
        pl.LightningModule,
        DicomDataModule,
        subclass_mode_model=True,
        args=list(args),
        save_config_callback=RunConfigSaver,
    )
