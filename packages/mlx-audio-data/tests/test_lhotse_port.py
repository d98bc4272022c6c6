"""Lhotse's own tests of dynamic bucketing (``test/dataset/sampling/test_dynamic_bucketing.py``,
Lhotse 1.33), ported test by test onto ours: their names, inputs and expected batches. Cuts of
``DummyManifest`` become plain durations (cut ``i`` is sample ``i``); a batch's "sum of
durations" is the sum of its samples' durations.

Left out: cut pairs/triplets and ``filter()`` (ours batches one dataset's indices: pair
datasets with ``StackDataset``, filter the durations), ``concurrent=True`` (non-deterministic
by Lhotse's own words), ``FixedBucketBatchSizeConstraint`` (use ``BucketBatchSampler``), and
``test_dynamic_bucketing_sampler_precomputed_duration_bins`` (``shuffle=True`` on an eager
``CutSet``: ours permutes a map-style dataset first, so the same batches come from another
input order; ``tests/lhotse_parity`` compares shuffled batches with Lhotse's on that order).
"""

from __future__ import annotations

import random
from itertools import islice

import pytest

from mlx_audio.data import DynamicBucketingDataset, DynamicBucketingSampler, IterableDataset
from mlx_audio.data._bucketer import DynamicBucketer, TimeConstraint, estimate_duration_buckets

FIVE_AND_FIVE = [1.0] * 5 + [2.0] * 5  # DummyManifest(end_id=10), durations 1 then 2


def sums(durations, batches):
    return [(len(b), sum(durations[i] for i in b)) for b in batches]


def test_estimate_duration_buckets_2b():
    assert estimate_duration_buckets([1] * 5 + [2] * 5, num_buckets=2) == [2]


def test_estimate_duration_buckets_4b():
    durations = [1] * 5 + [2] * 5 + [3] * 5 + [4] * 5
    assert estimate_duration_buckets(durations, num_buckets=4) == [2, 3, 4]


def bucketer_batches(drop_last):
    stream = iter(enumerate(FIVE_AND_FIVE))
    bucketer = DynamicBucketer(
        lambda: next(stream, None),
        duration_bins=[1.5],
        constraint=TimeConstraint(5, None, None),
        buffer_size=10000,
        shuffle=False,
        drop_last=drop_last,
        rng=random.Random(0),
        bucket_rng=None,
        world_size=1,
    )
    batches = []
    while True:
        try:
            batches.append([i for i, _ in bucketer.next_batch()])
        except StopIteration:
            return batches


def test_dynamic_bucketing_drop_last_false():
    batches = bucketer_batches(drop_last=False)
    sampled = [i for b in batches for i in b]
    assert len(set(sampled)) == len(sampled) == 10
    assert sums(FIVE_AND_FIVE, batches) == [(2, 4), (2, 4), (5, 5), (1, 2)]


def test_dynamic_bucketing_drop_last_true():
    batches = bucketer_batches(drop_last=True)
    sampled = [i for b in batches for i in b]
    assert len(set(sampled)) == len(sampled) == 9
    assert sums(FIVE_AND_FIVE, batches) == [(2, 4), (2, 4), (5, 5)]


def test_dynamic_bucketing_sampler():
    sampler = DynamicBucketingSampler(FIVE_AND_FIVE, max_duration=5, duration_bins=[1.5], seed=0)
    batches = list(sampler)
    assert sorted(i for b in batches for i in b) == list(range(10))
    assert sums(FIVE_AND_FIVE, batches) == [(2, 4), (5, 5), (2, 4), (1, 2)]


def test_dynamic_bucketing_sampler_max_duration_and_max_cuts():
    sampler = DynamicBucketingSampler(
        FIVE_AND_FIVE, max_duration=5, max_batch_size=1, num_buckets=2, seed=0
    )
    batches = list(sampler)
    assert sorted(i for b in batches for i in b) == list(range(10))
    assert len(batches) == 10 and all(len(b) == 1 for b in batches)


def test_dynamic_bucketing_sampler_too_small_data_can_be_sampled():
    sampler = DynamicBucketingSampler(FIVE_AND_FIVE, max_duration=100, duration_bins=[1.5], seed=0)
    batches = list(sampler)
    assert sorted(i for b in batches for i in b) == list(range(10))
    assert [len(b) for b in batches] == [5, 5]


def test_dynamic_bucketing_sampler_much_less_data_than_ddp_ranks():
    world_size = 128
    for rank in range(world_size):
        sampler = DynamicBucketingSampler(
            [1.0],
            max_duration=2000.0,
            duration_bins=[1.5, 3.7, 15.2, 27.9, 40.0],
            drop_last=False,
            num_replicas=world_size,
            rank=rank,
        )
        assert list(sampler) == [[0]]  # every rank gets the one sample (repeated)


