"""PredictionWriter: predictions on the preprocessed grid land on the source series (NIfTI and DICOM SEG).

The flow is real end to end: generated DICOM series with a known lesion, a DicomDataModule
(cache, RAS reorientation, 1.5 mm resampling, crop/pad), a Trainer.predict whose module returns the
known lesion *as preprocessed* (what a perfect model would predict on that grid), the writer, and
the files read back with SimpleITK and :func:`lightning_dicom.masks.read_mask`.

Accuracy notes: a label map on a 1.5 mm grid cannot carry a 1 mm boundary, so nearest-neighbour
labels lose about 1/R of Dice whatever the writer does (0.975 for this ~17 mm lesion, ~0.95 for a
9 mm one); probabilities resampled linearly and argmaxed on the source grid recover the lesion
almost exactly (Dice > 0.999), which is what pins the geometry down to a small fraction of a voxel.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
import pytorch_lightning as pl
import SimpleITK as sitk
import torch
from torch import nn

from lightning_dicom import DicomDataModule
from lightning_dicom.config import PreprocessingConfig
from lightning_dicom.data.preprocess import preprocess
from lightning_dicom.demo.synthetic import direction_from_orientation, make_phantom
from lightning_dicom.demo.synthetic_masks import write_segmentation_dataset
from lightning_dicom.demo.synthetic_stacks import write_multiframe
from lightning_dicom.dicom.index import DicomIndex
from lightning_dicom.dicom.series import read_series
from lightning_dicom.errors import LightningDicomError
from lightning_dicom.io import geometry
from lightning_dicom.masks.read import read_mask
from lightning_dicom.writer import PredictionWriter, prediction_to_source, record_geometry, safe_filename

PREP = {"orientation": "RAS", "spacing": [1.5, 1.5, 1.5], "window": [-200, 400], "size": [36, 32, 40]}
MASK_PREP = PreprocessingConfig(
    orientation="RAS", spacing=(1.5, 1.5, 1.5), size=(36, 32, 40), interpolation="linear", normalize="none"
)


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.astype(bool), b.astype(bool)
    return float(2.0 * np.logical_and(a, b).sum() / (a.sum() + b.sum()))


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """Two series (axial; sagittal tilted 15 degrees), each with a known ~17 mm lesion."""
    root = tmp_path_factory.mktemp("seg_ct")
    items = write_segmentation_dataset(
        root,
        n_patients=2,
        shape_zyx=(28, 52, 52),
        spacing=(1.0, 1.0, 2.0),
        seed=3,
        formats=(),
        orientations=("axial", "sagittal:15"),
        lesion_radius_mm=17,
    )
    return root, items


@pytest.fixture(scope="module")
def soft_predictions(dataset):
    """series uid -> (lesion fraction on the preprocessed grid [1, D, H, W] float32, preprocess meta)."""
    _, items = dataset
    out = {}
    for it in items:
        ref = read_series(it["files"])
        m = sitk.GetImageFromArray(it["mask"].astype(np.float32))
        m.CopyInformation(ref)
        # predict under a sliding window reads whole volumes: the training preprocessing without its
        # crop/pad size (issue 11; the DataModule below has an inference roi)
        out[it["series_uid"]] = preprocess(m, MASK_PREP.model_copy(update={"size": None}))
    return out


class _Oracle(pl.LightningModule):
    """predict_step returns the known lesion on the batch's grid, following the writer's contract."""

    def __init__(self, predictions: dict[str, tuple[np.ndarray, dict]], kind: str) -> None:
        super().__init__()
        self.predictions = predictions
        self.kind = kind
        self.dummy = nn.Parameter(torch.zeros(1))
        self.seen: list[str] = []

    def predict_step(self, batch, batch_idx):
        meta = batch["meta"]
        out = []
        for i, sid in enumerate(meta["series_id"]):
            frac, pmeta = self.predictions[sid]
            # the batch's grid is the grid the prediction was made on
            np.testing.assert_allclose(meta["origin"][i].cpu().numpy(), pmeta["origin"], atol=1e-6)
            np.testing.assert_allclose(meta["spacing"][i].cpu().numpy(), pmeta["spacing"], atol=1e-9)
            np.testing.assert_allclose(meta["direction"][i].cpu().numpy(), pmeta["direction"], atol=1e-9)
            assert tuple(batch["image"].shape[2:]) == frac.shape[1:]
            t = torch.from_numpy(frac)
            out.append(torch.cat([1 - t, t]) if self.kind == "probabilities" else (t >= 0.5).long())
            self.seen.append(sid)
        return {"mask": torch.stack(out), "meta": meta}


@pytest.fixture(scope="module")
def work_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("seg_work")  # shared: the cache is built once


@pytest.mark.parametrize(
    ("kind", "interpolation", "min_dice"),
    [
        ("probabilities", "nearest", 0.99),  # probabilities: always linear + argmax
        ("labels", "linear", 0.98),
        ("labels", "nearest", 0.96),  # intrinsic loss of a 1.5 mm label map, see the module docstring
    ],
)
def test_trainer_predict_writes_nifti_and_seg_on_the_source_grid(
    dataset, soft_predictions, work_dir, tmp_path, kind, interpolation, min_dice
):
    root, items = dataset
    dm = DicomDataModule(
        root=root,
        work_dir=work_dir,
        preprocessing=PREP,
        inference={"roi_size": PREP["size"]},  # a window: predict reads whole volumes (the oracle's grid)
        progress=False,
        loader={"batch_size": 2, "num_workers": 0},
    )
    writer = PredictionWriter(
        tmp_path / "out", formats=["nifti", "seg"], structure_names=["lesion"], interpolation=interpolation
    )
    model = _Oracle(soft_predictions, kind)
    trainer = pl.Trainer(
        accelerator="cpu",
        logger=False,
        callbacks=[writer],
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    assert trainer.predict(model, datamodule=dm, return_predictions=False) is None
    assert sorted(model.seen) == sorted(it["series_uid"] for it in items)

    for it in items:
        uid = it["series_uid"]
        ref = read_series(it["files"])
        nii = tmp_path / "out" / f"{uid}.nii.gz"
        seg_path = tmp_path / "out" / f"{uid}.seg.dcm"
        assert writer.written[uid] == {"nifti": nii, "seg": seg_path}

        img = sitk.ReadImage(str(nii))
        assert img.GetSize() == ref.GetSize()
        np.testing.assert_allclose(img.GetSpacing(), ref.GetSpacing(), atol=1e-6)
        np.testing.assert_allclose(img.GetOrigin(), ref.GetOrigin(), atol=1e-4)
        np.testing.assert_allclose(img.GetDirection(), ref.GetDirection(), atol=1e-6)
        labels = sitk.GetArrayFromImage(img)
        assert set(np.unique(labels)) <= {0, 1}
        assert _dice(labels, it["mask"]) >= min_dice

        seg = pydicom.dcmread(seg_path)
        assert seg.Modality == "SEG"
        assert seg.SegmentationType == "BINARY"
        assert [s.SegmentLabel for s in seg.SegmentSequence] == ["lesion"]
        assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == uid
        assert (
            seg.FrameOfReferenceUID
            == pydicom.dcmread(it["files"][0], stop_before_pixels=True).FrameOfReferenceUID
        )
        masks = read_mask(seg_path, reference=ref, series_uid=uid)
        assert list(masks) == ["lesion"]
        back = sitk.GetArrayFromImage(masks["lesion"])
        np.testing.assert_array_equal(back, labels)  # SEG and NIfTI agree voxel for voxel
        assert _dice(back, it["mask"]) >= min_dice
    # UIDs only in file names: no patient name or ID
    assert not any("SYN" in p.name for p in (tmp_path / "out").iterdir())


def test_write_sample_with_preprocess_meta(dataset, soft_predictions, tmp_path):
    """Standalone use: one sample, the meta straight from preprocess() (nested 'source' dict)."""
    _, items = dataset
    it = items[1]
    frac, meta = soft_predictions[it["series_uid"]]
    writer = PredictionWriter(tmp_path, formats=["nifti"])
    paths = writer.write_sample(
        torch.from_numpy(np.concatenate([1 - frac, frac])), {**meta, "series_id": it["series_uid"]}
    )
    img = sitk.ReadImage(str(paths["nifti"]))
    assert geometry(img)["size"] == meta["source"]["size"]
    assert _dice(sitk.GetArrayFromImage(img), it["mask"]) >= 0.99


def test_flat_source_keys_and_record_fallback_give_the_same_grid(dataset, soft_predictions):
    _, items = dataset
    it = items[0]
    frac, meta = soft_predictions[it["series_uid"]]
    src = meta["source"]
    flat = {k: v for k, v in meta.items() if k != "source"}
    flat.update(
        source_size=torch.tensor(src["size"]),
        source_spacing=torch.tensor(src["spacing"]),
        source_origin=torch.tensor(src["origin"]),
        source_direction=torch.tensor(src["direction"]),
    )
    with DicomIndex(it["files"]) as idx:
        idx.scan(workers=1)
        rec = idx.series()[0]
    assert record_geometry(rec)["size"] == src["size"]
    lab = (frac >= 0.5).astype(np.int64)
    a = prediction_to_source(lab, flat)
    b = prediction_to_source(lab, {k: v for k, v in meta.items() if k != "source"}, record=rec)
    for x, y in (
        (a.GetOrigin(), src["origin"]),
        (b.GetOrigin(), src["origin"]),
        (a.GetDirection(), src["direction"]),
        (b.GetDirection(), src["direction"]),
    ):
        np.testing.assert_allclose(x, y, atol=1e-6)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(a), sitk.GetArrayFromImage(b))
    with pytest.raises(LightningDicomError, match="no source grid"):
        prediction_to_source(lab, {k: v for k, v in meta.items() if k != "source"})


def test_multiframe_source_maps_slices_to_frames_by_frame_order(tmp_path):
    """A multi-frame source whose frames are stored out of slice order: frame i gets its own slice."""
    hu = make_phantom((10, 24, 20), seed=1)
    order = [int(k) for k in np.random.default_rng(0).permutation(10)]
    s = write_multiframe(
        tmp_path / "mf.dcm",
        hu,
        spacing=(1.0, 1.0, 2.0),
        direction=direction_from_orientation("axial", 10.0),
        frame_order=order,
        modality="CT",
    )
    with DicomIndex(s.files) as idx:
        idx.scan(workers=1)
        rec = idx.series()[0]
    assert rec.frame_order  # not in slice order
    g = geometry(read_series(rec))
    mask = np.zeros((10, 24, 20), dtype=np.int64)
    mask[2:7, 5:15, 4:12] = 1
    mask[3, 6:9, 5] = 2  # differs from slice to slice
    meta = {
        "series_id": rec.series_id,
        "spacing": g["spacing"],
        "origin": g["origin"],
        "direction": g["direction"],
        "source": g,
    }
    paths = PredictionWriter(tmp_path / "out", formats=["seg"], structure_names=["box", "dot"]).write_sample(
        torch.from_numpy(mask)[None], meta, record=rec
    )
    back = read_mask(paths["seg"], rec)
    assert list(back) == ["box", "dot"]
    np.testing.assert_array_equal(sitk.GetArrayFromImage(back["box"]), mask == 1)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(back["dot"]), mask == 2)


def test_channels_mode_overlapping_structures_and_safe_names(dataset, tmp_path):
    _, items = dataset
    it = items[0]
    with DicomIndex(it["files"]) as idx:
        idx.scan(workers=1)
        rec = idx.series()[0]
    g = record_geometry(rec)
    a = it["mask"]
    b = np.zeros_like(a)
    b[5:9, 10:30, 10:30] = True  # overlaps the lesion
    meta = {
        "series_id": f"{rec.series_id}#2",
        "spacing": g["spacing"],
        "origin": g["origin"],
        "direction": g["direction"],
    }
    writer = PredictionWriter(tmp_path, formats=["nifti", "seg"], structure_names=["lesion", "slab"])
    paths = writer.write_sample(torch.from_numpy(np.stack([a, b])), meta, record=rec)
    assert paths["seg"].name == f"{rec.series_id}_2.seg.dcm"
    nii = sitk.ReadImage(str(paths["nifti"]))
    assert nii.GetNumberOfComponentsPerPixel() == 2
    back = read_mask(paths["seg"], read_series(rec), series_uid=rec.series_uid)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(back["lesion"]), a)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(back["slab"]), b)


def test_empty_prediction_still_writes_a_valid_seg(dataset, tmp_path):
    _, items = dataset
    with DicomIndex(items[0]["files"]) as idx:
        idx.scan(workers=1)
        rec = idx.series()[0]
    g = record_geometry(rec)
    meta = {
        "series_id": rec.series_id,
        "spacing": g["spacing"],
        "origin": g["origin"],
        "direction": g["direction"],
    }
    writer = PredictionWriter(tmp_path, formats=["seg"], structure_names=["lesion"])
    paths = writer.write_sample(np.zeros(g["size"][::-1], dtype=np.int64), meta, record=rec)
    seg = pydicom.dcmread(paths["seg"])
    assert [s.SegmentLabel for s in seg.SegmentSequence] == ["lesion"]


def test_contract_errors(tmp_path):
    writer = PredictionWriter(tmp_path, formats=["seg"])
    meta = {
        "series_id": ["1.2.3"],
        "spacing": torch.ones(1, 3),
        "origin": torch.zeros(1, 3),
        "direction": torch.eye(3).reshape(1, 9),
        "source_size": torch.tensor([[4, 4, 4]]),
        "source_spacing": torch.ones(1, 3),
        "source_origin": torch.zeros(1, 3),
        "source_direction": torch.eye(3).reshape(1, 9),
    }
    with pytest.raises(LightningDicomError, match="predict_step must return a dict"):
        writer.write_batch(torch.zeros(1, 1, 4, 4, 4))
    with pytest.raises(LightningDicomError, match="no 'meta'"):
        writer.write_batch({"mask": torch.zeros(1, 1, 4, 4, 4)})
    with pytest.raises(LightningDicomError, match="needs the source series' files"):
        writer.write_batch({"mask": torch.zeros(1, 1, 4, 4, 4, dtype=torch.long), "meta": meta})
    # meta may come from the batch; nifti needs no series record
    nifti = PredictionWriter(tmp_path, formats=["nifti"])
    out = nifti.write_batch({"mask": torch.zeros(1, 1, 4, 4, 4, dtype=torch.long)}, batch={"meta": meta})
    assert out == [{"nifti": tmp_path / "1.2.3.nii.gz"}]
    assert not [p for p in Path(tmp_path).iterdir() if p.name.startswith(".")]  # no temporary left
    with pytest.raises(ValueError, match="formats"):
        PredictionWriter(tmp_path, formats=["png"])


def test_safe_filename():
    assert safe_filename("1.2.840.5#2") == "1.2.840.5_2"
    assert safe_filename("a/b\\c d") == "a_b_c_d"
    assert safe_filename("../x") == "_x"


def test_epoch_interval_writes_nested_predictions(tmp_path):
    meta = {
        "series_id": ["1.2.3", "1.2.4"],
        "spacing": torch.ones(2, 3),
        "origin": torch.zeros(2, 3),
        "direction": torch.eye(3).reshape(1, 9).repeat(2, 1),
        "source": {
            "size": torch.tensor([[4, 5, 6]] * 2),
            "spacing": torch.full((2, 3), 0.5),
            "origin": torch.full((2, 3), -0.25),
            "direction": torch.eye(3).reshape(1, 9).repeat(2, 1),
        },
    }
    mask = torch.zeros(2, 1, 3, 3, 2, dtype=torch.long)
    mask[1, 0, 0, 0, 0] = 1
    writer = PredictionWriter(tmp_path, write_interval="epoch")
    writer.write_on_epoch_end(None, None, [[{"mask": mask, "meta": meta}]], [[[0, 1]]])
    assert sorted(writer.written) == ["1.2.3", "1.2.4"]
    img = sitk.ReadImage(str(writer.written["1.2.4"]["nifti"]))
    assert img.GetSize() == (4, 5, 6)
    assert img.GetSpacing() == (0.5, 0.5, 0.5)
    arr = sitk.GetArrayFromImage(img)
    assert arr[:2, :2, :2].all()
    assert arr.sum() == 8  # 1 mm voxel 0 holds the 0.5 mm voxels at -0.25 and 0.25 per axis


def test_segmentation_dataset_masks_agree_in_every_format(tmp_path):
    import csv

    (it,) = write_segmentation_dataset(
        tmp_path, n_patients=1, shape_zyx=(12, 24, 20), seed=5, orientations=(("coronal", 10.0),)
    )
    ref = read_series(it["files"])
    hu = sitk.GetArrayFromImage(ref)
    assert it["mask"].any()
    assert abs(hu[it["mask"]].mean() - 300) < 5
    for kind in ("seg", "rtstruct", "nifti"):
        masks = read_mask(it[kind], ref, series_uid=it["series_uid"])
        assert len(masks) == 1, kind
        np.testing.assert_array_equal(
            sitk.GetArrayFromImage(next(iter(masks.values()))), it["mask"], err_msg=kind
        )
    assert "lesion" in read_mask(it["rtstruct"], ref, series_uid=it["series_uid"])
    with open(tmp_path / "masks.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert rows == [
        {"SeriesInstanceUID": it["series_uid"], "mask": it["nifti"].relative_to(tmp_path).as_posix()}
    ]
