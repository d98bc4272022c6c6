"""Several passes over one loader: nested loops, the same loader for train and val, a second
iter() while one is open, abandoned iterators collected by the cyclic GC. torch's rules: every
iter() is an independent pass, except that with persistent workers a new pass takes the
workers over and ends the older one. Nothing is ever lost or handed out twice."""

from __future__ import annotations

import gc
import time

import numpy as np
import pytest

from mlx_audio.data import ArrayDataset, DataLoader


def values(batches):
    return sorted(int(v) for b in batches for v in np.array(b[0]).tolist())


@pytest.fixture
def data():
    return ArrayDataset(np.arange(64, dtype=np.float32))


@pytest.mark.parametrize("num_workers", [0, 2])
def test_nested_loops_and_two_open_iterators_are_independent(data, num_workers):
    loader = DataLoader(data, batch_size=4, num_workers=num_workers)
    outer = []
    inner_counts = []
    for batch in loader:
        outer.append(batch)
        if len(outer) in (2, 5):
            inner_counts.append(len(list(loader)))  # e.g. validation on the same loader
    assert values(outer) == list(range(64)) and inner_counts == [16, 16]
    first = iter(loader)
    head = next(first)
    second = list(iter(loader))
    rest = list(first)
    assert values([head, *rest]) == list(range(64)) and values(second) == list(range(64))


def test_persistent_workers_new_pass_ends_the_older_one_as_in_torch(data):
    loader = DataLoader(data, batch_size=4, num_workers=2, persistent_workers=True)
    first = iter(loader)
    head = next(first)
    second = list(iter(loader))
    assert values(second) == list(range(64))
    assert list(first) == []  # torch: the one iterator was reset and drained by the new pass
    assert values([head]) == [0, 1, 2, 3]  # the older pass had yielded its first batch
    count = 0
    inner = 0
    for _ in loader:
        count += 1
        if count == 2:
            inner = len(list(loader))
    assert (count, inner) == (2, 16)  # torch gives the same counts
    assert values(list(loader)) == list(range(64))  # and the workers carry on


@pytest.mark.parametrize("persistent", [False, True])
def test_an_abandoned_iterator_in_a_reference_cycle_is_collected_quickly(data, persistent):
    loader = DataLoader(
        data, batch_size=4, num_workers=2, persistent_workers=persistent, prefetch_factor=4
    )
    for _ in range(3):
        holder: dict = {}
        iterator = iter(loader)
        next(iterator)
        holder["self"] = holder  # a cycle keeps the half-consumed iterator alive until gc
        holder["it"] = iterator
        del iterator, holder
        start = time.perf_counter()
        gc.collect()
        assert time.perf_counter() - start < 1.5
        assert values(list(loader)) == list(range(64))  # the next epoch works (no EBADF)
    loader.close()


class FailsAtFive:
    def __len__(self):
        return 20

    def __getitem__(self, index):
        if index == 5:
            raise ValueError("bad sample 5")
        return np.float32(index)


@pytest.mark.parametrize("num_workers", [0, 2])
def test_a_failing_sample_raises_for_its_batch_and_the_pass_goes_on(num_workers):
    """torch's behaviour: the error comes for batch [4, 5]; every other batch still arrives."""
    iterator = iter(DataLoader(FailsAtFive(), batch_size=2, num_workers=num_workers))
    got = []
    errors = []
    while True:
        try:
            got.append([int(v) for v in np.array(next(iterator)).tolist()])
        except StopIteration:
            break
        except ValueError as error:
            errors.append(str(error))
    assert len(errors) == 1 and "5" in errors[0]
    assert got == [[0, 1], [2, 3], *[[i, i + 1] for i in range(6, 20, 2)]]
