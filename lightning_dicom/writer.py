"""Write predictions back onto the source series: NIfTI label images and DICOM SEG.

:class:`PredictionWriter` is a Lightning prediction-writer callback. For every sample it takes
the model's prediction on the *preprocessed* grid, resamples it onto the *source* series' grid
with :func:`~lightning_dicom.geometry.to_source_geometry` (undoing reorientation, resampling and
crop/pad at once), and writes ``<output_dir>/<series>.nii.gz`` and/or ``<output_dir>/<series>.seg.dcm``.

The ``predict_step`` contract
----------------------------

``predict_step`` returns a dict::

    {"mask": prediction, "meta": batch["meta"]}

``prediction`` (the entry named by ``key``, default ``"mask"``) is a tensor on the grid of the
batch's ``image`` (``[B, C, D, H, W]``, z-y-x) and is one of:

* integer/bool ``[B, 1, D, H, W]`` (or ``[B, D, H, W]``): a label map, 0 = background, k = k-th
  structure. Resampled nearest-neighbour (``interpolation='nearest'``, default) or as one-hot
  channels linearly then argmax (``'linear'``, smoother when the spacing changes a lot).
* float ``[B, K, D, H, W]``, K > 1: class probabilities (softmax; channel 0 = background) or
  logits. Resampled linearly, then argmax on the source grid: labels 0..K-1.
* float ``[B, 1, D, H, W]``: foreground probability of one structure; linear, then >= 0.5.
* integer/bool ``[B, K, D, H, W]``, K > 1: 'channels' mode, channel k = binary mask of structure
  k + 1 (structures may overlap). Written as a K-component NIfTI and a K-segment SEG.

``meta`` is the batch's ``meta`` dict as collated (``series_id`` and the preprocessed grid's
``spacing``/``origin``/``direction``, plus the source grid ``source_spacing``/``source_origin``/
``source_direction``/``source_size`` or a nested ``source`` dict). With ``write_interval='batch'``
it may be left out, and is then taken from the batch. When the meta carries no source grid, the
source grid is derived from the series' :class:`~lightning_dicom.dicom.index.SeriesRecord` (needs a
:class:`~lightning_dicom.DicomDataModule`: ``trainer.datamodule.series``).

DICOM SEG needs the source series' instances: they are read (headers only; highdicom needs no
pixel data) from ``trainer.datamodule.series[series_id].files``, in slice order, and slice ``k``
of the source-grid array (z-y-x, as SimpleITK returns it) becomes the frame of ``files[k]`` (or of
frame ``frame_order[k]`` of a multi-frame file). The SEG is BINARY, one segment per structure,
and copies patient/study identity and frame of reference from the source series, as DICOM requires.

File names are the series id with every character outside ``[0-9A-Za-z._-]`` replaced by ``_``
(sub-volume ids ``<uid>#<k>`` become ``<uid>_<k>``): UIDs only, never patient names or IDs, and
the same holds for log lines. Files are written to a temporary name and renamed, so a reader never
sees half a file and two ranks writing the same series (padded distributed samplers) do not clash.

Use ``trainer.predict(model, datamodule=dm, return_predictions=False)`` for large datasets:
otherwise Lightning keeps every volume's prediction in memory.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pytorch_lightning as pl
import SimpleITK as sitk
import torch
from pytorch_lightning.callbacks import BasePredictionWriter

from lightning_dicom import io
from lightning_dicom.dicom.index import SeriesRecord
from lightning_dicom.errors import LightningDicomError
from lightning_dicom.files import atomic_write
from lightning_dicom.geometry import to_source_geometry

__all__ = [
    "PredictionWriter",
    "PredictionWriterImpl",
    "build_seg",
    "prediction_to_source",
    "record_geometry",
    "safe_filename",
]

log = logging.getLogger(__name__)

_UNSAFE = re.compile(r"[^0-9A-Za-z._-]")


def safe_filename(series_id: str) -> str:
    """A file-system safe stem for a series id (``#`` and every other unsafe character -> ``_``)."""
    name = _UNSAFE.sub("_", str(series_id)).strip(".")
    if not name:
        raise ValueError("empty series id")
    return name[:200]


def record_geometry(record: SeriesRecord) -> dict[str, list[float]]:
    """The source grid of a series as :func:`~lightning_dicom.dicom.series.read_series` builds it, from the index
    record alone (no pixel data): ``size``, ``spacing`` (x-y-z), ``origin`` (first slice), ``direction``."""
    iop = np.asarray(record.orientation, dtype=float)
    normal = np.cross(iop[:3], iop[3:])
    return {
        "size": [int(record.cols), int(record.rows), int(record.n_slices)],
        "spacing": [float(s) for s in record.spacing],
        "origin": [float(x) for x in record.positions[0]] if record.positions else [0.0, 0.0, 0.0],
        "direction": np.column_stack([iop[:3], iop[3:], normal]).ravel().tolist(),
    }


def _with_source(meta: Mapping[str, Any], record: SeriesRecord | None) -> Mapping[str, Any]:
    if "source_size" in meta or "source" in meta:
        return meta
    if record is None:
        raise LightningDicomError(
            "the sample's meta has no source grid (source_spacing/origin/direction/size) and no series record "
            "was given: predict with a DicomDataModule or pass record=",
            series_uid=str(meta.get("series_id", "")),
        )
    g = record_geometry(record)
    return {
        **meta,
        "source_size": g["size"],
        "source_spacing": g["spacing"],
        "source_origin": g["origin"],
        "source_direction": g["direction"],
    }


def _numpy(x: Any) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach()
        if x.dtype in (torch.float16, torch.bfloat16):
            x = x.float()  # numpy has no bfloat16, SimpleITK no float16
        return x.cpu().numpy()
    return np.asarray(x)


def _label_dtype(n: int) -> type:
    return np.uint8 if n < 256 else np.uint16


def _argmax_image(vec: sitk.Image) -> sitk.Image:
    """Per-voxel argmax over the components of a vector image -> scalar label image on its grid."""
    arr = io.array_view(vec)
    k = arr.shape[-1]
    labels = np.argmax(arr, axis=-1).astype(_label_dtype(k))
    out = io.from_array(labels)
    out.CopyInformation(vec)
    return out


def prediction_to_source(
    prediction: Any,
    meta: Mapping[str, Any],
    *,
    record: SeriesRecord | None = None,
    interpolation: Literal["nearest", "linear"] = "nearest",
) -> sitk.Image:
    """One sample's prediction on the source series' grid.

    Args:
        prediction: ``[C, D, H, W]`` or ``[D, H, W]`` tensor/array on the grid of ``meta`` (see the
            module docstring for the four kinds: labels, probabilities, one probability, channels).
        meta: the sample's meta (:func:`~lightning_dicom.geometry.sample_meta`).
        record: the series' index record, used for the source grid when ``meta`` has none.
        interpolation: integer label maps only: 'nearest', or 'linear' on one-hot channels + argmax.

    Returns:
        A uint8 (uint16 beyond 255 labels) label image (0 = background) with exactly the source's
        size, spacing, origin and direction; for 'channels' predictions a K-component uint8 image.
    """
    meta = _with_source(meta, record)
    arr = _numpy(prediction)
    if arr.ndim == 3:
        arr = arr[None]
    if arr.ndim != 4:
        raise ValueError(f"a sample's prediction must be [C, D, H, W] or [D, H, W], got shape {arr.shape}")
    c = arr.shape[0]
    if arr.dtype.kind in "iub":
        if c > 1:  # channels: one binary mask per structure
            if interpolation == "linear":
                vec = to_source_geometry(arr.astype(np.float32), meta, interpolation="linear")
                out = io.from_array((io.array_view(vec) >= 0.5).astype(np.uint8), is_vector=True)
                out.CopyInformation(vec)
                return out
            return to_source_geometry((arr != 0).astype(np.uint8), meta, interpolation="nearest")
        lab = arr[0]
        if lab.size and lab.min() < 0:
            raise ValueError("label maps must be >= 0 (0 = background)")
        n = int(lab.max()) + 1 if lab.size else 1
        if interpolation == "linear" and n > 1:
            onehot = np.stack([lab == k for k in range(n)]).astype(np.float32)
            return _argmax_image(to_source_geometry(onehot, meta, interpolation="linear"))
        return to_source_geometry(lab.astype(_label_dtype(n)), meta, interpolation="nearest")
    if arr.dtype.kind != "f":
        raise ValueError(f"unsupported prediction dtype {arr.dtype}")
    prob = to_source_geometry(arr.astype(np.float32), meta, interpolation="linear")
    if c == 1:
        out = sitk.Cast(sitk.GreaterEqual(prob, 0.5), sitk.sitkUInt8)
        out.CopyInformation(prob)
        return out
    return _argmax_image(prob)


def _sample(meta: Mapping[str, Any], i: int) -> dict[str, Any]:
    """The i-th sample of a collated meta dict (nested dicts such as ``source`` included)."""
    return {k: (_sample(v, i) if isinstance(v, Mapping) else v[i]) for k, v in meta.items()}


class PredictionWriterImpl:
    """Write each predicted mask onto its source series as NIfTI and/or DICOM SEG.

    ``predict_step`` must return ``{"mask": tensor, "meta": batch["meta"]}`` (see the module
    docstring of :mod:`lightning_dicom.writer` for the tensor kinds). Outputs are
    ``<output_dir>/<series_id>.nii.gz`` (uint8 label image, 0 = background, k = k-th structure, on
    the exact source grid) and ``<output_dir>/<series_id>.seg.dcm`` (DICOM SEG, BINARY, one segment
    per structure, referencing the source instances), with ``#`` and other unsafe characters of the
    series id replaced by ``_``. Set ``trainer.predict(..., return_predictions=False)`` to keep
    memory flat.

    YAML (LightningCLI)::

        trainer:
          callbacks:
            - class_path: lightning_dicom.writer.PredictionWriter
              init_args: {output_dir: predictions, formats: [nifti, seg], structure_names: [lesion]}

    Args:
        output_dir: folder of the written files (created).
        formats: any of 'nifti' (``.nii.gz``) and 'seg' (DICOM Segmentation, ``.seg.dcm``).
        key: the entry of ``predict_step``'s output dict that holds the prediction.
        structure_names: names of labels 1..K (SEG segment labels); default ``label_<k>``.
        write_interval: 'batch' writes after every batch (memory stays flat); 'epoch' writes all
            predictions at the end (they must then carry ``meta``).
        interpolation: integer label maps: 'nearest' (default) or 'linear' (one-hot channels
            resampled linearly, then argmax). Probabilities are always resampled linearly.
        algorithm_name: the SEG's algorithm name and model name.
    """

    def __init__(
        self,
        output_dir: Path,
        formats: Sequence[Literal["nifti", "seg"]] = ("nifti",),
        key: str = "mask",
        structure_names: list[str] | None = None,
        write_interval: Literal["batch", "epoch"] = "batch",
        interpolation: Literal["nearest", "linear"] = "nearest",
        algorithm_name: str = "lightning_dicom",
    ) -> None:
        if write_interval not in ("batch", "epoch"):
            raise ValueError(f"write_interval must be 'batch' or 'epoch', got {write_interval!r}")
        super().__init__(write_interval)  # type: ignore[call-arg]  # BasePredictionWriter
        formats = [formats] if isinstance(formats, str) else list(formats)  # type: ignore[list-item]
        bad = [f for f in formats if f not in ("nifti", "seg")]
        if bad or not formats:
            raise ValueError(f"formats must be a non-empty list of 'nifti' and 'seg', got {formats}")
        if interpolation not in ("nearest", "linear"):
            raise ValueError(f"interpolation must be 'nearest' or 'linear', got {interpolation!r}")
        self.output_dir = Path(output_dir)
        self.formats = list(dict.fromkeys(formats))
        self.key = key
        self.structure_names = list(structure_names) if structure_names is not None else None
        self.interpolation = interpolation
        self.algorithm_name = algorithm_name
        #: series_id -> SeriesRecord used when no datamodule provides one (standalone use).
        self.series: dict[str, SeriesRecord] = {}
        #: series_id -> {format: path} of everything written by this callback.
        self.written: dict[str, dict[str, Path]] = {}

    # -- Lightning hooks --------------------------------------------------------------------------
    def write_on_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        prediction: Any,
        batch_indices: Sequence[int] | None,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if prediction is not None:  # None: a series left out (lightning-dicom predict, on_error: skip)
            self.write_batch(prediction, batch=batch, trainer=trainer)

    def write_on_epoch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        predictions: Sequence[Any],
        batch_indices: Sequence[Any],
    ) -> None:
        for p in _flatten(predictions):
            if p is not None:
                self.write_batch(p, trainer=trainer)

    # -- writing ----------------------------------------------------------------------------------
    def write_batch(
        self,
        prediction: Mapping[str, Any],
        *,
        batch: Mapping[str, Any] | None = None,
        trainer: pl.Trainer | None = None,
    ) -> list[dict[str, Path]]:
        """Write every sample of one ``predict_step`` output; returns {format: path} per sample."""
        if not isinstance(prediction, Mapping) or self.key not in prediction:
            got = sorted(prediction) if isinstance(prediction, Mapping) else type(prediction).__name__
            raise LightningDicomError(
                f"predict_step must return a dict with the prediction under {self.key!r} "
                f"and 'meta' (got {got})"
            )
        meta = prediction.get("meta")
        if meta is None and isinstance(batch, Mapping):
            meta = batch.get("meta")
        if meta is None:
            raise LightningDicomError(
                "predict_step's output has no 'meta': return {'mask': ..., 'meta': batch['meta']}"
            )
        tensor = prediction[self.key]
        n = len(meta["series_id"])
        if tensor.shape[0] != n:
            raise LightningDicomError(f"prediction has {tensor.shape[0]} samples but meta has {n}")
        out = []
        for i in range(n):
            sm = _sample(meta, i)
            out.append(self.write_sample(tensor[i], sm, record=self._record(trainer, str(sm["series_id"]))))
        return out

    def write_sample(
        self, prediction: Any, meta: Mapping[str, Any], *, record: SeriesRecord | None = None
    ) -> dict[str, Path]:
        """Write one sample (``[C, D, H, W]`` or ``[D, H, W]`` on the grid of ``meta``); returns {format: path}.

        ``record`` (the series' :class:`~lightning_dicom.dicom.index.SeriesRecord`) is needed for 'seg',
        and for the source grid when ``meta`` carries none.
        """
        series_id = str(meta["series_id"])
        record = record or self.series.get(series_id)
        image = prediction_to_source(prediction, meta, record=record, interpolation=self.interpolation)
        self.output_dir.mkdir(parents=True, exist_ok=True)
        stem = safe_filename(series_id)
        paths: dict[str, Path] = {}
        if "nifti" in self.formats:
            path = self.output_dir / f"{stem}.nii.gz"
            atomic_write(path, lambda tmp: io.write_image(image, tmp))
            paths["nifti"] = path
        if "seg" in self.formats:
            if record is None:
                raise LightningDicomError(
                    "DICOM SEG output needs the source series' files: predict with a DicomDataModule "
                    "(trainer.datamodule.series) or set PredictionWriter.series",
                    series_uid=series_id,
                )
            seg = build_seg(image, record, self.structure_names, algorithm_name=self.algorithm_name)
            path = self.output_dir / f"{stem}.seg.dcm"
            atomic_write(path, lambda tmp: seg.save_as(tmp))
            paths["seg"] = path
        self.written[series_id] = paths
        log.debug("wrote prediction of series %s: %s", series_id, ", ".join(p.name for p in paths.values()))
        return paths

    def _record(self, trainer: pl.Trainer | None, series_id: str) -> SeriesRecord | None:
        if series_id in self.series:
            return self.series[series_id]
        series = getattr(getattr(trainer, "datamodule", None), "series", None)
        return series.get(series_id) if isinstance(series, Mapping) else None


