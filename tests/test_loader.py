"""ThreadedDataLoader: same batches as a plain DataLoader, errors surface, early exit stops the thread."""

from __future__ import annotations

import threading
import time

import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from lightning_dicom.data.loader import ThreadedDataLoader
from lightning_dicom.data.sampler import BatchDataset, ShardBatchSampler


class Squares(Dataset):
    def __init__(self, n: int, fail_at: int | None = None) -> None:
        self.n, self.fail_at = n, fail_at

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        if i == self.fail_at:
            raise ValueError(f"sample {i} is broken")
        return {"x": torch.tensor([i * i])}


def _loaders(n: int, **kw):
    ds = BatchDataset(Squares(n, **kw), torch.utils.data.default_collate, threads=3)
    sampler = ShardBatchSampler(n, 4, shuffle=True, seed=1)
    return (
        ThreadedDataLoader(ds, sampler=sampler, batch_size=None, prefetch=2),
        DataLoader(ds, sampler=sampler, batch_size=None),
    )


def test_same_batches_as_a_plain_dataloader():
    threaded, plain = _loaders(23)
    a = [b["x"].flatten().tolist() for b in threaded]
    b = [b["x"].flatten().tolist() for b in plain]
    assert a == b
    assert sorted(v for batch in a for v in batch) == [i * i for i in range(23)]
    assert len(threaded) == 6


def test_errors_reach_the_consumer():
    threaded, _ = _loaders(10, fail_at=7)
    with pytest.raises(ValueError, match="sample 7 is broken"):
        list(threaded)


def test_breaking_out_early_stops_the_prefetch_thread():
    threaded, _ = _loaders(200)
    it = iter(threaded)
    next(it)
    it.close()
    deadline = time.time() + 5
    while any(t.name == "lightning_dicom-prefetch" for t in threading.enumerate()) and time.time() < deadline:
        time.sleep(0.05)
    assert not any(t.name == "lightning_dicom-prefetch" for t in threading.enumerate())


class Half(Dataset):
    def __len__(self) -> int:
        return 4

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"image": torch.full((1, 2, 2, 2), float(i), dtype=torch.float16)}


@pytest.mark.parametrize(("dtype", "expected"), [(None, torch.float16), (torch.float32, torch.float32)])
def test_batches_keep_float16_for_accelerators_or_are_cast_in_the_threads(dtype, expected):
    ds = BatchDataset(Half(), torch.utils.data.default_collate, threads=2, image_dtype=dtype)
    batch = ds[[0, 1, 2]]
    assert batch["image"].dtype == expected
    assert batch["image"].flatten(1)[:, 0].tolist() == [0.0, 1.0, 2.0]


def test_a_batch_of_one_equals_default_collate_without_copying_the_image():
    from torch.utils.data import default_collate

    from lightning_dicom.data.dataset import collate

    sample = {
        "image": torch.rand(1, 3, 4, 5),
        "label": torch.tensor(1),
        "meta": {
            "series_id": "1.2.3",
            "spacing": torch.tensor([1.0, 1.0, 2.0], dtype=torch.float64),
            "index": 7,
        },
    }
    ours, ref = collate([sample]), default_collate([sample])
    assert ours["image"].data_ptr() == sample["image"].data_ptr()
    assert torch.equal(ours["image"], ref["image"]) and ours["image"].shape == (1, 1, 3, 4, 5)
    assert torch.equal(ours["label"], ref["label"])
    assert ours["meta"]["series_id"] == ref["meta"]["series_id"] == ["1.2.3"]
    assert torch.equal(ours["meta"]["index"], ref["meta"]["index"])
    assert torch.equal(ours["meta"]["spacing"], ref["meta"]["spacing"])


def test_memory_maps_are_reused_bounded_and_not_pickled(tmp_path):
    import pickle

    import numpy as np

    from lightning_dicom.data.dataset import CachedVolumeDataset

    paths, metas = [], []
    for i in range(5):
        p = tmp_path / f"v{i}.npy"
        np.save(p, np.full((1, 2, 3, 4), i, np.float16))
        paths.append(str(p))
        metas.append(
            {
                "series_id": f"1.{i}",
                "spacing": [1, 1, 1],
                "origin": [0, 0, 0],
                "direction": [1, 0, 0, 0, 1, 0, 0, 0, 1],
                "shape": [1, 2, 3, 4],
            }
        )
    ds = CachedVolumeDataset(paths, metas)
    ds.max_open_maps = 2
    assert ds.volume(0) is ds.volume(0)  # reused while open
    for i in range(5):
        assert float(ds[i]["image"].max()) == i
    assert len(ds._maps) == 2 and list(ds._maps) == paths[3:]
    clone = pickle.loads(pickle.dumps(ds))  # DataLoader workers get a dataset without open maps
    assert len(clone._maps) == 0 and float(clone[1]["image"].max()) == 1.0
