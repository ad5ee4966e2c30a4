"""Which loader feeds a cached dataset: device-resident, pinned ring + side stream, or host threads.

The rule (``cache.device`` and the trainer's device, training split only for residency):

=========================  ==========================================================================
trainer on                 training loader
=========================  ==========================================================================
CPU                        'threads' loader over :class:`~lightning_dicom.data.assemble.AssembledBatches`
                           (``cache.device: cuda`` is a ConfigError)
CUDA, ``device: auto``     resident (:mod:`~lightning_dicom.data.device_cache`) when the whole set, or
                           under DDP this rank's fixed shard, fits in ``device_budget`` of free memory;
                           else the pinned ring (:mod:`~lightning_dicom.data.device_feed`)
CUDA, ``device: cuda``     resident, or a ConfigError naming the bytes needed and the budget
CUDA, ``device: cpu``      the pinned ring
another accelerator (MPS)  'threads' loader, images and masks in their stored dtypes (cast on the
                           device); ``cache.device: cuda`` is a ConfigError
=========================  ==========================================================================

Validation, test and predict loaders never sit on the device: on CUDA they use the pinned ring.
``cache.in_memory`` keeps loading every split into shared RAM; a resident training set is uploaded from
those tensors (or from the memory maps) once per rank, so RAM holds no second copy beyond it.
Under DDP every rank must take the same path (a shard-resident rank runs a different number of batches
than a pinned-ring one): the DataModule passes ``agree``, the smallest free memory over the ranks.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import torch
from torch.utils.data import DataLoader

from lightning_dicom.config import CacheConfig
from lightning_dicom.data.assemble import AssembledBatches, BatchAssembler
from lightning_dicom.data.dataset import CachedVolumeDataset, PatchDataset
from lightning_dicom.data.device_cache import (
    DeviceVolumeCache,
    FixedShardBatchSampler,
    ResidentBatches,
    plan_residency,
    volume_bytes,
)
from lightning_dicom.data.device_feed import CudaTransfer, DeviceFeedLoader, Transfer
from lightning_dicom.data.loader import ThreadedDataLoader
from lightning_dicom.data.sampler import ShardBatchSampler
from lightning_dicom.errors import ConfigError

__all__ = ["check_cache_device", "feed_loader"]

log = logging.getLogger(__name__)

CACHE_DEVICE_OFF_CUDA = "cache.device 'cuda' needs a trainer on a CUDA accelerator (or use 'auto')"


def check_cache_device(cache: CacheConfig, device: torch.device) -> None:
    """Raise at once when ``cache.device: cuda`` meets a trainer off CUDA (the datamodule calls it in
    prepare_data and setup, before indexing and caching, with the trainer's root device).

    Raises:
        ConfigError: ``cache.device`` is 'cuda' (and the cache enabled) but ``device`` is not CUDA.
    """
    if cache.enabled and cache.device == "cuda" and device.type != "cuda":
        raise ConfigError(CACHE_DEVICE_OFF_CUDA)


def feed_loader(
    base: CachedVolumeDataset | PatchDataset,
    *,
    cache: CacheConfig,
    device: torch.device,
    train: bool,
    batch_size: int,
    threads: int,
    world: int,
    rank: int,
    shuffle: bool,
    seed: int,
    mask_dtype: torch.dtype | None = None,
    sampler: ShardBatchSampler | None = None,
    free_bytes: int | None = None,
    agree: Callable[[int], int] | None = None,
    transfer: Transfer | None = None,
) -> Any:
    """The loader for one split of cached data (see the module's table). ``mask_dtype``: masks' dtype in
    batches on a CPU (on an accelerator they travel as uint8); ``sampler``: one that replaces the
    exactly-once shard sampler (the 'balanced' sampler; global indices, so a set resident only as a shard falls
    back to the pinned ring); ``free_bytes`` overrides the device's free memory (tests); ``agree`` maps
    this rank's free bytes to the value every rank plans with (DDP: the minimum); ``transfer``: the pinned
    ring's copies (default :class:`CudaTransfer`; tests pass a host one, and ``device`` then counts as
    CUDA, so the CUDA choices run on a CPU).

    Raises:
        ConfigError: ``cache.device: cuda`` off CUDA, or a training set that does not fit its budget.
    """
    volumes = base.volumes if isinstance(base, PatchDataset) else base
    patches = base if isinstance(base, PatchDataset) else None
    cuda = device.type == "cuda" or transfer is not None
    if transfer is None:
        check_cache_device(cache, device)
    if train and cuda and cache.device != "cpu" and len(volumes):
        resident = _resident(
            volumes,
            patches,
            cache,
            device,
            batch_size,
            world,
            rank,
            shuffle,
            seed,
            free_bytes,
            given=sampler,
            agree=agree,
        )
        if resident is not None:
            return resident
    volumes.mask_dtype, volumes.image_dtype = None, None  # stored dtypes in transport; cast on the device
    if device.type == "cpu" and transfer is None:
        volumes.image_dtype = torch.float32  # copy + cast in one pass, in the loader's threads
        volumes.mask_dtype = mask_dtype
    dataset = AssembledBatches(BatchAssembler(volumes, patches))
    if sampler is None:
        sampler = ShardBatchSampler(
            len(dataset), batch_size, num_replicas=world, rank=rank, shuffle=shuffle, seed=seed
        )
    if cuda:
        return DeviceFeedLoader(
            dataset,
            sampler=sampler,
            batch_size=None,
            threads=threads,
            prefetch=2,
            transfer=transfer or CudaTransfer(device),
        )
    return ThreadedDataLoader(dataset, sampler=sampler, batch_size=None, threads=threads, prefetch=2)


def _resident(
    volumes: CachedVolumeDataset,
    patches: PatchDataset | None,
    cache: CacheConfig,
    device: torch.device,
    batch_size: int,
    world: int,
    rank: int,
    shuffle: bool,
    seed: int,
    free_bytes: int | None,
    given: ShardBatchSampler | None = None,
    agree: Callable[[int], int] | None = None,
) -> Any:
    size = patches.size if patches is not None else None
    nbytes = volume_bytes(volumes, size)
    if free_bytes is None:
        free_bytes = int(torch.cuda.mem_get_info(device)[0])
    if agree is not None:
        free_bytes = int(agree(free_bytes))
    mode, keep = plan_residency(nbytes, world, rank, free_bytes, cache.device_budget, seed)
    if mode == "shard" and given is not None and cache.device != "cuda":
        return None  # the given sampler draws from every volume: only a whole resident set can serve it
    if mode == "none" or (mode == "shard" and given is not None):
        if cache.device == "cuda":
            raise ConfigError(
                f"cache.device 'cuda': the training set needs {nbytes.sum() / 2**30:.1f} GiB, more than "
                f"cache.device_budget {cache.device_budget} of {free_bytes / 2**30:.1f} GiB free (raise the "
                "budget, or use 'auto' to fall back to pinned host batches)"
            )
        return None
    resident = DeviceVolumeCache(volumes, keep, device, size)
    per_volume = patches.per_volume if patches is not None else 1
    fraction = patches.foreground_fraction if patches is not None else 0.0
    generator = torch.Generator(device=device)
    generator.manual_seed(int(torch.initial_seed() % 2**63) + rank)
    dataset = ResidentBatches(resident, per_volume, fraction, generator)
    sampler: ShardBatchSampler
    if given is not None:
        sampler = given
    elif mode == "whole":
        sampler = ShardBatchSampler(
            len(dataset), batch_size, num_replicas=world, rank=rank, shuffle=shuffle, seed=seed
        )
    else:
        sizes = [
            len(plan_residency(nbytes, world, r, free_bytes, cache.device_budget, seed)[1])
            for r in range(world)
        ]
        sampler = FixedShardBatchSampler(
            [s * per_volume for s in sizes], batch_size, rank=rank, shuffle=shuffle, seed=seed
        )
    log.info(
        "lightning_dicom: %s training set resident on %s (%.2f GiB)", mode, device, resident.nbytes() / 2**30
    )
    return DataLoader(
        dataset, sampler=sampler, batch_size=None, num_workers=0
    )  # device indexing, no host work
