import numpy as np
import pytest

from mlx_audio.data import BatchSampler, DistributedSampler, RandomSampler, SequentialSampler


def test_random_sampler_is_a_function_of_seed_and_epoch():
    data = range(50)
    s1, s2 = RandomSampler(data, seed=3), RandomSampler(data, seed=3)
    first = list(s1)
    assert first == list(s2) and sorted(first) == list(range(50))
    s1.set_epoch(1)
    assert list(s1) != first
    s1.set_epoch(0)
    assert list(s1) == first
    assert list(RandomSampler(data, seed=4)) != first


def test_random_sampler_replacement_and_num_samples():
    s = RandomSampler(range(5), replacement=True, num_samples=20, seed=0)
    drawn = list(s)
    assert len(drawn) == 20 == len(s) and set(drawn) <= set(range(5))
    s = RandomSampler(range(5), num_samples=12, seed=0)
    assert len(list(s)) == 12
    with pytest.raises(ValueError):
        RandomSampler(range(5), num_samples=0)


def test_batch_sampler_fast_and_generic_paths_agree():
    fast = BatchSampler(SequentialSampler(range(10)), 4, drop_last=False)
    generic = BatchSampler(list(range(10)), 4, drop_last=False)  # no indices(): generic path
    assert list(fast) == list(generic) == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    dropped = BatchSampler(SequentialSampler(range(10)), 4, drop_last=True)
    assert list(dropped) == [[0, 1, 2, 3], [4, 5, 6, 7]] and len(dropped) == 2
    assert len(fast) == 3
    with pytest.raises(ValueError, match="batch_size"):
        BatchSampler(range(3), 0, False)


@pytest.mark.parametrize("drop_last", [False, True])
def test_distributed_sampler_partitions_equally(drop_last):
    n, world = 10, 3
    shards = [
        list(DistributedSampler(range(n), num_replicas=world, rank=r, seed=7, drop_last=drop_last))
        for r in range(world)
    ]
    lengths = {len(s) for s in shards}
    assert len(lengths) == 1
    flat = [i for s in shards for i in s]
    if drop_last:
        assert len(flat) == 9 and len(set(flat)) == 9
    else:
        assert len(flat) == 12 and set(flat) == set(range(n))


def test_distributed_sampler_epochs_and_defaults_from_mlx():
    s = DistributedSampler(range(8))  # mx.distributed.init(): a group of one here
    assert s.num_replicas == 1 and s.rank == 0
    first = list(s)
    s.set_epoch(1)
    assert sorted(list(s)) == sorted(first) and list(s) != first
    with pytest.raises(ValueError, match="rank"):
        DistributedSampler(range(8), num_replicas=2, rank=2)


def test_indices_are_numpy():
    assert isinstance(RandomSampler(range(4), seed=0).indices(), np.ndarray)
