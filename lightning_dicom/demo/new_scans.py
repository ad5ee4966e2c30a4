"""The second half of the segmentation demo: predict on new synthetic scans and score the written SEGs.

New scans are written with another seed (other patients, lesions and UIDs than training), without any
mask object in the folder; their true lesion masks stay in memory. Prediction takes the path of
``lightning-dicom predict --data.root NEW --ckpt_path CKPT``: a new DataModule on the folder, the
checkpoint's data config applied before it prepares anything
(:func:`~lightning_dicom.data.predict_config.apply_checkpoint_data_config`, as the CLI does), whole volumes, sliding window (``data.inference``), :class:`~lightning_dicom.writer.PredictionWriter`.
Each written SEG is read back onto its source series (:func:`~lightning_dicom.masks.read.read_mask`,
which checks the referenced series) and compared with the truth.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

from lightning_dicom import io
from lightning_dicom.dicom.record import SeriesRecord
from lightning_dicom.masks.read import read_mask

__all__ = ["dice", "predict_new_scans", "score_written", "seg_dice", "truth_image"]


def dice(a: np.ndarray, b: np.ndarray) -> float:
    """``2 |A and B| / (|A| + |B|)`` of two boolean arrays of one shape (1.0 when both are empty)."""
    a, b = a.astype(bool), b.astype(bool)
    denom = int(a.sum()) + int(b.sum())
    return 1.0 if denom == 0 else 2.0 * int((a & b).sum()) / denom


def truth_image(item: Mapping[str, Any]) -> sitk.Image:
    """The true lesion of one :func:`~lightning_dicom.demo.synthetic_masks.write_segmentation_dataset`
    item as a uint8 image (``mask[k]`` on ``files[k]``; spacing/origin/direction x-y-z mm, LPS)."""
    img = io.from_array(np.asarray(item["mask"], dtype=np.uint8))
    img.SetSpacing(tuple(item["spacing"]))
    img.SetOrigin(tuple(item["origin"]))
    img.SetDirection(tuple(item["direction"]))
    return img


def seg_dice(
    seg_path: str | Path, record: SeriesRecord, truth: sitk.Image, structure: str = "lesion"
) -> float:
    """Dice of the ``structure`` segment of a written SEG, read back onto its source series, against
    ``truth`` (resampled, nearest neighbour, onto the source grid)."""
    masks = read_mask(seg_path, record)
    if structure not in masks:  # an empty prediction: the truth is never empty, Dice 0
        return 0.0
    pred = masks[structure]
    on_grid = sitk.Resample(truth, pred, sitk.Transform(), sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)
    return dice(io.to_array(pred) > 0, io.to_array(on_grid) > 0)


def score_written(
    written: Mapping[str, Mapping[str, Path]],
    series: Mapping[str, SeriesRecord],
    items: Sequence[Mapping[str, Any]],
) -> dict[str, float]:
    """series_id -> Dice of its written SEG against the truth of the item with its SeriesInstanceUID."""
    by_uid = {it["series_uid"]: it for it in items}
    out = {}
    for series_id, paths in written.items():
        rec = series[series_id]
        out[series_id] = seg_dice(paths["seg"], rec, truth_image(by_uid[rec.series_uid]))
    return out


def predict_new_scans(
    out: Path, settings: Mapping[str, Any], ckpt: Path, *, n_scans: int = 6, seed: int = 1
) -> tuple[dict[str, float], Path, Path]:
    """Write ``n_scans`` new synthetic CT series (``seed``; no masks) to ``out/seg_new``, predict them from
    ``ckpt`` (a :class:`~lightning_dicom.demo.segmentation_models.UNet3D` checkpoint) with a DataModule of
    ``settings`` (the demo's DicomDataModule arguments), write SEGs to ``out/seg_new_predictions``.

    Returns:
        (series_id -> Dice of its SEG against the true lesion, the scans' folder, the SEGs' folder).
    """
    import pytorch_lightning as pl

    from lightning_dicom.data.predict_config import apply_checkpoint_data_config
    from lightning_dicom.datamodule import DicomDataModule
    from lightning_dicom.demo.segmentation_models import UNet3D
    from lightning_dicom.demo.synthetic_masks import write_segmentation_dataset
    from lightning_dicom.writer import PredictionWriter

    root = Path(out) / "seg_new"
    items = write_segmentation_dataset(
        root, n_patients=n_scans, shape_zyx=(24, 48, 48), spacing=(1.0, 1.0, 2.0), seed=seed, formats=()
    )
    dm = DicomDataModule(root=root, work_dir=Path(out) / "seg_new_work", **settings)
    apply_checkpoint_data_config(dm, ckpt)
    writer = PredictionWriter(Path(out) / "seg_new_predictions", formats=["seg"], structure_names=["lesion"])
    trainer = pl.Trainer(
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        default_root_dir=out,
        callbacks=[writer],
    )
    trainer.predict(UNet3D(width=8), datamodule=dm, ckpt_path=str(ckpt), return_predictions=False)
    return score_written(writer.written, dm.series, items), root, writer.output_dir
