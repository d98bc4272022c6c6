"""DynamicBucketingSampler: duration budgets, ranks, stats and exact resume through the
DataLoader (with worker processes). Same batches as Lhotse: tests/lhotse_parity."""

from __future__ import annotations

import json
import wave

import numpy as np
import pytest

from mlx_audio.data import (
    AudioFolder,
    BucketBatchSampler,
    DataLoader,
    Dataset,
    DynamicBucketingSampler,
    PadCollate,
    estimate_duration_buckets,
    shard_loader,
)


def long_tail(count: int, seed: int = 0) -> np.ndarray:
    """0.5-30 s, most of them short."""
    rng = np.random.default_rng(seed)
    return np.round(np.clip(0.5 + rng.lognormal(1.0, 0.9, count), 0.5, 30.0), 3)


class Clips(Dataset):
    """Sample i: ``(zeros of durations[i] * 100 steps, i)``."""

    def __init__(self, durations: np.ndarray) -> None:
        self.steps = np.maximum(1, np.round(np.asarray(durations) * 100).astype(int))

    def __len__(self) -> int:
        return len(self.steps)

    def __getitem__(self, i: int):
        return np.full(self.steps[i], i, dtype=np.float32), i


def ids(loader) -> list[list[int]]:
    return [np.asarray(batch[1]).tolist() for batch in loader]


def test_each_batch_fits_the_budget_and_short_clips_make_big_batches():
    durations = long_tail(600)
    sampler = DynamicBucketingSampler(durations, max_duration=60.0, shuffle=True, seed=1)
    batches = list(sampler)
    assert sorted(i for b in batches for i in b) == list(range(600))  # each sample once
    for batch in batches:
        d = durations[batch]
        # Lhotse's closing rule: one more sample as long as the longest would exceed the budget
        assert len(batch) == 1 or (len(batch) - 1) * d[:-1].max() <= 60.0
    sizes = {tuple(b): len(b) for b in batches}
    short = [sizes[tuple(b)] for b in batches if durations[b].max() < 2.0]
    long = [sizes[tuple(b)] for b in batches if durations[b].max() > 10.0]
    assert np.median(short) > 3 * np.median(long)
    assert all(len(b) * durations[b].max() <= 60.0 + 30.0 for b in batches)


def test_max_batch_size_and_quadratic_duration():
    durations = long_tail(400, seed=2)
    capped = DynamicBucketingSampler(durations, max_duration=200.0, max_batch_size=5)
    assert max(map(len, capped)) == 5
    plain = DynamicBucketingSampler(durations, max_duration=60.0)
    quadratic = DynamicBucketingSampler(durations, max_duration=60.0, quadratic_duration=15.0)
    with pytest.warns(UserWarning, match="exceeded the max_duration"):  # 30 s counts as 90 s
        qbatches = list(quadratic)
    longest = [b for b in qbatches if durations[b].min() > 8.0]
    for batch in longest:  # d + d**2/15 counts against the budget: fewer long clips per batch
        effective = durations[batch] + durations[batch] ** 2 / 15.0
        assert len(batch) == 1 or (len(batch) - 1) * effective[:-1].max() <= 60.0
    assert len(qbatches) > len(list(plain))


def test_bins_are_lhotses_estimate_or_given():
    durations = long_tail(300)
    sampler = DynamicBucketingSampler(durations, max_duration=40.0, num_buckets=6)
    assert sampler.duration_bins == estimate_duration_buckets(durations, 6)
    assert sampler.num_buckets == len(sampler.duration_bins) + 1
    given = DynamicBucketingSampler(durations, max_duration=40.0, duration_bins=[2.0, 5.0])
    assert given.duration_bins == [2.0, 5.0] and given.num_buckets == 3
    assert len(given) == len(list(given))  # not shuffling: the same count every epoch
    # equal total duration per bucket (not equal counts): the long bucket holds fewer clips
    bins = estimate_duration_buckets([1.0] * 90 + [9.0] * 10, 2)
    assert bins == [9.0]


def test_same_seed_same_batches_epochs_differ_and_the_loader_seed_is_taken():
    durations = long_tail(200)
    a = DynamicBucketingSampler(durations, max_duration=30.0, shuffle=True, seed=4)
    b = DynamicBucketingSampler(durations, max_duration=30.0, shuffle=True, seed=4)
    first = list(a)
    assert first == list(b)
    a.set_epoch(1)
    assert list(a) != first
    loose = DynamicBucketingSampler(durations, max_duration=30.0, shuffle=True)
    with pytest.raises(TypeError, match="changes from epoch to epoch"):
        len(loose)  # a stale count would cut a longer epoch short in a Trainer
    loader = DataLoader(Clips(durations), batch_sampler=loose, seed=4, collate_fn=PadCollate())
    assert ids(loader) == first and loose.seed == 4


