"""Class-balanced sampling of training samples, exactly partitioned across DDP ranks.

Each epoch draws ``samples_per_epoch`` indices *with replacement* (``torch.multinomial``) from the
weights ``w_i = share(class_i) / count(class_i)``, where ``share`` is equal for every class present
(the default: inverse class frequency, every class drawn equally often) or proportional to the given
``class_weights``; classes given no weight or absent from the training set are never drawn. The
generator is seeded with ``seed + epoch``, so every rank draws the same sequence and the epoch is
reproducible. The total is rounded up to a multiple of the world size and rank r takes positions
``r, r + W, ...`` of the sequence: the ranks' draws are disjoint slices of one sequence, each rank
gets the same number of samples and (cut like :class:`ShardBatchSampler`) the same number of batches.

This is ``torch.utils.data.WeightedRandomSampler`` made distributed; PyTorch has no distributed
weighted sampler (pytorch/pytorch#23430), TorchIO lists class-balanced sampling as an open request
(TorchIO #633).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import numpy as np
import torch

from lightning_dicom.data.sampler import ShardBatchSampler
from lightning_dicom.errors import ConfigError

__all__ = ["BalancedBatchSampler", "class_sample_weights"]


def class_sample_weights(
    classes: Sequence[int] | np.ndarray, class_weights: Sequence[float] | None = None
) -> np.ndarray:
    """Per-sample draw probabilities (float64, sum 1) so that class c is drawn with probability
    ``share_c`` = ``class_weights[c] / sum`` over present classes (default: equal shares).

    Raises:
        ConfigError: no sample, or no present class has a positive weight.
    """
    cls = np.asarray(classes, dtype=np.int64)
    if cls.size == 0:
        raise ConfigError("loader.sampler 'balanced' needs at least one labelled training sample")
    present, counts = np.unique(cls, return_counts=True)
    if class_weights is None:
        share = np.ones(len(present))
    else:
        share = np.array([class_weights[c] if 0 <= c < len(class_weights) else 0.0 for c in present], float)
    if not share.sum() > 0:
        raise ConfigError(
            f"loader.class_weights {list(class_weights or [])} give no weight to the classes present "
            f"in training ({present.tolist()})"
        )
    per_class = dict(zip(present.tolist(), (share / share.sum() / counts).tolist(), strict=True))
    w = np.array([per_class[c] for c in cls.tolist()], dtype=np.float64)
    return w / w.sum()


class BalancedBatchSampler(ShardBatchSampler):
    """Batches of indices drawn with ``weights`` for one rank (see the module docstring).

    Args:
        weights: draw probability of each sample (``class_sample_weights``).
        batch_size: largest batch.
        samples_per_epoch: draws per epoch over all ranks (rounded up to a multiple of the world size).
        num_replicas: world size; rank: this process's global rank; seed: base of ``seed + epoch``.
    """

    def __init__(
        self,
        weights: Sequence[float] | np.ndarray,
        batch_size: int,
        samples_per_epoch: int,
        *,
        num_replicas: int = 1,
        rank: int = 0,
        seed: int = 0,
    ) -> None:
        self.weights = torch.as_tensor(np.asarray(weights, dtype=np.float64))
        per_rank = math.ceil(int(samples_per_epoch) / int(num_replicas))
        self.total = per_rank * int(num_replicas)
        super().__init__(
            self.total, batch_size, num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed
        )

    def draws(self) -> np.ndarray:
        """The epoch's whole sequence of drawn indices (identical on every rank)."""
        g = torch.Generator()
        g.manual_seed(self.seed + self.epoch)
        return torch.multinomial(self.weights, self.total, replacement=True, generator=g).numpy()

    def __iter__(self) -> Iterator[list[int]]:  # type: ignore[override]
        if self.num_batches == 0:
            return iter(())
        mine = self.draws()[self.rank :: self.num_replicas]
        return iter(c.tolist() for c in np.array_split(mine, self.num_batches))
