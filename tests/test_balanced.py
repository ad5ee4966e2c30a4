"""Tests for lightning_dicom.data.balanced: class shares over many epochs, ranks, reproducibility."""

from __future__ import annotations

import numpy as np
import pytest

from lightning_dicom.data.balanced import BalancedBatchSampler, class_sample_weights
from lightning_dicom.errors import ConfigError

CLASSES = np.array([1] * 10 + [0] * 90)  # a 10/90 training set


def _drawn_classes(sampler: BalancedBatchSampler, epochs: int) -> np.ndarray:
    out = []
    for e in range(epochs):
        sampler.set_epoch(e)
        out += [i for b in sampler for i in b]
    return CLASSES[np.array(out)]


@pytest.mark.parametrize(("weights", "share_1"), [(None, 0.5), ([1.0, 3.0], 0.75), ([4.0, 1.0], 0.2)])
def test_classes_are_drawn_in_the_requested_proportions(weights: list[float] | None, share_1: float) -> None:
    sampler = BalancedBatchSampler(class_sample_weights(CLASSES, weights), 8, 100, seed=0)
    drawn = _drawn_classes(sampler, epochs=60)
    n = len(drawn)
    assert n == 6000
    # binomial test at a fixed seed: |k - n p| < 4 standard deviations (two-sided p ~ 6e-5)
    k = int(drawn.sum())
    assert abs(k - n * share_1) < 4 * np.sqrt(n * share_1 * (1 - share_1))
    uniform = np.random.default_rng(0).choice(CLASSES, n)  # what uniform sampling gives, for contrast
    if share_1 >= 0.5:
        assert uniform.sum() < 0.15 * n < k


@pytest.mark.parametrize(("world", "total", "batch"), [(2, 100, 8), (3, 100, 8), (4, 37, 5), (3, 5, 4)])
def test_ranks_get_disjoint_draws_and_the_same_number_of_batches(world: int, total: int, batch: int) -> None:
    w = class_sample_weights(CLASSES)
    samplers = [
        BalancedBatchSampler(w, batch, total, num_replicas=world, rank=r, seed=5) for r in range(world)
    ]
    for s in samplers:
        s.set_epoch(3)
    batches = [list(s) for s in samplers]
    assert len({len(b) for b in batches}) == 1 and all(len(s) == len(batches[0]) for s in samplers)
    sizes = [len(x) for b in batches for x in b]
    assert max(sizes) <= batch and max(sizes) - min(sizes) <= 1
    per_rank = [[i for x in b for i in x] for b in batches]
    assert len({len(p) for p in per_rank}) == 1  # same number of samples on every rank
    seq = samplers[0].draws()
    assert all(np.array_equal(seq, s.draws()) for s in samplers)  # one sequence, shared by all ranks
    for r, p in enumerate(per_rank):  # rank r holds positions r, r + W, ...: disjoint slices
        assert p == seq[r::world].tolist()
    assert sum(len(p) for p in per_rank) == len(seq) >= total


def test_reproducible_from_the_seed_and_new_each_epoch() -> None:
    w = class_sample_weights(CLASSES)
    a, b = BalancedBatchSampler(w, 4, 50, seed=1), BalancedBatchSampler(w, 4, 50, seed=1)
    assert list(a) == list(b)
    first = list(a)
    a.set_epoch(1)
    assert list(a) != first
    assert list(BalancedBatchSampler(w, 4, 50, seed=2)) != first


def test_weights_cover_present_classes_only() -> None:
    w = class_sample_weights([0, 0, 2, 2, 2, 2])
    np.testing.assert_allclose(w, [0.25, 0.25, 0.125, 0.125, 0.125, 0.125])
    np.testing.assert_allclose(class_sample_weights([0, 1, 1], [0.0, 1.0]), [0.0, 0.5, 0.5])
    with pytest.raises(ConfigError, match="no weight to the classes present"):
        class_sample_weights([0, 0], [0.0, 1.0])
    with pytest.raises(ConfigError, match="at least one labelled"):
        class_sample_weights([])
