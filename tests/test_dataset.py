"""Tests for lightning_dicom.data.dataset: cached volumes, random patches, uncached series, collate."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from torch.utils.data import DataLoader

from lightning_dicom.config import PreprocessingConfig
from lightning_dicom.data.cache import VolumeCache
from lightning_dicom.data.dataset import CachedVolumeDataset, PatchDataset, SeriesDataset, collate
from lightning_dicom.data.labels import read_labels
from lightning_dicom.data.preprocess import preprocess
from lightning_dicom.demo.synthetic import SyntheticSeries, direction_from_orientation, write_dataset
from lightning_dicom.dicom.index import DicomIndex, SeriesRecord
from lightning_dicom.dicom.series import read_series
from lightning_dicom.errors import ConfigError, LightningDicomError, SeriesError

PREP = PreprocessingConfig(window=(-1000, 400), size=(8, 16, 16))


def index(root: Path) -> list[SeriesRecord]:
    with DicomIndex([root]) as idx:
        idx.scan(workers=1)
        return idx.series()


@pytest.fixture(scope="module")
def cached(synthetic_dataset: tuple[Path, list[SyntheticSeries]], tmp_path_factory: pytest.TempPathFactory):
    """(series, volumes dataset, labels) over a cache of the shared synthetic dataset."""
    root, _ = synthetic_dataset
    series = index(root)
    cache = VolumeCache(tmp_path_factory.mktemp("cache"), PREP)
    assert cache.build(series, workers=1)["ok"] == 6
    table = read_labels(root / "labels.csv")
    labels = [table.lookup(s) for s in series]
    paths = [cache.paths(s)[0] for s in series]
    metas = [json.loads(cache.paths(s)[1].read_text()) for s in series]
    return series, CachedVolumeDataset(paths, metas, labels), labels


def world(origin, direction, spacing, index_zyx) -> np.ndarray:
    d = np.asarray(direction, dtype=float).reshape(3, 3)
    return np.asarray(origin, float) + d @ (np.asarray(index_zyx[::-1], float) * np.asarray(spacing, float))


def test_cached_volume_sample(cached, synthetic_dataset) -> None:
    series, volumes, labels = cached
    truth = {s.series_uid: s.label for s in synthetic_dataset[1]}
    assert len(volumes) == 6
    for i, rec in enumerate(series):
        sample = volumes[i]
        assert set(sample) == {"image", "meta", "label"}
        image = sample["image"]
        assert isinstance(image, torch.Tensor)
        assert image.dtype == torch.float16
        assert tuple(image.shape) == (1, 8, 16, 16)
        np.testing.assert_array_equal(image.numpy(), np.load(volumes.paths[i]))
        expected = preprocess(read_series(rec), PREP)[0].astype(np.float16)
        np.testing.assert_array_equal(image.numpy(), expected)
        meta = sample["meta"]
        side = json.loads(Path(str(volumes.paths[i])).with_suffix(".json").read_text())
        assert meta["series_id"] == rec.series_id
        assert meta["index"] == i
        for k, n in (("spacing", 3), ("origin", 3), ("direction", 9)):
            assert meta[k].dtype == torch.float64
            assert tuple(meta[k].shape) == (n,)
            np.testing.assert_allclose(meta[k].numpy(), side[k])
        label = sample["label"]
        assert label.dtype == torch.int64
        assert label.shape == ()
        assert int(label) == truth[rec.series_uid]
        image[0, 0, 0, 0] = 123.0  # the sample is a copy, not a view of the cache
    assert float(volumes[0]["image"][0, 0, 0, 0]) != 123.0


def test_shared_memory_volumes(cached) -> None:
    series, volumes, labels = cached
    metas = [json.loads(Path(str(p)).with_suffix(".json").read_text()) for p in volumes.paths]
    shared = [torch.from_numpy(np.load(p)).share_memory_() for p in volumes.paths]
    in_ram = CachedVolumeDataset(list(volumes.paths), metas, None, shared)
    sample = in_ram[2]
    assert "label" not in sample
    assert torch.equal(sample["image"], volumes[2]["image"])
    sample["image"].fill_(7)
    assert not torch.equal(shared[2], sample["image"])


def test_loader_batches_with_collate(cached) -> None:
    _, volumes, labels = cached
    batch = next(iter(DataLoader(volumes, batch_size=3, collate_fn=collate)))
    assert tuple(batch["image"].shape) == (3, 1, 8, 16, 16)
    assert batch["label"].tolist() == [int(x) for x in labels[:3]]
    assert batch["meta"]["series_id"] == [str(s) for s in volumes.meta.series_id[:3]]
    assert tuple(batch["meta"]["origin"].shape) == (3, 3)


def test_patches_are_regions_of_the_volume(cached) -> None:
    series, volumes, _ = cached
    patches = PatchDataset(volumes, (4, 8, 6), per_volume=5)
    assert len(patches) == 30
    starts = set()
    for i in range(len(patches)):
        p = patches[i]
        v = i // 5
        assert tuple(p["image"].shape) == (1, 4, 8, 6)
        assert p["image"].dtype == torch.float16
        assert p["meta"]["series_id"] == series[v].series_id
        assert p["meta"]["index"] == v
        z, y, x = (int(a) for a in p["meta"]["patch_start"])
        assert 0 <= z <= 4
        assert 0 <= y <= 8
        assert 0 <= x <= 10
        vol = np.load(volumes.paths[v])
        np.testing.assert_array_equal(p["image"].numpy(), vol[:, z : z + 4, y : y + 8, x : x + 6])
        vmeta = volumes[v]["meta"]
        expected = world(vmeta["origin"], vmeta["direction"], vmeta["spacing"], (z, y, x))
        np.testing.assert_allclose(p["meta"]["origin"].numpy(), expected, atol=1e-9)
        assert int(p["label"]) == int(volumes[v]["label"])
        starts.add((z, y, x))
    assert len(starts) > 10  # random positions, not one fixed crop


def test_patch_starts_are_uniform_over_every_position_ends_included(cached) -> None:
    """Each axis's start is uniform over 0..n-s (both ends reachable); an axis no larger than the patch
    always starts at 0."""
    _, volumes, _ = cached  # volumes of 8 x 16 x 16 (z-y-x)
    patches = PatchDataset(volumes, (8, 13, 6), per_volume=1)
    with torch.random.fork_rng():
        torch.manual_seed(7)
        starts = np.array([patches._start(0) for _ in range(4400)])
    assert set(starts[:, 0].tolist()) == {0}
    for axis, n in ((1, 16 - 13 + 1), (2, 16 - 6 + 1)):
        counts = np.bincount(starts[:, axis], minlength=n)
        assert len(counts) == n  # nothing beyond the last start that fits
        expected = len(starts) / n
        chi2 = float(((counts - expected) ** 2 / expected).sum())
        assert chi2 < 40, (axis, counts)  # p < 1e-5 for the 3 and 10 degrees of freedom here


def test_patches_reproducible_for_a_torch_seed(cached) -> None:
    _, volumes, _ = cached

    def draw() -> list[tuple[int, ...]]:
        ds = PatchDataset(volumes, (4, 8, 8), per_volume=2)
        return [tuple(ds[i]["meta"]["patch_start"].tolist()) for i in range(len(ds))]

    with torch.random.fork_rng():
        torch.manual_seed(123)
        a = draw()
        torch.manual_seed(123)
        assert draw() == a
        torch.manual_seed(124)
        assert draw() != a


def test_volume_smaller_than_patch_is_padded(cached) -> None:
    _, volumes, _ = cached
    patches = PatchDataset(volumes, (10, 8, 20), per_volume=1)  # volume is 8 x 16 x 16
    for v in range(3):
        p = patches[v]
        img = p["image"].numpy()
        assert img.shape == (1, 10, 8, 20)
        z, y, x = (int(a) for a in p["meta"]["patch_start"])
        assert (z, x) == (0, 0)
        assert 0 <= y <= 8
        vol = np.load(volumes.paths[v])
        region = vol[:, :, y : y + 8, :]
        np.testing.assert_array_equal(img[:, :8, :, :16], region)
        assert np.all(img[:, 8:] == region.min())
        assert np.all(img[:, :, :, 16:] == region.min())
        np.testing.assert_allclose(
            p["meta"]["origin"].numpy(),
            world(
                volumes[v]["meta"]["origin"],
                volumes[v]["meta"]["direction"],
                volumes[v]["meta"]["spacing"],
                (0, y, 0),
            ),
            atol=1e-9,
        )


def test_patch_origin_with_oblique_direction(tmp_path: Path) -> None:
    """A hand-written entry whose geometry is oblique: the patch origin is a world point of the volume."""
    vol = np.arange(6 * 7 * 8, dtype=np.float32).reshape(1, 6, 7, 8)
    npy = tmp_path / "vol.npy"
    np.save(npy, vol, allow_pickle=False)
    direction = direction_from_orientation("coronal", 30.0)
    meta = {
        "series_id": "1.2.3",
        "spacing": [0.7, 1.3, 2.1],
        "origin": [11.0, -7.5, 42.0],
        "direction": list(direction),
        "shape": [1, 6, 7, 8],
    }
    img = sitk.GetImageFromArray(vol[0])
    img.SetSpacing(meta["spacing"])
    img.SetOrigin(meta["origin"])
    img.SetDirection(direction)
    patches = PatchDataset(CachedVolumeDataset([npy], [meta]), (3, 3, 3), per_volume=20)
    for i in range(20):
        p = patches[i]
        start = [int(a) for a in p["meta"]["patch_start"]]
        assert float(p["image"][0, 0, 0, 0]) == vol[(0, *start)]
        expected = img.TransformIndexToPhysicalPoint(start[::-1])
        np.testing.assert_allclose(p["meta"]["origin"].numpy(), expected, atol=1e-9)
        np.testing.assert_allclose(p["meta"]["direction"].numpy(), direction)


def test_patch_workers_draw_different_positions(cached) -> None:
    """A parent that drew a patch before forking must not hand every worker the same random stream."""
    _, volumes, _ = cached
    patches = PatchDataset(volumes, (2, 4, 4), per_volume=8)
    patches[0]  # the parent draws first (e.g. a sanity check), then workers fork
    loader = DataLoader(
        patches, batch_size=None, num_workers=2, shuffle=False, multiprocessing_context="fork"
    )
    starts = [tuple(s["meta"]["patch_start"].tolist()) for _, s in zip(range(16), loader, strict=False)]
    worker0, worker1 = starts[0::2], starts[1::2]  # round-robin: worker k gets samples k, k+2, ...
    assert worker0 != worker1


def test_collate_rejects_mixed_shapes(cached) -> None:
    _, volumes, _ = cached
    a = volumes[0]
    b = {**volumes[1], "image": volumes[1]["image"][:, :7]}
    with pytest.raises(ConfigError) as info:
        collate([a, b])
    msg = str(info.value)
    assert "differ in shape" in msg
    assert "(1, 7, 16, 16)" in msg
    assert "(1, 8, 16, 16)" in msg
    assert "preprocessing.size" in msg
    assert "batch_size 1" in msg
    assert tuple(collate([a, volumes[1]])["image"].shape) == (2, 1, 8, 16, 16)


@pytest.fixture
def series_on_disk(tmp_path: Path) -> tuple[list[SeriesRecord], list[np.ndarray]]:
    root = tmp_path / "dicom"
    written = write_dataset(root, n_patients=3, shape_zyx=(6, 10, 10), spacing=(1.0, 1.0, 2.0), seed=4)
    series = index(root)
    table = read_labels(root / "labels.csv")
    truth = {s.series_uid: s.label for s in written}
    assert [int(table.lookup(s)) for s in series] == [truth[s.series_uid] for s in series]
    return series, [table.lookup(s) for s in series]


def test_series_dataset_reads_and_preprocesses(series_on_disk) -> None:
    series, labels = series_on_disk
    prep = PreprocessingConfig(spacing=(2.0, 2.0, 2.0), size=(4, 4, 4))
    ds = SeriesDataset(series, prep, labels)
    s = ds[1]
    assert s["image"].dtype == torch.float32
    assert tuple(s["image"].shape) == (1, 4, 4, 4)
    np.testing.assert_array_equal(s["image"].numpy(), preprocess(read_series(series[1]), prep)[0])
    assert s["meta"]["series_id"] == series[1].series_id
    assert s["meta"]["index"] == 1
    assert int(s["label"]) == int(labels[1])


def test_series_dataset_skip_replaces_broken_series(series_on_disk, caplog: pytest.LogCaptureFixture) -> None:
    series, labels = series_on_disk
    for f in series[1].files:
        os.remove(f)
    ds = SeriesDataset(series, PREP, labels, on_error="skip")
    with caplog.at_level(logging.WARNING, logger="lightning_dicom.data.dataset"):
        s = ds[1]
    assert s["meta"]["series_id"] == series[2].series_id
    assert s["meta"]["index"] == 2
    assert int(s["label"]) == int(labels[2])
    np.testing.assert_array_equal(s["image"].numpy(), preprocess(read_series(series[2]), PREP)[0])
    assert any(series[1].series_id in r.getMessage() for r in caplog.records)
    assert ds[0]["meta"]["series_id"] == series[0].series_id

    strict = SeriesDataset(series, PREP, labels, on_error="raise")
    with pytest.raises(SeriesError) as info:
        strict[1]
    assert series[1].series_uid in str(info.value)

    for rec in (series[0], series[2]):
        for f in rec.files:
            os.remove(f)
    with pytest.raises(LightningDicomError, match="no series in this dataset could be read"):
        ds[0]
