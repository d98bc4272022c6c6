"""Cases of the Lhotse differential suite (imported by both sides: standard library and numpy).

Each case gives durations (a seeded long-tail mix, rounded to milliseconds), the sampler's
arguments in Lhotse's names, the epoch and the world size; the reference (``run_lhotse.py``)
records the index batches Lhotse's ``DynamicBucketingSampler`` yields for every rank, and
``test_lhotse_parity.py`` checks ours gives the same.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np


def durations(count: int, seed: int) -> list[float]:
    """Speech-like durations: mostly 1-8 s, a long tail to 30 s, a few very short clips."""
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        pick = rng.random()
        if pick < 0.1:
            d = rng.uniform(0.3, 1.0)
        elif pick < 0.85:
            d = rng.uniform(1.0, 8.0)
        else:
            d = min(30.0, rng.expovariate(1 / 8.0) + 8.0)
        out.append(round(d, 3))
    return out


def order(count: int, seed: int, epoch: int, shuffle: bool) -> list[int]:
    """The dataset order our sampler feeds the bucketer (``epoch_rng(seed, epoch)``)."""
    if not shuffle:
        return list(range(count))
    rng = np.random.default_rng([seed & 0xFFFFFFFFFFFFFFFF, epoch])
    return [int(i) for i in rng.permutation(count)]


def _case(count: int, data_seed: int, **kwargs: Any) -> dict[str, Any]:
    base = {
        "max_duration": None,
        "max_cuts": None,
        "num_buckets": 10,
        "duration_bins": None,
        "buffer_size": 20000,
        "quadratic_duration": None,
        "shuffle": False,
        "drop_last": False,
        "seed": 0,
        "sync_buckets": True,
        "world_size": 1,
        "epoch": 0,
    }
    base.update(kwargs)
    return {"durations": durations(count, data_seed), **base}


CASES: dict[str, dict[str, Any]] = {
    "plain": _case(300, 1, max_duration=40.0),
    "max_cuts": _case(300, 2, max_duration=60.0, max_cuts=7),
    "only_max_cuts": _case(120, 3, max_cuts=9, num_buckets=4),
    "small_buffer": _case(400, 4, max_duration=30.0, buffer_size=60, num_buckets=6),
    "quadratic": _case(300, 5, max_duration=50.0, quadratic_duration=15.0),
    "given_bins": _case(250, 6, max_duration=35.0, duration_bins=[1.5, 3.0, 5.0, 9.0]),
    "drop_last": _case(300, 7, max_duration=40.0, drop_last=True, buffer_size=100),
    "shuffle": _case(300, 8, max_duration=40.0, shuffle=True, seed=5, buffer_size=120),
    "shuffle_epoch2": _case(300, 8, max_duration=40.0, shuffle=True, seed=5, epoch=2),
    "no_sync": _case(300, 9, max_duration=40.0, sync_buckets=False, shuffle=True, seed=3),
    "no_sync_ordered": _case(200, 10, max_duration=25.0, sync_buckets=False),
    "ranks2": _case(301, 11, max_duration=40.0, world_size=2, shuffle=True, seed=1),
    "ranks3": _case(97, 12, max_duration=30.0, world_size=3, buffer_size=50),
    "ranks3_drop_last": _case(97, 12, max_duration=30.0, world_size=3, drop_last=True),
    "ranks4_tiny": _case(6, 13, max_duration=1000.0, world_size=4, num_buckets=2),
    "long_sample": _case(40, 14, max_duration=5.0, num_buckets=3),
}
