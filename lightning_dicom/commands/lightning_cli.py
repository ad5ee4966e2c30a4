"""fit / validate / test / predict: Lightning's ``LightningCLI`` with three changes.

* The resolved config is saved with the run's logs (``<log_dir>/config.yaml``, a new ``version_N``
  folder per run), or under ``<default_root_dir>/lightning_logs/run-<time>/`` without a logger, never
  over a file that exists (Lightning's default writes ``./config.yaml`` when there is no logger).
* ``--ckpt_path best`` / ``last`` name the files of the latest run (:mod:`.checkpoints`), so they work
  in a new process; the file picked is logged. A ``--ckpt_path`` file that does not exist is one line
  for every subcommand.
* ``predict`` without a prediction writer adds :class:`~lightning_dicom.prediction_csv.ClassificationCSVWriter`:
  class probabilities go to ``<log_dir>/predictions/predictions-<time>.csv``.
* ``predict --ckpt_path`` reads the data config saved in the checkpoint before the DataModule prepares
  anything and uses its preprocessing, in one logged line naming the keys that differed from the
  command's (:mod:`lightning_dicom.data.predict_config`).
* ``predict`` runs the model's ``predict_step`` through :class:`~.predict_errors.PredictGuard`: an error
  on one series is one line naming it, or (``data.on_error: skip``) that series left out and reported.

It is built on ``pytorch_lightning``, or on the unified ``lightning.pytorch`` when the config's or the
command line's class paths name ``lightning.pytorch`` (a model written for ``import lightning.pytorch as
L``), or when ``LIGHTNING_DICOM_NAMESPACE=lightning`` is set (:func:`namespace`).
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lightning_dicom.commands.checkpoints import check_checkpoint_file, resolve_checkpoint
from lightning_dicom.commands.predict_errors import PredictGuard
from lightning_dicom.data.predict_config import apply_checkpoint_data_config

__all__ = ["DicomCLIMixin", "RunConfigSaverMixin", "apply_checkpoint_data_config", "namespace", "run"]

NAMESPACE_ENV = "LIGHTNING_DICOM_NAMESPACE"


log = logging.getLogger("lightning_dicom.cli")


class RunConfigSaverMixin:
    """Save the resolved config beside the run's logs, under a name no earlier run used."""

    already_saved: bool  # these come from SaveConfigCallback (either namespace)
    config_filename: str
    parser: Any
    config: Any
    multifile: bool

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


class DicomCLIMixin:
    """LightningCLI for a :class:`~lightning_dicom.DicomDataModule` (see the module docstring)."""

    trainer: Any  # from LightningCLI (either namespace)
    model: Any
    config: Any
    predict_guard: PredictGuard | None = None
    writer_classes: tuple[Any, Any]  # (BasePredictionWriter, ClassificationCSVWriter) of the namespace

    def init_parser(self, **kwargs: Any) -> Any:
        # a bad option raises (one line from lightning_dicom.cli.main) instead of printing the whole usage
        return super().init_parser(**{"exit_on_error": False, **kwargs})  # type: ignore[misc]

    def parse_arguments(self, parser: Any, args: Any) -> None:
        # Lightning warns when ``args`` is given while sys.argv has arguments: here they are the same ones.
        self.config = parser.parse_args(args)

    def _prepare_subcommand_kwargs(self, subcommand: str) -> dict[str, Any]:
        kwargs = super()._prepare_subcommand_kwargs(subcommand)  # type: ignore[misc]
        if kwargs.get("ckpt_path") in ("best", "last") and subcommand != "fit":
            kwargs["ckpt_path"] = str(resolve_checkpoint(kwargs["ckpt_path"], self.trainer))
        check_checkpoint_file(kwargs.get("ckpt_path"))
        datamodule = getattr(self, "datamodule", None)
        if subcommand == "predict" and kwargs.get("ckpt_path") and hasattr(datamodule, "use_data_config"):
            apply_checkpoint_data_config(datamodule, kwargs["ckpt_path"])
        writer_base, csv_writer = self.writer_classes
        if subcommand == "predict" and not any(isinstance(cb, writer_base) for cb in self.trainer.callbacks):
            self.trainer.callbacks.append(csv_writer(strict=False))
        if subcommand == "predict":
            self.predict_guard = PredictGuard.install(self.model, datamodule)
        return kwargs

    def after_fit(self) -> None:
        """One line saying where the run's checkpoints went (what ``--ckpt_path best``/``last`` will pick)."""
        cb = getattr(self.trainer, "checkpoint_callback", None)
        if cb is None or not getattr(cb, "dirpath", None) or not self.trainer.is_global_zero:
            return
        best, last = (Path(p).name if p else "none" for p in (cb.best_model_path, cb.last_model_path))
        log.info("checkpoints in %s (best: %s, last: %s)", Path(cb.dirpath).resolve(), best, last)

    def after_predict(self) -> None:
        if self.predict_guard is not None:
            self.predict_guard.check()


def namespace(args: Sequence[str]) -> str:
    """'lightning' or 'pytorch_lightning': ``$LIGHTNING_DICOM_NAMESPACE``, else 'lightning' when the
    arguments or the YAML files they name (``--config``/``-c``) mention ``lightning.pytorch``."""
    chosen = os.environ.get(NAMESPACE_ENV, "")
    if chosen in ("lightning", "pytorch_lightning"):
        return chosen
    texts = list(args)
    for flag, value in zip(args, list(args[1:]) + [""], strict=True):
        if flag in ("--config", "-c") and Path(value).is_file():
            texts.append(Path(value).read_text(errors="replace"))
        elif flag.startswith("--config="):
            path = Path(flag.split("=", 1)[1])
            texts.append(path.read_text(errors="replace") if path.is_file() else "")
    pattern = re.compile(r"(?<![\w.])lightning\.pytorch\b")
    return "lightning" if any(pattern.search(t) for t in texts) else "pytorch_lightning"


def run(args: Sequence[str]) -> None:
    """Run LightningCLI on ``args`` (``fit --config ...``) with the DicomDataModule of :func:`namespace`."""
    if namespace(args) == "lightning":
        import lightning.pytorch as pl
        from lightning.pytorch.callbacks import BasePredictionWriter
        from lightning.pytorch.cli import LightningCLI, SaveConfigCallback

        from lightning_dicom.unified import ClassificationCSVWriter, DicomDataModule
    else:
        import pytorch_lightning as pl  # type: ignore[no-redef]
        from pytorch_lightning.callbacks import BasePredictionWriter  # type: ignore[assignment]
        from pytorch_lightning.cli import LightningCLI, SaveConfigCallback  # type: ignore[assignment]

        from lightning_dicom.datamodule import DicomDataModule  # type: ignore[assignment]
        from lightning_dicom.prediction_csv import ClassificationCSVWriter  # type: ignore[assignment]

    saver = type("RunConfigSaver", (RunConfigSaverMixin, SaveConfigCallback), {})
    cli = type(
        "DicomCLI",
        (DicomCLIMixin, LightningCLI),
        {"writer_classes": (BasePredictionWriter, ClassificationCSVWriter)},
    )
    cli(
        pl.LightningModule,
        DicomDataModule,
        subclass_mode_model=True,
        args=list(args),
        save_config_callback=saver,
    )
