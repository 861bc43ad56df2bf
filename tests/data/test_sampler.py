"""Data order and learning-rate schedule: pure functions of the seed and the step."""

from __future__ import annotations

import math

import pytest

from medpeft.data.sampler import GlobalBatchSampler
from medpeft.errors import ConfigError
from medpeft.runtime import lr_factor


def batches(n=23, batch=8, accum=1, world=1, rank=0, seed=0, epoch=0, start=0):
    return list(GlobalBatchSampler(n, batch, accum, world, rank, seed, epoch, start))


def indices(bs):
    return [[i for i, _ in b] for b in bs]


def test_each_epoch_is_a_seeded_shuffle_without_repeats():
    a, b = indices(batches()), indices(batches())
    assert a == b  # same seed, same order
    flat = [i for mb in a for i in mb]
    assert len(flat) == 16 and len(set(flat)) == 16  # 2 full batches of 8 from 23; the rest dropped
    assert flat != sorted(flat)  # shuffled
    assert indices(batches(epoch=1)) != a and indices(batches(seed=1)) != a


def test_resume_skips_exactly_the_consumed_batches():
    full = batches(n=40, batch=4)
    assert batches(n=40, batch=4, start=3) == full[3:]  # indices and augmentation seeds


def test_processes_split_each_micro_batch_in_rank_order():
    single = indices(batches(n=32, batch=8, accum=2))
    ranks = [indices(batches(n=32, batch=8, accum=2, world=2, rank=r)) for r in range(2)]
    for k, mb in enumerate(single):
        assert ranks[0][k] + ranks[1][k] == mb  # what gathering rebuilds
    assert len(single[0]) == 4 and len(ranks[0][0]) == 2


def test_augmentation_seed_depends_on_sample_and_epoch_only():
    e0 = dict(x for b in batches(n=16, batch=4) for x in b)
    e0_world2 = dict(x for r in range(2) for b in batches(n=16, batch=4, world=2, rank=r) for x in b)
    e1 = dict(x for b in batches(n=16, batch=4, epoch=1) for x in b)
    assert e0 == e0_world2
    assert all(e0[i] != e1[i] for i in e0)


def test_indivisible_global_batch_is_refused():
    with pytest.raises(ConfigError, match="divisible by grad_accum x processes"):
        GlobalBatchSampler(32, 6, 2, 2, 0, 0, 0)
    with pytest.raises(ConfigError, match="fewer than one batch"):
        GlobalBatchSampler(3, 4, 1, 1, 0, 0, 0)


def test_warmup_then_cosine_to_zero():
    total, warmup = 100, 10
    f = [lr_factor(s, total, warmup, "cosine") for s in range(total)]
    assert f[0] == pytest.approx(0.1) and f[9] == pytest.approx(1.0)
    assert f[10] == pytest.approx(1.0) and f[55] == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.5)))
    assert all(a >= b for a, b in zip(f[10:], f[11:], strict=False)) and f[-1] < 0.001
    assert lr_factor(50, total, warmup, "constant") == 1.0