def test_stats_report_padding_and_the_batch_size_histogram():
    durations = long_tail(500)
    sampler = DynamicBucketingSampler(durations, max_duration=60.0, shuffle=True, seed=0)
    stats = sampler.stats()
    batches = list(sampler)
    padded = sum(len(b) * durations[b].max() for b in batches)
    assert stats["padding_fraction"] == pytest.approx(1 - durations.sum() / padded)
    assert stats["batches"] == len(batches) == sum(stats["batch_sizes"].values())
    assert stats["samples"] == 500 and json.loads(json.dumps(stats))
    assert sampler.padding_fraction() == stats["padding_fraction"]
    # bucketing pads far less than shuffled fixed-size batches of the same mean size
    order = np.random.default_rng(0).permutation(500)
    size = round(stats["mean_batch_size"])
    shuffled = [order[i : i + size] for i in range(0, 500, size)]
    plain = 1 - durations.sum() / sum(len(b) * durations[b].max() for b in shuffled)
    assert stats["padding_fraction"] < plain / 3


@pytest.mark.parametrize("world", [2, 3])
def test_ranks_get_equal_batch_counts_and_share_the_epoch(world):
    durations = long_tail(203, seed=world)
    sampler = DynamicBucketingSampler(durations, max_duration=45.0, shuffle=True, seed=3)
    loader = DataLoader(Clips(durations), batch_sampler=sampler, collate_fn=PadCollate())
    shards = [shard_loader(loader, world, rank) for rank in range(world)]
    epochs = [ids(shard) for shard in shards]
    assert len({len(e) for e in epochs}) == 1
    seen = sorted(i for e in epochs for b in e for i in b)
    assert set(seen) == set(range(203))
    assert len(seen) - 203 < world  # only the last group may repeat (fewer samples than ranks)
    # step b of all ranks draws from one bucket (sync_buckets): similar lengths in lockstep
    bins = np.asarray(sampler.duration_bins)
    for step in zip(*epochs[: world - 1]):
        buckets = {int(np.searchsorted(bins, durations[b].max(), side="left")) for b in step}
        assert len(buckets) <= 2


@pytest.mark.parametrize("num_workers", [0, 2])
def test_resume_mid_epoch_is_exact_through_the_loader_state(num_workers):
    durations = long_tail(160, seed=5)

    def loader():
        sampler = DynamicBucketingSampler(durations, max_duration=30.0, shuffle=True)
        return DataLoader(
            Clips(durations),
            batch_sampler=sampler,
            collate_fn=PadCollate(),
            num_workers=num_workers,
            seed=9,
        )

    whole = loader()
    expected = ids(whole) + ids(whole)  # epochs 0 and 1
    first = loader()
    iterator = iter(first)
    head = [np.asarray(next(iterator)[1]).tolist() for _ in range(5)]
    state = json.loads(json.dumps(first.state_dict()))
    first.close()
    resumed = loader()
    resumed.load_state_dict(state)
    assert head + ids(resumed) + ids(resumed) == expected


def test_audio_folder_lengths_feed_it(tmp_path):
    rate = 8000
    for k, seconds in enumerate([0.1, 0.15, 0.5, 0.6, 1.0, 0.12, 0.55, 1.1]):
        folder = tmp_path / f"c{k % 2}"
        folder.mkdir(exist_ok=True)
        with wave.open(str(folder / f"{k}.wav"), "wb") as f:
            f.setnchannels(1), f.setsampwidth(2), f.setframerate(rate)
            f.writeframes(np.zeros(int(seconds * rate), dtype=np.int16).tobytes())
    data = AudioFolder(tmp_path)
    seconds = data.lengths() / rate
    sampler = DynamicBucketingSampler(seconds, max_duration=1.2, num_buckets=2)
    loader = DataLoader(data, batch_sampler=sampler, collate_fn=PadCollate())
    shapes = [waves.shape for waves, _, _ in loader]
    assert sum(s[0] for s in shapes) == 8
    assert all(s[0] * s[1] <= 1.2 * rate * 2 for s in shapes)