def _flatten(predictions: Any) -> list[Any]:
    """Epoch-end predictions: a list of batch outputs, or one such list per dataloader."""
    if isinstance(predictions, Mapping):
        return [predictions]
    out: list[Any] = []
    for p in predictions or []:
        out.extend(_flatten(p) if isinstance(p, (list, tuple)) else [p])
    return out


def _segments(image: sitk.Image, names: Sequence[str] | None) -> tuple[list[str], np.ndarray]:
    """(segment labels, uint8 [z, y, x, segment] stack) of a label image or a channels image."""
    arr = io.to_array(image)
    if image.GetNumberOfComponentsPerPixel() > 1:
        stack = (arr != 0).astype(np.uint8)
        k = stack.shape[-1]
    else:
        k = max(int(arr.max()) if arr.size else 0, len(names or ()), 1)
        stack = np.stack([arr == v for v in range(1, k + 1)], axis=-1).astype(np.uint8)
    labels = [str(names[i]) if names is not None and i < len(names) else f"label_{i + 1}" for i in range(k)]
    return labels, stack


def build_seg(
    image: sitk.Image,
    record: SeriesRecord,
    structure_names: Sequence[str] | None = None,
    *,
    algorithm_name: str = "lightning_dicom",
) -> Any:
    """A ``highdicom.seg.Segmentation`` (BINARY) of a source-grid label/channels image of ``record``.

    Slice ``k`` of the image (z-y-x) is the frame of ``record.files[k]``; for a multi-frame source,
    of frame ``record.frame_order[k]`` (slice order -> file order). The image must lie on the
    record's grid: its size must equal the record's and its first and last slices the recorded
    positions (a flipped or shifted array is refused rather than written onto the wrong slices).
    """
    import highdicom as hd
    import pydicom
    from pydicom.sr.codedict import codes
    from pydicom.uid import generate_uid

    from lightning_dicom._version import __version__

    sid = record.series_id
    size = tuple(image.GetSize())
    if size != (record.cols, record.rows, record.n_slices):
        raise LightningDicomError(
            f"prediction grid {size} (x-y-z) is not the series' "
            f"{(record.cols, record.rows, record.n_slices)}",
            series_uid=sid,
        )
    if record.positions:
        last = np.asarray(image.TransformIndexToPhysicalPoint((0, 0, size[2] - 1)))
        first = np.asarray(image.GetOrigin())
        tol = 0.05 * float(min(image.GetSpacing()))
        if (
            np.linalg.norm(first - np.asarray(record.positions[0])) > tol
            or np.linalg.norm(last - np.asarray(record.positions[-1])) > tol
        ):
            raise LightningDicomError(
                "the prediction's slices do not lie on the series' slice positions", series_uid=sid
            )
    labels, stack = _segments(image, structure_names)
    heads = [pydicom.dcmread(f, stop_before_pixels=True) for f in record.files]
    if len(heads) == size[2]:
        pixels = stack
    elif len(heads) == 1:  # one multi-frame file: frames in file order
        order = list(record.frame_order) or list(range(size[2]))
        pixels = np.empty_like(stack)
        pixels[order] = stack
    else:
        raise LightningDicomError(f"{len(heads)} files for {size[2]} slices", series_uid=sid)
    algorithm = hd.AlgorithmIdentificationSequence(
        name=algorithm_name[:64], family=codes.cid7162.ArtificialIntelligence, version=__version__
    )
    descriptions = [
        hd.seg.SegmentDescription(
            segment_number=i,
            segment_label=name[:64],
            segmented_property_category=codes.SCT.Tissue,
            segmented_property_type=codes.SCT.Tissue,
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
            algorithm_identification=algorithm,
        )
        for i, name in enumerate(labels, start=1)
    ]
    return hd.seg.Segmentation(
        source_images=heads,
        pixel_array=pixels,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=descriptions,
        series_instance_uid=generate_uid(),
        series_number=900,
        sop_instance_uid=generate_uid(),
        instance_number=1,
        manufacturer="lightning_dicom",
        manufacturer_model_name=algorithm_name[:64],
        software_versions=__version__,
        device_serial_number="0",
        series_description=f"{algorithm_name} segmentation"[:64],
        omit_empty_frames=bool(stack.any()),  # an all-empty SEG keeps its frames (highdicom would warn)
    )


class PredictionWriter(PredictionWriterImpl, BasePredictionWriter):
    __doc__ = PredictionWriterImpl.__doc__  # the implementation is shared with :mod:`lightning_dicom.unified`
