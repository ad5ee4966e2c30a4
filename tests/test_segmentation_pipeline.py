"""Masks through the DataModule: SEG, RTSTRUCT and NIfTI sources, cache, patches, batches."""

from __future__ import annotations

import pytest
import torch

from lightning_dicom import DicomDataModule
from lightning_dicom.demo.synthetic_masks import write_segmentation_dataset
from lightning_dicom.dicom.index import DicomIndex
from lightning_dicom.errors import LightningDicomWarning
from lightning_dicom.masks.association import find_mask_objects, link_masks

PREP = {"spacing": [1.5, 1.5, 2.0], "window": [-200, 400], "size": [12, 24, 24]}


@pytest.fixture(scope="module")
def seg_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("segdata")
    records = write_segmentation_dataset(
        root, n_patients=4, shape_zyx=(12, 32, 32), spacing=(1.0, 1.0, 2.0), seed=3
    )
    return root, records


def test_index_links_seg_and_rtstruct_to_their_series(seg_data, tmp_path):
    root, records = seg_data
    with DicomIndex([root], tmp_path / "index.sqlite") as idx:
        idx.scan(workers=1)
        series = idx.series()
        objects = find_mask_objects(idx)
        again = find_mask_objects(idx)  # second call served from the index file
    assert sorted(o.kind for o in objects) == ["rtstruct"] * 4 + ["seg"] * 4
    assert again == objects
    linked, orphans = link_masks(series, objects)
    assert orphans == []
    for r in records:
        assert sorted(linked[r["series_uid"]]) == sorted([str(r["seg"]), str(r["rtstruct"])])


@pytest.mark.parametrize("source", ["seg", "rtstruct", "nifti"])
def test_batches_carry_masks_aligned_with_the_lesion(seg_data, tmp_path, source):
    root, records = seg_data
    masks = {
        "structures": {"lesion": "(?i)lesion|label_1"},
        "sources": ["csv" if source == "nifti" else source],
        "csv": str(root / "masks.csv"),
    }
    dm = DicomDataModule(
        root=root,
        work_dir=tmp_path,
        preprocessing=PREP,
        progress=False,
        masks=masks,
        loader={"batch_size": 2, "num_workers": 0},
        split={"val": 0.25},
    )
    dm.prepare_data()
    dm.setup("fit")
    assert dm.report["series_missing_structures"] == {}
    n = 0
    for batch in dm.predict_dataloader():
        batch = dm.on_after_batch_transfer(batch, 0)
        image, mask = batch["image"], batch["mask"]
        assert mask.dtype == torch.int64 and mask.shape == (image.shape[0], 1, 12, 24, 24)
        for i in range(image.shape[0]):
            inside = image[i][mask[i] == 1]
            outside = image[i][mask[i] == 0]
            assert inside.numel() > 20
            # lesion ~+300 HU -> (300+200)/600 = 0.83 after the window; soft tissue is lower
            assert float(inside.median()) > 0.75 > float(outside.median())
            n += 1
    assert n == len(records)


def test_channels_mode_missing_structure_and_foreground_patches(seg_data, tmp_path):
    root, _ = seg_data
    dm = DicomDataModule(
        root=root,
        work_dir=tmp_path,
        preprocessing=PREP,
        progress=False,
        masks={
            "structures": {"lesion": "(?i)lesion", "liver": "(?i)liver"},
            "mode": "channels",
            "require_all": False,
            "foreground_fraction": 1.0,
        },
        patches={"size": [4, 8, 8], "per_volume": 4},
        loader={"batch_size": 4, "num_workers": 0},
        split={"val": 0.25},
    )
    dm.prepare_data()
    dm.setup("fit")
    assert list(dm.report["series_missing_structures"].values()) == [["liver"]] * 4
    batches = list(dm.train_dataloader())
    for b in batches:
        assert b["mask"].shape[1:] == (2, 4, 8, 8)
        assert int(b["mask"][:, 1].sum()) == 0  # no liver anywhere
        per_patch = b["mask"][:, 0].flatten(1).sum(1)
        assert bool((per_patch > 0).all())  # every patch centred on lesion voxels
    strict = DicomDataModule(
        root=root,
        work_dir=tmp_path,
        preprocessing=PREP,
        progress=False,
        masks={"structures": ["lesion", "liver"]},
        loader={"num_workers": 0},
    )
    with pytest.warns(LightningDicomWarning, match="4 series lack a required structure"):
        strict.setup("fit")
    assert len(strict.datasets["train"]) == 0 and len(strict.datasets["predict"]) == 4