def test_bad_arguments_say_what_is_valid():
    with pytest.raises(ValueError, match="max_duration .* max_batch_size"):
        DynamicBucketingSampler([1.0, 2.0])
    with pytest.raises(ValueError, match="sorted ascending"):
        DynamicBucketingSampler([1.0, 2.0], max_duration=5.0, duration_bins=[3.0, 1.0])
    with pytest.raises(ValueError, match="finite and >= 0"):
        DynamicBucketingSampler([1.0, -2.0], max_duration=5.0)
    with pytest.raises(ValueError, match="num_buckets"):
        DynamicBucketingSampler([1.0, 2.0], max_duration=5.0, num_buckets=1)
    with pytest.raises(ValueError, match="smaller than or equal to the number"):
        DynamicBucketingSampler([1.0, 2.0], max_duration=5.0, num_buckets=3)
    with pytest.raises(ValueError, match="max_batch_size"):
        DynamicBucketingSampler([1.0], max_batch_size=0)
    with pytest.raises(ValueError, match="rank"):
        DynamicBucketingSampler([1.0, 2.0], max_duration=5.0, num_replicas=2, rank=2)


def test_it_is_not_the_fixed_size_bucket_sampler():
    durations = long_tail(300)
    fixed = BucketBatchSampler((durations * 100).astype(int), batch_size=8, seed=0)
    dynamic = DynamicBucketingSampler(durations, max_duration=60.0, seed=0, shuffle=True)
    assert max(map(len, fixed)) == 8 and max(map(len, dynamic)) > 16


def test_a_state_late_in_a_longer_epoch_is_accepted():
    """Epochs differ in batch count when shuffling (here epoch 3 has 31 batches, epoch 0 has
    29): a state late in the longer epoch resumes (no stale length refuses it)."""
    durations = np.round(
        np.clip(0.5 + np.random.default_rng(5).lognormal(1.0, 0.9, 160), 0.5, 30), 3
    )

    def loader():
        sampler = DynamicBucketingSampler(
            durations, max_duration=30.0, shuffle=True, seed=5, buffer_size=40
        )
        return DataLoader(Clips(durations), batch_sampler=sampler, collate_fn=PadCollate())

    whole = loader()
    whole.set_epoch(3)
    expected = ids(whole)
    assert len(expected) == 31
    first = loader()
    first.set_epoch(3)
    iterator = iter(first)
    head = [np.asarray(next(iterator)[1]).tolist() for _ in range(30)]
    resumed = loader()
    resumed.load_state_dict(json.loads(json.dumps(first.state_dict())))
    assert head + ids(resumed) == expected


def test_an_order_feeds_the_buckets_and_follows_the_rank_split():
    """``order`` (Lhotse's sampler over a muxed CutSet): the rows enter the buckets in the
    order's sequence; one bucket and ``max_batch_size`` give plain batches of that order."""
    from mlx_audio.data.interleave import WeightedOrder

    order = WeightedOrder([0] * 30 + [1] * 10, [0.5, 0.5])
    sampler = DynamicBucketingSampler(
        [1.0] * 40, max_batch_size=4, duration_bins=[], order=order, seed=5
    )
    flat = [i for b in sampler for i in b]
    assert flat == order(5, 0).tolist() and len(sampler) == 10
    sampler.set_epoch(1)
    assert [i for b in sampler for i in b] == order(5, 1).tolist()
    shares = [sampler.for_rank(2, r) for r in range(2)]
    for share in shares:
        share.set_epoch(1)
    assert shares[0].order is order and len(shares[0]) == len(shares[1]) == 5


def test_an_order_of_another_length_is_refused_at_construction():
    from mlx_audio.data.interleave import WeightedOrder

    order = WeightedOrder([0] * 8 + [1] * 4, weights=[1, 1])
    with pytest.raises(ValueError, match="order covers 12 samples .* durations has 10"):
        DynamicBucketingSampler([1.0] * 10, max_batch_size=4, duration_bins=[], order=order)
    sampler = DynamicBucketingSampler(
        [1.0] * 10, max_batch_size=4, duration_bins=[], order=lambda seed, epoch: range(12)
    )
    with pytest.raises(ValueError, match=r"gave index 11; durations has 10 samples"):
        list(sampler)


def test_a_batch_may_pass_max_duration_by_its_closing_sample_as_lhotse():
    """Lhotse's DurationBatcher adds a sample, then checks: the sample that closes a batch can
    take batch x longest past max_duration (docs/api/data.md says so)."""
    durations = [0.3, 0.3, 1.2]
    sampler = DynamicBucketingSampler(durations, max_duration=1.0, duration_bins=[])
    (first, *_) = list(sampler)
    assert len(first) * max(durations[i] for i in first) > 1.0
