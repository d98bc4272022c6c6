"""shard_loader: each rank's share of a DataLoader (the Trainer's data-parallel sampler swap)."""

from __future__ import annotations

import numpy as np
import pytest

from mlx_audio.data import (
    ArrayDataset,
    BucketBatchSampler,
    DataLoader,
    DistributedSampler,
    IterableDataset,
    WeightedRandomSampler,
    get_shard_info,
    shard_loader,
)


def _ids(n: int) -> ArrayDataset:
    return ArrayDataset(np.arange(n, dtype=np.int64))


def _epoch(loader: DataLoader, epoch: int) -> list[list[int]]:
    loader.set_epoch(epoch)
    return [np.array(batch[0]).tolist() for batch in loader]


@pytest.mark.parametrize("shuffle", [True, False])
@pytest.mark.parametrize("workers", [0, 2])
def test_ranks_together_yield_the_unsharded_global_batches(shuffle, workers):
    whole = DataLoader(_ids(96), batch_size=24, shuffle=shuffle, seed=5)
    shards = [
        shard_loader(
            DataLoader(_ids(96), batch_size=12, shuffle=shuffle, seed=5, num_workers=workers),
            2,
            rank,
        )
        for rank in range(2)
    ]
    assert all(isinstance(s.sampler, DistributedSampler) for s in shards)
    for epoch in (0, 1):
        global_batches = _epoch(whole, epoch)
        per_rank = [_epoch(s, epoch) for s in shards]
        assert len(per_rank[0]) == len(per_rank[1]) == len(global_batches) == 4
        for b, batch in enumerate(global_batches):
            assert sorted(per_rank[0][b] + per_rank[1][b]) == sorted(batch)
    assert _epoch(shards[0], 0) != _epoch(shards[0], 1) or not shuffle  # reshuffled each epoch


def test_uneven_dataset_is_padded_so_every_rank_has_as_many_batches():
    shards = [shard_loader(DataLoader(_ids(10), batch_size=2), 3, rank) for rank in range(3)]
    counts = [len(_epoch(s, 0)) for s in shards]
    assert counts == [len(s) for s in shards] == [2, 2, 2]
    seen = sorted(i for s in shards for batch in _epoch(s, 0) for i in batch)
    assert set(seen) == set(range(10)) and len(seen) == 12  # two repeated, as torch pads


def test_bucket_sampler_is_split_by_rank_with_equal_counts():
    lengths = np.random.default_rng(0).integers(1, 100, 50)
    loader = DataLoader(_ids(50), batch_sampler=BucketBatchSampler(lengths, batch_size=4, seed=1))
    shards = [shard_loader(loader, 2, rank) for rank in range(2)]
    batches = [_epoch(s, 0) for s in shards]
    assert len(batches[0]) == len(batches[1]) == len(shards[0])
    whole = [sorted(b) for b in _epoch(loader, 0)]
    mine = [sorted(b) for rank in batches for b in rank]
    assert all(b in whole for b in mine) and len({tuple(b) for b in mine}) == len(whole)


def test_loader_state_records_the_world_size():
    shard = shard_loader(DataLoader(_ids(40), batch_size=4, shuffle=True, seed=2), 2, 0)
    iterator = iter(shard)
    next(iterator)
    state = shard.state_dict()
    assert state["num_replicas"] == 2
    other = shard_loader(DataLoader(_ids(40), batch_size=4, shuffle=True, seed=2), 4, 0)
    with pytest.raises(ValueError, match="num_replicas=2 and this one has num_replicas=4"):
        other.load_state_dict(state)
    rank1 = shard_loader(DataLoader(_ids(40), batch_size=4, shuffle=True, seed=2), 2, 1)
    rank1.load_state_dict(state)  # rank 0's position is every rank's position
    assert len(list(rank1)) == len(shard) - 1


def test_what_cannot_be_split_is_refused_with_the_way_out():
    weighted = DataLoader(_ids(8), sampler=WeightedRandomSampler([1.0] * 8, 8), batch_size=2)
    with pytest.raises(ValueError, match="use_distributed_sampler=False"):
        shard_loader(weighted, 2, 0)
    with pytest.raises(ValueError, match="needs an mlx_audio.data.DataLoader"):
        shard_loader([1, 2, 3], 2, 0)  # type: ignore[arg-type]


class _WhereAmI(IterableDataset):
    def __iter__(self):
        info = get_shard_info()
        yield np.array(
            [info.rank, info.num_replicas, info.worker_id, info.num_workers, info.index, info.count]
        )


@pytest.mark.parametrize("workers", [0, 2])
def test_get_shard_info_in_the_main_process_and_in_workers(workers, monkeypatch):
    monkeypatch.delenv("MLX_RANK", raising=False)
    seen = sorted(
        np.array(b[0]).tolist() for b in DataLoader(_WhereAmI(), batch_size=1, num_workers=workers)
    )
    if workers == 0:
        assert seen == [[0, 1, 0, 1, 0, 1]]
    else:
        assert seen == [[0, 1, 0, 2, 0, 2], [0, 1, 1, 2, 1, 2]]