def test_dynamic_bucketing_sampler_too_small_data_drop_last_true_results_in_no_batches():
    sampler = DynamicBucketingSampler(
        FIVE_AND_FIVE, max_duration=100, num_buckets=2, seed=0, drop_last=True
    )
    assert list(sampler) == []


def test_dynamic_bucketing_sampler_shuffle():
    sampler = DynamicBucketingSampler(
        FIVE_AND_FIVE, max_duration=5, num_buckets=2, seed=0, shuffle=True
    )
    epoch_batches = []
    for epoch in range(2):
        sampler.set_epoch(epoch)
        batches = list(sampler)
        assert sorted(i for b in batches for i in b) == list(range(10))
        epoch_batches.append(batches)
    assert epoch_batches[0] != epoch_batches[1]


def test_dynamic_bucketing_quadratic_duration():
    durations = [5.0] * 5 + [30.0] * 5
    sampler = DynamicBucketingSampler(
        durations, max_duration=61, duration_bins=[10.0], seed=0, quadratic_duration=30
    )
    assert sums(durations, list(sampler)) == [(1, 30)] * 5 + [(5, 25)]
    sampler = DynamicBucketingSampler(
        durations, max_duration=61, duration_bins=[10.0], seed=0, quadratic_duration=None
    )
    assert sums(durations, list(sampler)) == [(2, 60), (2, 60), (5, 25), (1, 30)]


def ones_and_tens():
    rng = random.Random(0)
    return [float(rng.choices([1, 10], weights=[0.9, 0.1])[0]) for _ in range(10000)]


class Cuts(IterableDataset):
    def __init__(self, durations):
        self.durations = durations

    def __iter__(self):
        return ({"id": i, "duration": d} for i, d in enumerate(self.durations))


@pytest.mark.filterwarnings("ignore:We have exceeded the max_duration")  # 10 s > 5 s: Lhotse's too
def test_dynamic_bucketing_sampler_sync_buckets_iterable_dataset_usage():
    # one replica per dataloading worker: different seeds, world_size=1 (the stream version)
    durations = ones_and_tens()
    for sync_buckets in (True, False):
        common = dict(
            max_duration=5,
            num_buckets=2,
            sync_buckets=sync_buckets,
            drop_last=True,
            shuffle=True,
            duration_bins=[5.0],
        )
        s0 = DynamicBucketingDataset(Cuts(durations), "duration", seed=0, **common)
        s1 = DynamicBucketingDataset(Cuts(durations), "duration", seed=1, **common)
        batches0 = [[c["id"] for c in b] for b in islice(s0, 30)]
        batches1 = [[c["id"] for c in b] for b in islice(s1, 30)]
        _check_sync(durations, batches0, batches1, sync_buckets)


@pytest.mark.filterwarnings("ignore:We have exceeded the max_duration")
def test_dynamic_bucketing_sampler_sync_buckets_map_dataset_usage():
    # one sampler per rank in the training process: the same seed, world_size=2
    durations = ones_and_tens()
    for sync_buckets in (True, False):
        common = dict(
            max_duration=5,
            num_buckets=2,
            seed=0,
            sync_buckets=sync_buckets,
            num_replicas=2,
            drop_last=True,
            shuffle=True,
            duration_bins=[5.0],
        )
        batches0 = list(islice(DynamicBucketingSampler(durations, rank=0, **common), 30))
        batches1 = list(islice(DynamicBucketingSampler(durations, rank=1, **common), 30))
        _check_sync(durations, batches0, batches1, sync_buckets)


def _check_sync(durations, batches0, batches1, sync_buckets):
    ids0 = {i for b in batches0 for i in b}
    assert ids0 & {i for b in batches1 for i in b} == set()
    if sync_buckets:
        matching_ids = []
        for b0, b1 in zip(batches0, batches1):
            assert len(b0) == len(b1)
            for c0, c1 in zip(b0, b1):
                assert durations[c0] == durations[c1]
                matching_ids.append(c0 == c1)
        assert not all(matching_ids)
    else:
        assert not all(len(b0) == len(b1) for b0, b1 in zip(batches0, batches1))


def test_select_bucket_includes_upper_bound_in_bin():
    bucketer = DynamicBucketer(
        lambda: None, [2.0, 4.0], TimeConstraint(10, None, None), 1, False, False,
        random.Random(0), None, 1,
    )  # fmt: skip
    assert [bucketer.bucket_of(d) for d in (1.0, 2.0, 3.0, 4.0, 5.0)] == [0, 0, 1, 1, 2]
