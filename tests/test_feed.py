"""The feed path: batches assembled in place, the device-resident set (on device="cpu"), fixed DDP shards,
and the pinned ring's buffer reuse order (with a transfer whose copies land only when their event is waited)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from lightning_dicom.config import CacheConfig
from lightning_dicom.data.assemble import AssembledBatches, BatchAssembler, HostBufferPool
from lightning_dicom.data.dataset import CachedVolumeDataset, PatchDataset, collate
from lightning_dicom.data.device_cache import (
    DeviceVolumeCache,
    FixedShardBatchSampler,
    ResidentBatches,
    plan_residency,
    volume_bytes,
)
from lightning_dicom.data.device_feed import DeviceFeedLoader
from lightning_dicom.data.feeding import _resident, feed_loader
from lightning_dicom.data.loader import ThreadedDataLoader
from lightning_dicom.data.sampler import ShardBatchSampler
from lightning_dicom.errors import ConfigError

SHAPE = (1, 6, 10, 12)  # C, z, y, x


def make_volumes(
    tmp_path: Path, n: int = 6, shapes: list[tuple[int, ...]] | None = None, labels: bool = True
) -> CachedVolumeDataset:
    """n float16 volumes with uint8 masks, foreground lists and oblique geometry, as cache entries (.npy)."""
    rng = np.random.default_rng(0)
    paths, masks, metas, fgs = [], [], [], []
    theta = 0.3
    direction = [np.cos(theta), -np.sin(theta), 0, np.sin(theta), np.cos(theta), 0, 0, 0, 1]
    n = len(shapes) if shapes else n
    for i in range(n):
        shape = shapes[i] if shapes else SHAPE
        img = rng.normal(size=shape).astype(np.float16)
        mask = (rng.random(size=(1, *shape[1:])) < 0.05).astype(np.uint8)
        np.save(tmp_path / f"v{i}.npy", img)
        np.save(tmp_path / f"m{i}.npy", mask)
        paths.append(tmp_path / f"v{i}.npy")
        masks.append(tmp_path / f"m{i}.npy")
        fgs.append(np.argwhere(mask[0]).astype(np.int32))
        metas.append(
            {
                "series_id": f"s{i}",
                "spacing": [0.7, 0.8, 1.5 + i],
                "origin": [-10.0 * i, 5.0, 2.0],
                "direction": direction,
                "shape": list(shape),
            }
        )
    lab = [np.int64(i % 3) for i in range(n)] if labels else None
    return CachedVolumeDataset(paths, metas, lab, None, masks, fgs)


def assert_same(a: Any, b: Any) -> None:
    if isinstance(a, dict):
        assert a.keys() == b.keys()
        for k in a:
            assert_same(a[k], b[k])
    elif isinstance(a, torch.Tensor):
        assert a.dtype == b.dtype and a.shape == b.shape
        torch.testing.assert_close(a.cpu(), b.cpu(), rtol=0, atol=1e-9, equal_nan=True)
    else:
        assert a == b


@pytest.mark.parametrize("cast", [None, torch.float32])
def test_assembled_volumes_equal_the_collated_samples(tmp_path, cast):
    vols = make_volumes(tmp_path)
    vols.image_dtype = cast
    indices = [4, 1, 3]
    assert_same(BatchAssembler(vols)(indices), collate([vols[i] for i in indices]))
    assert_same(BatchAssembler(vols)([2]), collate([vols[2]]))


def test_assembled_patches_equal_the_collated_samples_for_the_same_seed(tmp_path):
    shapes = [SHAPE] * 5 + [(1, 3, 10, 12)]  # the last volume is thinner than the patch: padded
    vols = make_volumes(tmp_path, shapes=shapes)
    patches = PatchDataset(vols, (4, 8, 8), per_volume=3, foreground_fraction=0.5)
    indices = [17, 0, 5, 16, 9]
    torch.manual_seed(123)
    patches._rng = None
    expected = collate([patches[i] for i in indices])
    torch.manual_seed(123)
    patches._rng = None
    got = BatchAssembler(vols, patches)(indices)
    assert_same(got, expected)
    assert got["image"].shape == (5, 1, 4, 8, 8)
    assert got["meta"]["index"].tolist() == [5, 0, 1, 5, 3]


def test_assembly_into_a_larger_reused_buffer_and_shape_errors(tmp_path):
    vols = make_volumes(tmp_path, shapes=[SHAPE, SHAPE, (1, 6, 10, 10)])
    asm = BatchAssembler(vols)
    buf = asm.allocate([0, 1])
    small = asm([1], out=buf)
    assert small["image"].shape == (1, *SHAPE)
    assert small["image"].data_ptr() == buf["image"].data_ptr()
    torch.testing.assert_close(small["image"][0], torch.from_numpy(np.load(vols.paths[1])))
    with pytest.raises(ConfigError, match="differ in shape"):
        asm([0, 2])


def test_device_crops_equal_host_crops_for_the_same_starts(tmp_path):
    vols = make_volumes(tmp_path)
    dev = DeviceVolumeCache(vols, [1, 3, 4], "cpu", patch=(4, 8, 8))
    starts = torch.tensor([[0, 0, 0], [2, 2, 4], [1, 1, 3]])
    local = torch.tensor([0, 2, 1])
    img, mask = dev.crop(local, starts), dev.crop(local, starts, masks=True)
    for j, (v, st) in enumerate(zip([1, 4, 3], starts.tolist(), strict=True)):
        sl = (slice(None), *(slice(a, a + s) for a, s in zip(st, (4, 8, 8), strict=True)))
        assert torch.equal(img[j], torch.from_numpy(np.load(vols.paths[v])[sl]))
        assert torch.equal(mask[j], torch.from_numpy(np.load(vols.mask_paths[v])[sl]))
    assert mask.dtype == torch.uint8
    assert torch.equal(dev.whole(torch.tensor([2]))[0], torch.from_numpy(np.load(vols.paths[4])))
    meta = dev.meta(local, starts)
    host = BatchAssembler(vols).volumes.meta
    assert meta["series_id"] == ["s1", "s4", "s3"]
    assert meta["index"].tolist() == [1, 4, 3]
    # origin of the patch: origin + direction @ (start_xyz * spacing)
    d = host.direction[4].reshape(3, 3)
    expected = host.origin[4] + d @ (np.array([4, 2, 2]) * host.spacing[4])
    np.testing.assert_allclose(meta["origin"][1].numpy(), expected)


def test_device_patch_starts_uniform_and_foreground_weighted(tmp_path):
    vols = make_volumes(tmp_path, n=2)
    dev = DeviceVolumeCache(vols, [0, 1], "cpu", patch=(4, 8, 8))
    g = torch.Generator().manual_seed(0)
    local = torch.zeros(4000, dtype=torch.int64)
    s = dev.starts(local, 0.0, g)
    hi = torch.tensor([2, 2, 4])
    assert (s >= 0).all() and (s <= hi).all()
    for axis in range(3):  # every start drawn, about equally often
        counts = torch.bincount(s[:, axis], minlength=int(hi[axis]) + 1).float()
        assert counts.min() > 0.8 * counts.mean()
    s = dev.starts(local, 1.0, g)
    fg = set(map(tuple, vols.foreground(0).tolist()))

    def holds_fg(st: list[int]) -> bool:
        return any(all(a <= c < a + n for c, a, n in zip(p, st, (4, 8, 8), strict=True)) for p in fg)

    assert all(holds_fg(st) for st in s[:300].tolist())
    half = dev.starts(local, 0.5, g)
    centred = torch.tensor([holds_fg(st) for st in half[:1000].tolist()]).float().mean()
    uniform = torch.tensor([holds_fg(st) for st in dev.starts(local[:1000], 0.0, g).tolist()]).float().mean()
    assert float(centred) == pytest.approx(0.5 + 0.5 * float(uniform), abs=0.06)


def test_plan_residency_whole_shard_or_none():
    nbytes = np.full(10, 100)
    assert plan_residency(nbytes, 2, 0, 2000, 0.5)[0] == "whole"
    mode, keep0 = plan_residency(nbytes, 2, 0, 1000, 0.5, seed=3)
    _, keep1 = plan_residency(nbytes, 2, 1, 1000, 0.5, seed=3)
    assert mode == "shard" and sorted([*keep0, *keep1]) == list(range(10)) and len(keep0) == 5
    assert plan_residency(nbytes, 1, 0, 1000, 0.5)[0] == "none"
    assert plan_residency(nbytes, 2, 0, 100, 0.5)[0] == "none"
    assert plan_residency(nbytes[:3], 4, 0, 200, 0.5)[0] == "none"  # rank 3 would hold no volume


def test_fixed_shards_on_two_ranks_see_every_sample_once_per_epoch():
    nbytes = np.full(7, 100)  # 7 volumes x 3 patches over 2 ranks: shards of 4 and 3 volumes
    per_volume = 3
    keeps = [plan_residency(nbytes, 2, r, 800, 0.5, seed=1)[1] for r in range(2)]
    sizes = [len(k) * per_volume for k in keeps]
    samplers = [FixedShardBatchSampler(sizes, 4, rank=r, shuffle=True, seed=1) for r in range(2)]
    orders = []
    for epoch in range(3):
        seen = []
        for r, s in enumerate(samplers):
            s.set_epoch(epoch)
            batches = list(s)
            assert len(batches) == len(s) == 3  # ceil(12 / 4) on both ranks
            assert all(1 <= len(b) <= 4 for b in batches)
            seen += [(int(keeps[r][i // per_volume]), i % per_volume) for b in batches for i in b]
            orders.append(batches)
        assert sorted(seen) == sorted((v, p) for v in range(7) for p in range(per_volume))
    assert orders[0] != orders[2]  # reshuffled within the shard each epoch


def test_resident_loader_on_cpu_serves_the_whole_set_with_masks_and_labels(tmp_path):
    vols = make_volumes(tmp_path)
    patches = PatchDataset(vols, (4, 8, 8), per_volume=2, foreground_fraction=0.5)
    cfg = CacheConfig(device="auto", device_budget=0.5)
    dev = torch.device("cpu")
    loader = _resident(vols, patches, cfg, dev, 4, 1, 0, True, 0, free_bytes=10**9)
    assert isinstance(loader.dataset, ResidentBatches)
    batches = list(loader)
    assert len(batches) == 3
    assert sorted(i for b in batches for i in b["meta"]["index"].tolist()) == sorted(list(range(6)) * 2)
    b = batches[0]
    assert b["image"].shape == (4, 1, 4, 8, 8) and b["image"].dtype == torch.float16
    assert b["mask"].dtype == torch.uint8 and b["label"].shape == (4,)
    assert volume_bytes(vols, (4, 8, 8)).tolist() == [6 * 10 * 12 * 3] * 6
    assert _resident(vols, patches, cfg, dev, 4, 1, 0, True, 0, free_bytes=1000) is None
    with pytest.raises(ConfigError, match="device_budget"):
        _resident(vols, patches, CacheConfig(device="cuda"), dev, 4, 1, 0, True, 0, free_bytes=1000)
    with pytest.raises(ConfigError, match="CUDA accelerator"):
        feed_loader(
            patches, cache=CacheConfig(device="cuda"), device=dev, train=True, batch_size=2, threads=2,
            world=1, rank=0, shuffle=True, seed=0,
        )  # fmt: skip


class LazyEvent:
    """A copy that reads its host buffer only when waited on (a worst case of an asynchronous copy)."""

    def __init__(self, log: list, slot: int, src: dict[str, torch.Tensor], dst: dict[str, torch.Tensor]):
        self.log, self.slot, self.src, self.dst, self.done = log, slot, src, dst, False

    def synchronize(self) -> None:
        if not self.done:
            for k, v in self.src.items():
                self.dst[k].copy_(v)
            self.done = True
            self.log.append(("done", self.slot, -1))


class FakeTransfer:
    pin = False

    def __init__(self, log: list) -> None:
        self.log, self.events = log, {}

    def copy(self, tensors: dict[str, torch.Tensor], slot: int):
        out = {k: torch.full_like(v, -1) for k, v in tensors.items()}
        event = LazyEvent(self.log, slot, tensors, out)
        self.events[id(out["image"])] = event
        return out, event

    def ready(self, tensors: dict[str, torch.Tensor], event: LazyEvent) -> None:
        self.log.append(("ready", event.slot, -1))  # a CUDA compute stream would wait here, the host does not


@pytest.mark.parametrize(("threads", "ahead"), [(1, 1), (2, 2)])
def test_a_pinned_slot_is_never_overwritten_while_its_copy_is_in_flight(tmp_path, threads, ahead):
    vols = make_volumes(tmp_path, n=9)
    log: list = []
    transfer = FakeTransfer(log)
    sampler = ShardBatchSampler(9, 1, shuffle=True, seed=4)
    loader = DeviceFeedLoader(
        AssembledBatches(BatchAssembler(vols)),
        sampler=sampler,
        batch_size=None,
        threads=threads,
        prefetch=1,
        transfer=transfer,
        ahead=ahead,
    )
    loader.log = log
    for epoch in range(2):
        sampler.set_epoch(epoch)
        order = [b[0] for b in sampler]
        received = list(zip(order, loader, strict=True))  # the host runs ahead; no copy has been waited on
        for i, batch in received:
            transfer.events[id(batch["image"])].synchronize()  # the copy lands now, reading its slot now
            assert torch.equal(batch["image"][0], torch.from_numpy(np.load(vols.paths[i])))
            assert torch.equal(batch["mask"][0], torch.from_numpy(np.load(vols.mask_paths[i])))
            assert batch["meta"]["index"].tolist() == [i]
    size = loader.ring_size()
    assert size == threads + ahead + 1 < 9  # slots were reused
    copied: dict[int, bool] = {}
    for kind, slot, _ in log:  # a slot is written only once its previous copy has completed
        if kind == "write":
            assert copied.get(slot, True), f"slot {slot} written while its copy was in flight"
        elif kind == "copy":
            copied[slot] = False
        elif kind == "done":
            copied[slot] = True
    assert sum(k == "write" for k, _, _ in log) == 18


def test_a_given_sampler_is_kept_by_the_host_and_resident_paths(tmp_path):
    from lightning_dicom.data.balanced import BalancedBatchSampler

    vols = make_volumes(tmp_path)
    weights = np.array([1.0, 0, 0, 0, 0, 1.0])  # only volumes 0 and 5 are drawn
    sampler = BalancedBatchSampler(weights, 2, 8, seed=1)
    host = feed_loader(
        vols, cache=CacheConfig(), device=torch.device("cpu"), train=True, batch_size=2, threads=2,
        world=1, rank=0, shuffle=True, seed=0, sampler=sampler,
    )  # fmt: skip
    drawn = [i for b in host for i in b["meta"]["index"].tolist()]
    assert len(drawn) == 8 and set(drawn) <= {0, 5}
    assert host.dataset.assembler.volumes.image_dtype == torch.float32
    resident = _resident(vols, None, CacheConfig(), torch.device("cpu"), 2, 1, 0, True, 0, 10**9, sampler)
    assert resident.sampler is sampler
    drawn = [i for b in resident for i in b["meta"]["index"].tolist()]
    assert len(drawn) == 8 and set(drawn) <= {0, 5}
    # a shard-only resident set cannot serve a sampler over every volume: the pinned ring takes over
    sharded = BalancedBatchSampler(weights, 2, 8, num_replicas=2, rank=0, seed=1)
    nbytes = int(volume_bytes(vols).sum())
    assert (
        _resident(vols, None, CacheConfig(), torch.device("cpu"), 2, 2, 0, True, 0, nbytes, sharded) is None
    )


def test_subject_and_source_metadata_travel_on_every_path(tmp_path):
    vols = make_volumes(tmp_path, n=3)
    metas = []
    for i in range(3):
        m = {"series_id": f"study:{i}", "spacing": [1, 1, 2], "origin": [0, 0, i], "shape": list(SHAPE)}
        m["direction"] = [1, 0, 0, 0, 1, 0, 0, 0, 1]
        m["inputs"] = f"t1=1.2.{i}|t2=1.3.{i}"
        m["missing_inputs"] = ["t2"] if i == 1 else []
        m["source"] = {
            "spacing": [0.5, 0.5, 1],
            "origin": [1, 2, 3],
            "direction": m["direction"],
            "size": [9, 9, 9],
        }
        metas.append(m)
    vols = CachedVolumeDataset(
        vols.paths, metas, None, None, vols.mask_paths, [vols.foreground(i) for i in range(3)]
    )
    got = BatchAssembler(vols)([2, 1])
    assert_same(got, collate([vols[2], vols[1]]))
    assert got["meta"]["inputs"] == ["t1=1.2.2|t2=1.3.2", "t1=1.2.1|t2=1.3.1"]
    assert got["meta"]["missing_inputs"].tolist() == [[False, False], [False, True]]
    dev = DeviceVolumeCache(vols, [1, 2], "cpu", patch=(4, 8, 8))
    meta = dev.meta(torch.tensor([1, 0]), None)
    assert meta["inputs"] == got["meta"]["inputs"] and meta["index"].tolist() == [2, 1]
    assert meta["source_size"].tolist() == [[9, 9, 9]] * 2


def test_device_cache_of_volumes_of_different_shapes_pads_and_slices(tmp_path):
    vols = make_volumes(tmp_path, shapes=[SHAPE, (1, 3, 10, 12)])
    dev = DeviceVolumeCache(vols, [0, 1], "cpu", patch=(4, 8, 8))
    assert not dev.stacked and dev.shapes.tolist() == [[6, 10, 12], [4, 10, 12]]
    thin = torch.from_numpy(np.load(vols.paths[1]))
    crop = dev.crop(torch.tensor([1, 0]), torch.tensor([[0, 1, 2], [2, 2, 4]]))
    assert torch.equal(crop[0, :, :3], thin[:, :, 1:9, 2:10])
    assert torch.equal(crop[0, :, 3], torch.full((1, 8, 8), float(thin.min()), dtype=torch.float16)[:, :, :])
    assert torch.equal(
        dev.crop(torch.tensor([1]), torch.tensor([[0, 0, 0]]), masks=True)[0, :, 3],
        torch.zeros(1, 8, 8, dtype=torch.uint8),
    )
    with pytest.raises(ConfigError, match="differ in shape"):
        DeviceVolumeCache(vols, [0, 1], "cpu").whole(torch.tensor([0, 1]))


def test_host_buffer_pool_reuses_a_buffer_only_once_nothing_references_it():
    pool = HostBufferPool(limit=3)
    a = pool.take((2, 3), torch.float32)
    ptr = a.data_ptr()
    view = a[1]  # a view alone keeps the buffer busy
    del a
    b = pool.take((2, 3), torch.float32)
    assert b.data_ptr() != ptr
    storage = view.untyped_storage()  # so does a storage
    del view
    assert pool.take((2, 3), torch.float32).data_ptr() not in (ptr, b.data_ptr())
    del storage
    assert pool.take((2, 3), torch.float32).data_ptr() == ptr  # free again: reused
    assert pool.take((3, 2), torch.float32).data_ptr() != ptr  # another shape: not that buffer
    busy = [pool.take((2, 3), torch.float32) for _ in range(4)]
    assert len({t.data_ptr() for t in busy}) == 4
    assert len(pool) == 3 + 1 and pool.allocated == 6  # the limit is per shape and dtype
    kept = [pool.take((2, 3), torch.uint8) for _ in range(2)]
    assert len(pool) == 3 + 1 + 2 and all(t.dtype == torch.uint8 for t in kept)
    pool.clear()
    assert len(pool) == 0


@pytest.mark.parametrize("keep", [False, True])
def test_threads_loader_reuses_buffers_and_never_overwrites_a_batch_still_held(tmp_path, keep):
    """Batches kept by the caller (keep=True) must keep their values while later batches are built; batches
    dropped at once are built in the same few buffers, pass after pass."""
    vols = make_volumes(tmp_path, n=9)
    volumes = {i: torch.from_numpy(np.load(vols.paths[i])) for i in range(9)}
    ds = AssembledBatches(BatchAssembler(vols))
    sampler = ShardBatchSampler(9, 1, shuffle=True, seed=4)
    loader = ThreadedDataLoader(ds, sampler=sampler, batch_size=None, threads=2, prefetch=2)
    held, ptrs = [], set()
    for epoch in range(3):
        sampler.set_epoch(epoch)
        for batch in loader:
            (v,) = batch["meta"]["index"].tolist()
            torch.testing.assert_close(batch["image"][0], volumes[v], rtol=0, atol=0)
            ptrs.add(batch["image"].data_ptr())
            if keep:
                held.append((v, batch))
            del batch
    for v, batch in held:
        torch.testing.assert_close(batch["image"][0], volumes[v], rtol=0, atol=0)
    if keep:
        assert len(ptrs) == 27  # every batch in its own buffer
        assert ds.pool.allocated == 2 * 27  # an image and a mask buffer per batch
        assert len(ds.pool) == 2 * ds.pool.limit and ds.pool.limit == 2 * 2 + 3
    else:  # the prefetch depth (4) and the batches around the one in hand, reused over 27 batches (a
        assert ds.pool.allocated <= 2 * 9  # loader thread that lets go of a batch late costs one allocation)


def test_the_pinned_ring_takes_whole_volumes_of_different_shapes(tmp_path):
    """A slot sized by its first volume grows for a larger one (validation on CUDA: whole volumes of
    different shapes with batch 1; the slot's buffers used to be too small)."""
    shapes = [SHAPE, (1, 8, 12, 14), (1, 3, 10, 12), (1, 9, 12, 14), SHAPE]
    vols = make_volumes(tmp_path, shapes=shapes)
    log: list = []
    transfer = FakeTransfer(log)
    loader = DeviceFeedLoader(
        AssembledBatches(BatchAssembler(vols)),
        sampler=ShardBatchSampler(len(shapes), 1),
        batch_size=None,
        threads=1,
        prefetch=1,
        transfer=transfer,
        ahead=1,
    )
    for _ in range(2):  # ring of 3 slots over 5 volumes: slots reused for larger and smaller volumes
        for i, batch in enumerate(loader):
            transfer.events[id(batch["image"])].synchronize()
            assert batch["image"].shape == (1, *shapes[i])
            assert torch.equal(batch["image"][0], torch.from_numpy(np.load(vols.paths[i])))
            assert torch.equal(batch["mask"][0], torch.from_numpy(np.load(vols.mask_paths[i])))


def test_a_new_epoch_of_the_pinned_ring_closes_an_abandoned_one(tmp_path):
    """Both epochs would write into the same slots: the abandoned one is stopped, not resumed later."""
    vols = make_volumes(tmp_path, n=6)
    transfer = FakeTransfer([])
    loader = DeviceFeedLoader(
        AssembledBatches(BatchAssembler(vols)),
        sampler=ShardBatchSampler(6, 1),
        batch_size=None,
        threads=2,
        prefetch=1,
        transfer=transfer,
    )
    first = iter(loader)
    next(first)  # e.g. Lightning's sanity check: two batches, then the iterator is left behind
    second = list(loader)
    assert len(second) == 6
    assert next(first, None) is None  # closed: it would hand out slots the second epoch rewrote
    for i, batch in enumerate(second):
        transfer.events[id(batch["image"])].synchronize()
        assert torch.equal(batch["image"][0], torch.from_numpy(np.load(vols.paths[i])))


def test_feed_loader_on_cuda_keeps_the_balanced_sampler_on_a_resident_set(tmp_path):
    """feed_loader's CUDA choices, run on a CPU with a host transfer: a resident training set draws
    with the given (balanced) sampler, and every rank plans with the agreed free memory."""
    from lightning_dicom.data.balanced import BalancedBatchSampler

    vols = make_volumes(tmp_path)
    sampler = BalancedBatchSampler(np.array([1.0, 0, 0, 0, 0, 1.0]), 2, 8, seed=1)
    kw: dict[str, Any] = dict(
        device=torch.device("cpu"), batch_size=2, threads=2, world=1, rank=0, shuffle=True, seed=0
    )
    loader = feed_loader(
        vols, cache=CacheConfig(), train=True, sampler=sampler, free_bytes=10**9,
        transfer=FakeTransfer([]), **kw,
    )  # fmt: skip
    assert isinstance(loader.dataset, ResidentBatches) and loader.sampler is sampler
    drawn = [i for b in loader for i in b["meta"]["index"].tolist()]
    assert len(drawn) == 8 and set(drawn) <= {0, 5}
    assert loader.dataset.cache.images.dtype == torch.float16  # stored dtype: cast on the device
    # another rank has less free memory: every rank falls back to the pinned ring alike
    ring = feed_loader(
        vols, cache=CacheConfig(), train=True, free_bytes=10**9, agree=lambda free: 1000,
        transfer=FakeTransfer([]), **kw,
    )  # fmt: skip
    assert isinstance(ring, DeviceFeedLoader)
    assert ring.dataset.assembler.volumes.image_dtype is None  # float16 and uint8 travel
    with pytest.raises(ConfigError, match="device_budget"):
        feed_loader(
            vols, cache=CacheConfig(device="cuda"), train=True, free_bytes=10**9, agree=lambda free: 1000,
            transfer=FakeTransfer([]), **kw,
        )  # fmt: skip


def test_feed_loader_on_a_non_cuda_accelerator_uses_host_threads(tmp_path):
    """MPS (or any accelerator but CUDA): no CUDA stream or memory query; batches in stored dtypes."""
    from lightning_dicom.data.loader import ThreadedDataLoader

    vols = make_volumes(tmp_path)
    patches = PatchDataset(vols, (4, 8, 8), per_volume=2)
    kw: dict[str, Any] = dict(batch_size=2, threads=2, world=1, rank=0, shuffle=True, seed=0)
    mps = torch.device("mps")
    loader = feed_loader(patches, cache=CacheConfig(), device=mps, train=True, **kw)
    assert type(loader) is ThreadedDataLoader
    batch = next(iter(loader))
    assert batch["image"].dtype == torch.float16 and batch["mask"].dtype == torch.uint8
    with pytest.raises(ConfigError, match="CUDA accelerator"):
        feed_loader(patches, cache=CacheConfig(device="cuda"), device=mps, train=True, **kw)
