"""The same classes for the unified ``lightning`` package (``import lightning.pytorch as L``).

``pytorch_lightning`` and ``lightning.pytorch`` ship the same code under two names, with distinct
base classes: an ``L.Trainer`` refuses a ``pytorch_lightning.LightningDataModule`` (and callbacks),
and no class can be both. So each class has one implementation (``*Impl`` in its own module) and a
thin class per namespace: :class:`lightning_dicom.DicomDataModule` for ``pytorch_lightning``, and,
here, for ``lightning.pytorch``::

    import lightning.pytorch as L
    from lightning_dicom.unified import DicomDataModule, PredictionWriter

    L.Trainer(max_epochs=50).fit(my_L_module, datamodule=DicomDataModule(root="/data/ct", labels="labels.csv"))

Needs the optional ``lightning`` package (``pip install "lightning-dicom[lightning]"``).
"""

from __future__ import annotations

try:
    import lightning.pytorch as L  # noqa: N812 - Lightning's own spelling
    from lightning.pytorch.callbacks import BasePredictionWriter
except ImportError as err:  # pragma: no cover - the extra is missing
    raise ImportError(
        "lightning_dicom.unified needs the `lightning` package: pip install 'lightning-dicom[lightning]'"
    ) from err

from lightning_dicom.datamodule import DicomDataModuleImpl
from lightning_dicom.prediction_csv import ClassificationCSVWriterImpl
from lightning_dicom.writer import PredictionWriterImpl

__all__ = ["ClassificationCSVWriter", "DicomDataModule", "PredictionWriter"]


class DicomDataModule(DicomDataModuleImpl, L.LightningDataModule):
    __doc__ = DicomDataModuleImpl.__doc__


class PredictionWriter(PredictionWriterImpl, BasePredictionWriter):  # type: ignore[misc]
    __doc__ = PredictionWriterImpl.__doc__


class ClassificationCSVWriter(ClassificationCSVWriterImpl, BasePredictionWriter):  # type: ignore[misc]
    __doc__ = ClassificationCSVWriterImpl.__doc__
