"""ThreadedDataLoader: same batches as a plain DataLoader, errors surface, early exit stops the thread."""

from __future__ import annotations

import threading
import time

import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from lightning_dicom.loader import ThreadedDataLoader
from lightning_dicom.sampler import BatchDataset, ShardBatchSampler


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
    return (ThreadedDataLoader(ds, sampler=sampler, batch_size=None, prefetch=2),
            DataLoader(ds, sampler=sampler, batch_size=None))


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
