"""A model's ``predict_step`` failing on one series: one line naming the series, or the series skipped.

``lightning-dicom predict`` wraps the model's ``predict_step`` in a :class:`PredictGuard`. An exception
raised on a batch becomes a :class:`~lightning_dicom.errors.SeriesError` naming the batch's series ids
(SeriesInstanceUID, ``<uid>#2`` for a second volume of the UID: what the CLI prints elsewhere, never a
patient's name or ID) and the error's type and first line, so the CLI prints one line and exits with
status 2 (``--debug``: the traceback, with the model's error chained). With ``data.on_error: skip`` (the
default) the series is left out instead: one warning line, an entry in ``dm.report["series_failed"]``,
no prediction (``predict_step`` returns None, which the writers skip), and the other series are
predicted; when no series could be predicted the run fails with the first error
(:meth:`PredictGuard.check`). A :class:`~lightning_dicom.errors.ConfigError` raised by ``predict_step``
(a mistake of the setup, the same for every series) passes through unchanged.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping
from typing import Any

from lightning_dicom.errors import ConfigError, SeriesError

__all__ = ["PredictGuard"]

log = logging.getLogger("lightning_dicom.predict")


class PredictGuard:
    """Callable standing in for ``model.predict_step`` (:meth:`install`).

    Args:
        predict_step: the model's bound ``predict_step``.
        datamodule: the DataModule; its ``config.on_error`` ('raise' or 'skip', read at each failure)
            decides, and its ``report["series_failed"]`` lists the skipped series. Without one: 'raise'.
    """

    def __init__(self, predict_step: Any, datamodule: Any = None) -> None:
        self.__wrapped__ = predict_step  # Lightning inspects the wrapped signature (batch_idx or not)
        self.datamodule = datamodule
        self.ok = 0
        self.failed: list[tuple[str, str]] = []
        self._first: SeriesError | None = None

    @classmethod
    def install(cls, model: Any, datamodule: Any = None) -> PredictGuard:
        """Wrap ``model.predict_step`` (an instance attribute over the class's method); returns the guard."""
        guard = cls(model.predict_step, datamodule)
        model.predict_step = guard
        # a skipped series returns None on purpose: Lightning's "predict returned None" would mislead
        warnings.filterwarnings("ignore", message="predict returned None if it was on purpose")
        return guard

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        try:
            out = self.__wrapped__(*args, **kwargs)
        except ConfigError:
            raise
        except Exception as err:
            ids = _series_ids(kwargs.get("batch", args[0] if args else None))
            lines = str(err).strip().splitlines()
            reason = f"{type(err).__name__}: {lines[0]}" if lines else type(err).__name__
            error = SeriesError(f"predict_step failed: {reason}", series_uid=", ".join(ids) or "?")
            config = getattr(self.datamodule, "config", None)
            if getattr(config, "on_error", "raise") != "skip":
                raise error from err
            self._first = self._first or error
            for sid in ids or ["?"]:
                self.failed.append((sid, reason))
                log.warning("series %s left out of prediction: %s", sid, reason)
            report = getattr(self.datamodule, "report", None)
            if isinstance(report, dict):
                report.setdefault("series_failed", []).extend((sid, reason) for sid in ids)
            return None
        self.ok += 1
        return out

    def check(self) -> None:
        """After the run: raise the first error when series failed and none was predicted.

        Raises:
            SeriesError: every batch failed (``on_error: skip`` skipped them all).
        """
        if self.failed:
            log.warning("%d series left out of prediction (on_error: skip)", len(self.failed))
        if self.failed and not self.ok and self._first is not None:
            raise SeriesError(
                f"no series could be predicted ({len(self.failed)} failed); the first: {self._first.reason}",
                series_uid=self._first.series_uid,
            )


def _series_ids(batch: Any) -> list[str]:
    """``batch["meta"]["series_id"]`` as strings ([] when the batch carries none)."""
    meta = batch.get("meta") if isinstance(batch, Mapping) else None
    ids = meta.get("series_id") if isinstance(meta, Mapping) else None
    if ids is None:
        return []
    return [str(ids)] if isinstance(ids, str) else [str(i) for i in ids]
