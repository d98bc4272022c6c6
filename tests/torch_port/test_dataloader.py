"""A port of PyTorch's ``test/test_dataloader.py`` (torch 2.x) to ``mlx_audio.data``.

Each test keeps torch's name, inputs and assertions; only the tensor library changes
(``torch.randn`` -> numpy, batches arrive as ``mx.array``). Cases that test torch internals
(``_utils``' seed hashing, pinned memory, CUDA tensors, DataPipes, nested tensors, the
``_workers`` list of an iterator) are left out; where torch reads a private attribute the port
checks the same behaviour through the operating system (psutil) instead. Deliberate differences
are marked ``DIFFERENCE`` and listed in docs/api/data.md.
"""

from __future__ import annotations

import collections
import ctypes
import functools
import math
import multiprocessing as mp
import operator
import os
import subprocess
import sys
import tempfile
import time
import warnings
from typing import List  # noqa: UP035 (torch's test spells it so)

import mlx.core as mx
import numpy as np
import psutil
import pytest

from mlx_audio.data import (
    BatchSampler,
    ChainDataset,
    ConcatDataset,
    DataLoader,
    Dataset,
    DistributedSampler,
    IterableDataset,
    RandomSampler,
    SequentialSampler,
    StackDataset,
    Subset,
    SubsetRandomSampler,
    TensorDataset,
    WeightedRandomSampler,
    default_collate,
    default_convert,
    get_worker_info,
    random_split,
)

JOIN_TIMEOUT = 60.0
START_METHODS = [None, *mp.get_all_start_methods()]


def A(x):
    """An array as numpy (batches are mx.array)."""
    return np.asarray(x)


def assert_equal(a, b):
    np.testing.assert_array_equal(A(a), A(b))


def generator(seed):
    return np.random.default_rng(seed)


def children() -> set[int]:
    return {p.pid for p in psutil.Process().children(recursive=True)}


def no_children_left(before: set[int], timeout: float = JOIN_TIMEOUT) -> None:
    """The processes started since ``before`` (the workers) all end."""
    new = [psutil.Process(pid) for pid in children() - before if psutil.pid_exists(pid)]
    _, alive = psutil.wait_procs(new, timeout=timeout)
    assert not alive, f"worker processes left: {[p.pid for p in alive]}"


# ---------------------------------------------------------------------- random_split


def test_lengths_must_equal_dataset_size():
    with pytest.raises(ValueError):
        random_split([1, 2, 3, 4], [1, 2])


def test_splits_have_correct_size():
    splits = random_split([1, 2, 3, 4, 5, 6], [2, 4])
    assert len(splits) == 2
    assert (len(splits[0]), len(splits[1])) == (2, 4)
    splits = random_split([1, 2, 3, 4, 5, 6], [0.5, 0.5])
    assert (len(splits[0]), len(splits[1])) == (3, 3)
    assert len(random_split(range(3), [0.5, 0.5], generator=generator(1))) == 2
    splits = random_split(range(106), [0.1, 0.2, 0.3, 0.4], generator=generator(1))
    assert [len(s) for s in splits] == [11, 22, 31, 42]


def test_an_empty_fractional_split_is_warned_of_as_torch_does():
    # torch/utils/data/dataset.py random_split: a fraction that rounds to no sample warns
    with pytest.warns(UserWarning, match="Length of split at index 0 is 0. This might result"):
        splits = random_split(range(5), [0.0, 1.0], generator=generator(0))
    assert [len(s) for s in splits] == [0, 5]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # counts (not fractions) do not warn, as in torch
        random_split(range(5), [0, 5], generator=generator(0))


def test_splits_are_mutually_exclusive():
    for data, lengths in (
        ([5, 2, 3, 4, 1, 6], [2, 4]),
        ([5, 2, 3, 4, 1, 6], [0.33, 0.67]),
        ([1, 2, 3, 4], [0.25, 0.75]),
    ):
        splits = random_split(data, lengths)
        values = sorted(list(splits[0]) + list(splits[1]))
        assert values == sorted(data)


def test_splits_indexing_type():
    class CustomDataset:
        def __init__(self, custom_list):
            self.data = custom_list

        def __getitem__(self, key):
            assert type(key) is int, type(key)
            return self.data[key]

        def __len__(self):
            return len(self.data)

    for lengths in ([5], [1.0]):
        dataset = random_split(CustomDataset([1, 2, 3, 4, 5]), lengths)[0]
        for _ in DataLoader(dataset):
            pass


def test_splits_reproducibility():
    # DIFFERENCE: numpy generators, so not torch's exact numbers; same seed -> same split
    def split(n, lengths):
        return [list(s) for s in random_split(range(n), lengths, generator=generator(42))]

    assert split(10, [3, 7]) == split(10, [3, 7])
    assert split(100, [60, 40]) == split(100, [60, 40])
    assert split(100, [0.33, 0.33, 0.34]) == split(100, [0.33, 0.33, 0.34])
    assert split(100, [60, 40]) != [
        list(s) for s in random_split(range(100), [60, 40], generator=generator(1))
    ]


def test_incomplete_fractional_splits():
    with pytest.raises(ValueError):
        random_split([1, 2, 3, 4], [0.1])
    with pytest.raises(ValueError):
        random_split([1, 2, 3, 4], [1.1])


def test_splits_generator():
    # without a generator the global numpy RNG is used (and advanced); with one it is not
    state = np.random.get_state()
    a = np.random.rand(10)
    np.random.set_state(state)
    random_split(range(10), [5, 5])
    assert not np.array_equal(a, np.random.rand(10))
    state = np.random.get_state()
    a = np.random.rand(10)
    np.random.set_state(state)
    random_split(range(10), [5, 5], generator=generator(42))
    assert np.array_equal(a, np.random.rand(10))


def test_slicing_of_subset_of_dataset():
    dataset = TensorDataset(np.array([1, 2, 3, 4, 5]))
    subset = Subset(dataset, [0, 1, 2, 3, 4])
    for s in (slice(None), slice(1, 2), slice(0, -1, 2)):
        assert_equal(subset[s], dataset[s])
    subset1, _ = random_split(dataset, [3, 2])
    for s in (slice(None), slice(0, 2), slice(0, -1, 2)):
        assert_equal(subset1[s], dataset[subset1.indices[s]])


def test_slicing_of_subset_of_subset():
    dataset = TensorDataset(np.array([1, 2, 3, 4, 5]))
    subset_of_subset = Subset(Subset(dataset, [0, 1, 2, 3, 4]), [0, 1, 2, 3, 4])
    for s in (slice(None), slice(0, 2), slice(0, -1, 2)):
        assert_equal(subset_of_subset[s], dataset[s])
    subset1, _ = random_split(dataset, [4, 1])
    inner, _ = random_split(subset1, [3, 1])
    idx = [subset1.indices[i] for i in inner.indices]
    assert_equal(inner[:], dataset[idx.copy()])
    assert_equal(inner[0:2], dataset[idx[0:2]])
    assert_equal(inner[0:-1:2], dataset[idx[0:-1:2]])


# ---------------------------------------------------------------------- datasets


class CountingDataset(Dataset):
    def __init__(self, n):
        self.n = n

    def __getitem__(self, i):
        return i

    def __len__(self):
        return self.n


class CountingIterableDataset(IterableDataset):
    def __init__(self, n):
        self.n = n

    def __iter__(self):
        return iter(range(self.n))

    def __len__(self):
        return self.n


def test_tensor_dataset():
    rng = np.random.default_rng(0)
    source = TensorDataset(rng.standard_normal((15, 10, 2, 3, 4, 5)), rng.permutation(15))
    assert len(source) == 15
    t, l1 = rng.standard_normal((15, 10, 2)), rng.standard_normal((15, 10))
    source = TensorDataset(t, l1)
    for i in range(15):
        assert_equal(t[i], source[i][0])
        assert_equal(l1[i], source[i][1])
    t = rng.standard_normal(15)
    source = TensorDataset(t)
    assert len(source) == 15 and all(source[i][0] == t[i] for i in range(15))
    parts = [
        rng.standard_normal((5, 10, 2)),
        rng.standard_normal((5, 10)),
        rng.standard_normal((5, 3, 7)),
    ]
    source = TensorDataset(*parts)
    for i in range(5):
        for j, p in enumerate(parts):
            assert_equal(p[i], source[i][j])


def test_stack_dataset_errors():
    with pytest.raises(ValueError, match="At least one dataset should be passed"):
        StackDataset()
    with pytest.raises(ValueError, match="Supported either"):
        StackDataset(TensorDataset(np.zeros((15, 10))), a=TensorDataset(np.zeros((10, 15))))
    with pytest.raises(ValueError, match="Size mismatch between datasets"):
        StackDataset(TensorDataset(np.zeros((15, 10))), TensorDataset(np.zeros((10, 15))))
    with pytest.raises(ValueError, match="Size mismatch between datasets"):
        StackDataset(a=TensorDataset(np.zeros((15, 10))), b=TensorDataset(np.zeros((10, 15))))


def test_stack_dataset_len_single_getitem():
    t = TensorDataset(np.random.randn(15, 10))
    l1 = TensorDataset(np.random.randn(15, 5, 4))
    assert len(StackDataset(t, l1)) == 15 and len(StackDataset(a=t)) == 15
    for i in range(15):
        assert_equal(StackDataset(t)[i][0], t[i])
        assert_equal(StackDataset(a=t)[i]["a"], t[i])
        assert_equal(StackDataset(t, l1)[i][1], l1[i])
        assert_equal(StackDataset(a=t, b=l1)[i]["b"], l1[i])


class GetItemsDataset(Dataset):
    def __init__(self, short=False):
        self.data = np.random.randn(4)
        self.short = short

    def __getitem__(self, item):
        return self.data[item]

    def __getitems__(self, items):
        return self.data[items][:-1] if self.short else self.data[items]

    def __len__(self):
        return 4


def test_stack_dataset_getitems():
    t, l1 = GetItemsDataset(), [1, 2, 3, 4]
    batch = StackDataset(t, l1).__getitems__([0, 1, 2, 3])
    for i in range(4):
        assert batch[i][0] == t[i] and batch[i][1] == l1[i]
    batch = StackDataset(t=t, l=l1).__getitems__([0, 1, 2, 3])
    for i in range(4):
        assert batch[i]["t"] == t[i] and batch[i]["l"] == l1[i]
    with pytest.raises(IndexError):
        StackDataset(t, l1).__getitems__([0, 4])
    with pytest.raises(
        ValueError, match="Nested dataset's output size mismatch. Expected 4, got 3"
    ):
        StackDataset(GetItemsDataset(short=True), l1).__getitems__([0, 1, 2, 3])


def test_concat_dataset():
    result = ConcatDataset([[0], [1]])
    assert (len(result), result[0], result[1]) == (2, 0, 1)
    result = ConcatDataset([[0, 1, 2, 3, 4], [5, 6, 7, 8, 9]])
    assert (len(result), result[0], result[5]) == (10, 0, 5)
    result = ConcatDataset([[0, 1, 2, 3, 4], [], [5, 6, 7, 8, 9]])
    assert (len(result), result[0], result[5]) == (10, 0, 5)
    with pytest.raises(IndexError):
        ConcatDataset([[0, 1, 2, 3, 4], [5, 6, 7, 8, 9]])[11]


def test_add_dataset():
    d1, d2, d3 = (TensorDataset(np.random.rand(7, 3, 28, 28), np.random.rand(7)) for _ in range(3))
    result = d1 + d2 + d3
    assert len(result) == 21
    assert_equal(d1[0][0], result[0][0])
    assert_equal(d2[0][0], result[7][0])
    assert_equal(d3[0][0], result[14][0])


def test_concat_iterable_dataset_err():
    d1 = TensorDataset(np.random.rand(7, 3), np.random.rand(7))
    it1, it2 = CountingIterableDataset(5), CountingIterableDataset(10)
    for parts in ([d1, it2, it1], [it2], [it1, d1]):
        with pytest.raises(AssertionError, match="does not support IterableDataset"):
            ConcatDataset(parts)


# ---------------------------------------------------------------------- TestDataLoader


class ErrorDataset(Dataset):
    def __init__(self, size):
        self.size = size

    def __len__(self):
        return self.size


class SegfaultDataset(Dataset):
    def __init__(self, size):
        self.size = size

    def __getitem__(self, idx):
        return ctypes.string_at(0)

    def __len__(self):
        return self.size


class SleepDataset(Dataset):
    def __init__(self, size, sleep_sec):
        self.size, self.sleep_sec, self.slept = size, sleep_sec, False

    def __getitem__(self, idx):
        if not self.slept:
            time.sleep(self.sleep_sec)
            self.slept = True
        return idx

    def __len__(self):
        return self.size


class SeedDataset(Dataset):
    """torch returns torch.initial_seed(); numpy's analogue is the legacy RNG's seed word."""

    def __init__(self, size):
        self.size = size

    def __getitem__(self, idx):
        return int(np.random.get_state()[1][0])

    def __len__(self):
        return self.size


class WorkerSpecificIterableDataset(IterableDataset):
    def __init__(self, sizes_for_all_workers):
        self.sizes_for_all_workers = sizes_for_all_workers

    def __iter__(self):
        worker_info = get_worker_info()
        assert worker_info is not None
        return iter(range(self.sizes_for_all_workers[worker_info.id]))

    def __len__(self):
        return sum(self.sizes_for_all_workers)


class SynchronizedSeedDataset(Dataset):
    """Every worker blocks until all have started, so each one loads one sample."""

    def __init__(self, size, batch_size, num_workers):
        assert size >= num_workers * batch_size
        self.count = mp.get_context("fork").Value("i", 0, lock=True)
        self.barrier = mp.get_context("fork").Semaphore(0)
        self.num_workers, self.size = num_workers, size

    def sync_once(self):
        with self.count.get_lock():
            self.count.value += 1
            if self.count.value == self.num_workers:
                self.barrier.release()
        self.barrier.acquire()
        self.barrier.release()

    def __getitem__(self, idx):
        self.sync_once()
        return get_worker_info().seed

    def __len__(self):
        return self.size


class EmptyTensorDataset(Dataset):
    def __init__(self, n):
        self.n = n

    def __len__(self):
        return self.n

    def __getitem__(self, any):
        return np.empty(0, dtype=np.float32)


class ErrorIterableDataset(IterableDataset):
    def __iter__(self):
        raise RuntimeError("Error in __iter__")


def error_worker_init_fn(_):
    raise RuntimeError("Error in worker_init_fn")


def init_fn(worker_id):
    np.random.seed(12345)


class BulkLoadingDataset(Dataset):
    def __init__(self, length):
        self.length = length

    def __getitem__(self, indices):
        assert isinstance(indices, (list, tuple))
        return np.asarray(indices)

    def __len__(self):
        return self.length


class BulkLoadingSampler:
    def __init__(self, dataset, batch_size):
        self.dataset, self.batch_size = dataset, batch_size

    def __iter__(self):
        perm = np.random.permutation(len(self.dataset))
        for start in range(0, len(perm), self.batch_size):
            yield perm[start : start + self.batch_size].tolist()

    def __len__(self):
        return int(math.ceil(len(self.dataset) / float(self.batch_size)))


class MultiEpochDataset(IterableDataset):
    def __init__(self, length):
        self.length = length

    def __iter__(self):
        worker_info = get_worker_info()
        assert worker_info is not None
        for _ in range(self.length // worker_info.num_workers):
            yield worker_info.id

    def __len__(self):
        return self.length


class CustomList(list):
    pass


class CustomDict(dict):
    pass


@pytest.fixture(params=[False, True], ids=["fresh_workers", "persistent_workers"])
def persistent(request):
    return request.param


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    values = rng.standard_normal((100, 2, 3, 5)).astype(np.float32)
    labels = np.tile(rng.permutation(50), 2)
    return values, labels, TensorDataset(values, labels)


@pytest.fixture
def make(persistent):
    def get_data_loader(dataset, **kwargs):
        use = kwargs.get("persistent_workers", persistent)
        if use and kwargs.get("num_workers", 0) == 0:
            use = False
        kwargs["persistent_workers"] = use
        return DataLoader(dataset, **kwargs)

    return get_data_loader


def check_sequential(loader, values, labels):
    batch_size = loader.batch_size
    if batch_size is None:
        for idx, (sample, target) in enumerate(loader):
            assert_equal(sample, values[idx])
            assert_equal(target, labels[idx])
        assert idx == len(values) - 1
        return
    for i, (sample, target) in enumerate(loader):
        idx = i * batch_size
        assert_equal(sample, values[idx : idx + batch_size])
        assert_equal(target, labels[idx : idx + batch_size])
    assert i == math.floor((len(values) - 1) / batch_size)


def check_shuffle(loader, values, labels):
    found = collections.Counter()
    batch_size = loader.batch_size
    seen = 0
    for i, (samples, targets) in enumerate(loader):
        if batch_size is None:
            samples, targets = A(samples)[None], A(targets)[None]
        for sample, target in zip(A(samples), A(targets)):
            matches = [j for j, v in enumerate(values) if np.array_equal(v, sample)]
            assert len(matches) == 1
            assert found[matches[0]] == 0
            found[matches[0]] += 1
            assert target == labels[matches[0]]
            seen += 1
        assert seen == (i + 1) * (batch_size or 1)
    assert i == math.floor((len(values) - 1) / (batch_size or 1))


def check_error(loader):
    it = iter(loader)
    errors = 0
    while True:
        try:
            next(it)
        except NotImplementedError:
            errors += 1
        except StopIteration:
            assert errors == math.ceil(float(len(loader.dataset)) / loader.batch_size)
            return


def test_error_in_init(make, data):
    for num_workers in [0, 2]:
        loader = make(ErrorIterableDataset(), num_workers=num_workers)
        with pytest.raises(RuntimeError, match="Error in __iter__"):
            list(iter(loader))
    loader = make(data[2], num_workers=2, worker_init_fn=error_worker_init_fn)
    with pytest.raises(RuntimeError, match="Error in worker_init_fn"):
        list(iter(loader))


def test_typing():
    class SomeDatasetClass(Dataset[List[np.ndarray]]):  # noqa: UP006
        pass

    def _create_dataloader(is_train: bool) -> DataLoader[List[np.ndarray]]:  # noqa: UP006
        pass


RANDOM_DATASET = """
import numpy as np
from mlx_audio.data import DataLoader, IterableDataset

class RandomDataset(IterableDataset):
    def __init__(self, n, size):
        self.n, self.size = n, size
    def __iter__(self):
        return self
    def __next__(self):
        if self.n <= 0:
            raise StopIteration
        self.n -= 1
        return np.random.randn(*self.size).astype(np.float32)
"""

FD_LIMIT_SCRIPT = (
    RANDOM_DATASET
    + """
import resource

if __name__ == "__main__":
    keep_alive = []
    resource.setrlimit(resource.RLIMIT_NOFILE, (100, 100))
    for t in DataLoader(RandomDataset(200, (2, 2)), multiprocessing_context="fork", num_workers=1,
                        persistent_workers=PERSISTENT):
        t.max(axis=0)
        keep_alive.append(t)
    assert len(keep_alive) == 200
"""
)


def test_fd_limit_exceeded(persistent):
    # DIFFERENCE: torch shares tensors through file descriptors and raises with advice at
    # ulimit -n; our batches are copied out of shared memory, so the loop simply completes.
    subprocess.run(
        [sys.executable, "-c", FD_LIMIT_SCRIPT.replace("PERSISTENT", str(persistent))],
        check=True,
        timeout=120,
    )


def test_invalid_assign_after_init(make, data):
    dl = make(data[2])
    for attr in ("batch_size", "sampler", "batch_sampler", "drop_last", "dataset"):
        with pytest.raises(ValueError):
            setattr(dl, attr, {})


def test_sequential_nonbatch(make, data):
    check_sequential(make(data[2], batch_size=None), data[0], data[1])


def test_sequential_batch(make, data):
    check_sequential(make(data[2]), data[0], data[1])
    check_sequential(make(data[2], batch_size=2), data[0], data[1])


def test_bulk_loading_nobatch(make):
    n = 35
    ds = BulkLoadingDataset(n)
    sampler = BulkLoadingSampler(ds, batch_size=4)
    for num_workers in [0, 4]:
        dl = make(ds, num_workers=num_workers, batch_size=None, sampler=sampler)
        samples = list(dl)
        assert set(np.concatenate([A(s) for s in samples]).tolist()) == set(range(n))


def test_growing_dataset(make):
    dataset = [np.ones(4) for _ in range(4)]
    dataloader_seq = make(dataset, shuffle=False)
    dataloader_shuffle = make(dataset, shuffle=True)
    dataset.append(np.ones(4))
    assert len(dataloader_seq) == 5
    assert len(dataloader_shuffle) == 5


def test_multiple_dataloaders(make, data):
    # torch's test only interleaves the two; the port also checks what each one yields
    values, labels, _ = data

    def check(batch, index):
        assert_equal(batch[0], values[index : index + 1])
        assert_equal(batch[1], labels[index : index + 1])

    for context in START_METHODS:
        loader1_it = iter(make(data[2], num_workers=1))
        loader2_it = iter(make(data[2], num_workers=2, multiprocessing_context=context))
        check(next(loader1_it), 0)
        check(next(loader1_it), 1)
        check(next(loader2_it), 0)
        check(next(loader2_it), 1)
        check(next(loader1_it), 2)
        check(next(loader2_it), 2)
        del loader1_it
        del loader2_it


def _run_in_process(target, *args):
    """torch's ErrorTrackingProcess: run ``target`` in a spawned process and return (exit
    code, the exception it raised)."""
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    p = ctx.Process(target=_tracked, args=(child, target, *args))
    p.start()
    p.join(JOIN_TIMEOUT)
    try:
        assert not p.is_alive(), "the loader process did not finish"
        return p.exitcode, (parent.recv() if parent.poll() else None)
    finally:
        p.terminate()


def _tracked(conn, target, *args):
    with open(os.devnull, "w") as devnull:
        os.dup2(devnull.fileno(), sys.stderr.fileno())
    try:
        target(*args)
        conn.send(None)
    except Exception as e:
        conn.send((type(e).__name__, str(e), isinstance(e, RuntimeError)))
        raise


def _test_segfault():
    dataloader = DataLoader(SegfaultDataset(10), batch_size=2, num_workers=2)
    _ = next(iter(dataloader))


def _test_timeout(persistent_workers):
    dataloader = DataLoader(
        SleepDataset(10, 3),
        batch_size=2,
        num_workers=2,
        timeout=1,
        persistent_workers=persistent_workers,
    )
    _ = next(iter(dataloader))


def _test_large_sampler_indices(persistent_workers):
    dataloader = DataLoader(
        EmptyTensorDataset(10000000),
        batch_size=40960,
        persistent_workers=persistent_workers,
        num_workers=1,
    )
    it = iter(dataloader)
    for x in it:
        assert x.size == 0
        raise RuntimeError("My Error")


def test_segfault():
    code, (kind, message, is_runtime) = _run_in_process(_test_segfault)
    assert code != 0 and is_runtime, (kind, message)
    assert __import__("re").search(
        r"DataLoader worker \(pid \d+\) is killed by signal: ", message
    ), message


def test_timeout(persistent):
    code, (kind, message, is_runtime) = _run_in_process(_test_timeout, persistent)
    assert code != 0 and is_runtime, (kind, message)
    assert __import__("re").search(r"DataLoader timed out after \d+ seconds", message), message


def test_large_sampler_indices(persistent):
    code, (kind, message, is_runtime) = _run_in_process(_test_large_sampler_indices, persistent)
    assert code != 0 and is_runtime and "My Error" in message, (kind, message)


def test_invalid_ctor_args_combinations(make, data):
    dataset = data[2]
    with pytest.raises(ValueError, match="num_workers option should be non-negative"):
        make(dataset, num_workers=-1)
    with pytest.raises(ValueError, match="timeout option should be non-negative"):
        make(dataset, timeout=-1)
    with pytest.raises(
        ValueError, match="batch_size=None option disables auto-batching and is mutually exclusive"
    ):
        make(dataset, batch_size=None, drop_last=True)
    # torch's BatchSampler words, which its DataLoader raises too (torch/utils/data/sampler.py)
    for bad in (0, -1, 2.5, True):
        with pytest.raises(
            ValueError,
            match=rf"batch_size should be a positive integer value, but got batch_size={bad}$",
        ):
            make(dataset, batch_size=bad)
        with pytest.raises(ValueError, match="batch_size should be a positive integer value"):
            BatchSampler(SequentialSampler(dataset), bad, False)
    with pytest.raises(
        ValueError, match="drop_last should be a boolean value, but got drop_last=3$"
    ):
        BatchSampler(SequentialSampler(dataset), 3, 3)
    valid_ctx = mp.get_all_start_methods()[-1]
    with pytest.raises(ValueError, match=r"multi-process loading \(num_workers > 0\), but got"):
        make(dataset, num_workers=0, multiprocessing_context=valid_ctx)
    with pytest.raises(ValueError, match="should specify a valid start method in"):
        make(dataset, num_workers=1, multiprocessing_context="bad")
    with pytest.raises(
        TypeError, match="multiprocessing_context option should be a valid context "
    ):
        make(dataset, num_workers=1, multiprocessing_context=object())

    sampler = SequentialSampler(dataset)
    batch_sampler = BatchSampler(sampler, 3, False)
    for kwargs in (
        dict(batch_size=11, sampler=sampler, shuffle=True),
        dict(batch_sampler=batch_sampler, sampler=sampler, shuffle=True),
        dict(batch_sampler=batch_sampler, sampler=sampler, shuffle=3),
    ):
        with pytest.raises(ValueError, match="sampler option is mutually exclusive with shuffle"):
            make(dataset, **kwargs)
    for kwargs in (
        dict(batch_size=11),
        dict(shuffle=True),
        dict(drop_last=True),
        dict(drop_last=3),
    ):
        with pytest.raises(ValueError, match="batch_sampler option is mutually exclusive with"):
            make(dataset, batch_sampler=batch_sampler, **kwargs)

    iterable = CountingIterableDataset(20)
    for kwargs, what in (
        (dict(shuffle=True), "shuffle"),
        (dict(shuffle=3), "shuffle"),
        (dict(sampler=SequentialSampler(iterable)), "sampler"),
        (dict(sampler=3), "sampler"),
        (dict(batch_sampler=BatchSampler(SequentialSampler(iterable), 3, False)), "batch_sampler"),
        (dict(batch_sampler=3), "batch_sampler"),
    ):
        with pytest.raises(
            ValueError, match=f"DataLoader with IterableDataset: expected unspecified {what}"
        ):
            make(iterable, **kwargs)


def test_builtin_collection_conversion(make):
    for coll_ty in (list, tuple):
        for num_workers in (0, 1):
            for dataset in (CountingDataset(20), CountingIterableDataset(20)):
                fetched = coll_ty(make(dataset, batch_size=None, num_workers=num_workers))
                assert fetched == coll_ty(range(20))
                fetched = coll_ty(make(dataset, batch_size=2, num_workers=num_workers))
                assert [A(b).tolist() for b in fetched] == [[i, i + 1] for i in range(0, 20, 2)]
                assert type(fetched) is coll_ty


def test_iterable_style_dataset(make):
    before = children()
    dataset = CountingIterableDataset(20)
    dataloader = make(dataset, batch_size=None)
    fetched = list(dataloader)
    assert len(fetched) == 20
    for i, d in enumerate(fetched):
        assert isinstance(d, int) and d == i  # non-batched: ints stay ints
    assert len(dataloader) == len(dataset)

    num_workers = 3
    sizes_for_all_workers = [0, 4, 20]
    expected = sorted(
        functools.reduce(operator.iadd, (list(range(s)) for s in sizes_for_all_workers), [])
    )
    for prefetch_factor in [2, 3, 4]:
        dataset = WorkerSpecificIterableDataset(sizes_for_all_workers)
        dataloader = make(
            dataset, num_workers=num_workers, batch_size=None, prefetch_factor=prefetch_factor
        )
        fetched = sorted(iter(dataloader))
        assert len(fetched) == len(expected)
        for a, b in zip(fetched, expected):
            assert isinstance(a, int) and a == b
        assert len(dataloader) == len(dataset)
        # NOTE [ IterableDataset and __len__ ]: a warning once more samples than len() arrive,
        # but only after len(dataloader) was asked
        dataset = CountingIterableDataset(20)
        dataloader = make(dataset, num_workers=num_workers, prefetch_factor=prefetch_factor)
        it = iter(dataloader)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            for _ in range(40):
                next(it)
        assert len(dataloader) == len(dataset) == 20
        it = iter(dataloader)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            for _ in range(20):
                next(it)
        for _ in range(3):
            with pytest.warns(
                UserWarning,
                match=r"but [0-9]+ samples have been fetched\. For multiprocessing data-loading, this",
            ):
                next(it)
        del it, dataloader

    dataset = CountingIterableDataset(20)
    fetched = list(make(dataset, batch_size=7))
    assert [A(b).tolist() for b in fetched] == [
        list(range(7)),
        list(range(7, 14)),
        list(range(14, 20)),
    ]

    for prefetch_factor in [2, 3, 4]:
        dataset = WorkerSpecificIterableDataset(sizes_for_all_workers)
        fetched = list(
            make(dataset, num_workers=num_workers, batch_size=7, prefetch_factor=prefetch_factor)
        )
        assert len(fetched) == 4
        assert {tuple(A(t).tolist()) for t in fetched} == {
            tuple(range(4)),
            tuple(range(7)),
            tuple(range(7, 14)),
            tuple(range(14, 20)),
        }

    fetched = list(make(CountingIterableDataset(20), batch_size=7, drop_last=True))
    assert [A(b).tolist() for b in fetched] == [list(range(7)), list(range(7, 14))]
    for prefetch_factor in [2, 3, 4]:
        dataset = WorkerSpecificIterableDataset(sizes_for_all_workers)
        fetched = list(
            make(
                dataset,
                num_workers=num_workers,
                batch_size=7,
                drop_last=True,
                prefetch_factor=prefetch_factor,
            )
        )
        assert {tuple(A(t).tolist()) for t in fetched} == {tuple(range(7)), tuple(range(7, 14))}
    if not make(dataset, num_workers=1).persistent_workers:
        no_children_left(before)


def test_chain_iterable_style_dataset(make, data):
    dataset1, dataset2 = CountingIterableDataset(20), CountingIterableDataset(15)
    expected = list(range(20)) + list(range(15))
    for num_workers in [0, 1]:
        for chained in [dataset1 + dataset2, ChainDataset([dataset1, dataset2])]:
            fetched = list(make(chained, num_workers=num_workers))
            assert len(fetched) == len(expected)
            for e, d in zip(expected, fetched):
                assert isinstance(d, mx.array) and A(d).tolist() == [e]
    with pytest.raises(AssertionError, match="ChainDataset only supports IterableDataset"):
        list(iter(dataset1 + data[2]))
    with pytest.raises(AssertionError, match="ChainDataset only supports IterableDataset"):
        list(iter(ChainDataset([dataset1, data[2]])))


def test_multiprocessing_contexts(make):
    reference = [[0, 1, 2], [3, 4, 5], [6, 7, 8], [9, 10]]
    for ctx in START_METHODS:
        loader = make(CountingDataset(11), multiprocessing_context=ctx, num_workers=3, batch_size=3)
        assert [A(b).tolist() for b in loader] == reference
        if ctx is not None:
            loader = make(
                CountingDataset(11),
                multiprocessing_context=mp.get_context(ctx),
                num_workers=3,
                batch_size=3,
            )
            assert [A(b).tolist() for b in loader] == reference


def test_worker_seed(make):
    num_workers = 6
    dataset = SynchronizedSeedDataset(num_workers, 1, num_workers)
    seeds = {int(A(batch)[0]) for batch in make(dataset, batch_size=1, num_workers=num_workers)}
    assert len(seeds) == num_workers


def test_worker_seed_reproducibility():
    num_workers = 6
    dataset = SynchronizedSeedDataset(num_workers, 1, num_workers)

    def get_dataloader():
        return DataLoader(dataset, batch_size=1, num_workers=num_workers, generator=generator(42))

    assert {int(A(b)[0]) for b in get_dataloader()} == {int(A(b)[0]) for b in get_dataloader()}


def test_multi_epochs_reproducibility(make):
    num_workers, batch_size = 2, 10
    dataloader = make(
        MultiEpochDataset(batch_size * num_workers),
        batch_size=batch_size,
        shuffle=False,
        num_workers=num_workers,
    )
    for _ in range(3):
        for batch_idx, sample in enumerate(dataloader):
            assert A(sample).tolist() == [batch_idx % num_workers] * batch_size


def test_worker_init_fn(make):
    dataloader = make(SeedDataset(4), batch_size=2, num_workers=2, worker_init_fn=init_fn)
    for batch in dataloader:
        assert A(batch).tolist() == [12345, 12345]


class WorkerInfoDataset(Dataset):
    def __init__(self, size):
        self.size = size

    def __getitem__(self, idx):
        return np.array(self.value)

    def __len__(self):
        return self.size


def _worker_info_init_fn(worker_id):
    worker_info = get_worker_info()
    assert worker_id == worker_info.id
    assert worker_id < worker_info.num_workers
    assert isinstance(worker_info.dataset, WorkerInfoDataset)
    assert not hasattr(worker_info.dataset, "value")
    for attr, value in (("id", 3999), ("a", 3)):
        try:
            setattr(worker_info, attr, value)
        except RuntimeError as e:
            assert str(e) == "Cannot assign attributes to WorkerInfo objects"
        else:
            raise AssertionError("WorkerInfo should be read-only")
    for k in ["id", "num_workers", "seed", "dataset"]:
        assert f"{k}=" in repr(worker_info)
    worker_info.dataset.value = [worker_id, os.getpid()]


def test_get_worker_info():
    assert get_worker_info() is None
    dataset = WorkerInfoDataset(6)
    data = [
        A(d)
        for d in DataLoader(
            dataset, batch_size=2, num_workers=2, worker_init_fn=_worker_info_init_fn
        )
    ]
    data = np.concatenate(data)
    pids = {}
    for worker_id, pid in data.tolist():
        assert pids.setdefault(worker_id, pid) == pid and pid != os.getpid()
    assert sorted(pids) == [0, 1] and len(set(pids.values())) == 2
    assert get_worker_info() is None
    assert not hasattr(dataset, "value")
    with pytest.raises(AttributeError):
        dataset[0]


def test_shuffle(make, data):
    check_shuffle(make(data[2], shuffle=True), data[0], data[1])
    check_shuffle(DataLoader(data[2], batch_size=None, shuffle=True), data[0], data[1])
    check_shuffle(make(data[2], batch_size=2, shuffle=True), data[0], data[1])


def test_shuffle_reproducibility(data):
    for fn in (
        lambda: DataLoader(data[2], shuffle=True, num_workers=0, generator=generator(42)),
        lambda: DataLoader(data[2], shuffle=True, num_workers=2, generator=generator(42)),
    ):
        assert [A(b[0]).tolist() for b in fn()] == [A(b[0]).tolist() for b in fn()]


def test_sequential_and_shuffle_workers(make, data):
    check_sequential(make(data[2], num_workers=4), data[0], data[1])
    check_sequential(make(data[2], batch_size=2, num_workers=4), data[0], data[1])
    check_sequential(
        DataLoader(data[2], batch_size=2, num_workers=4, prefetch_factor=3), data[0], data[1]
    )
    check_shuffle(make(data[2], shuffle=True, num_workers=4), data[0], data[1])
    check_shuffle(make(data[2], batch_size=2, shuffle=True, num_workers=4), data[0], data[1])
    check_shuffle(
        DataLoader(data[2], batch_size=2, shuffle=True, num_workers=4, prefetch_factor=3),
        data[0],
        data[1],
    )


def test_random_sampler(data):
    dataset = data[2]

    def sample_stat(sampler):
        counts = collections.Counter(sampler)
        return (sum(v > 1 for v in counts.values()), min(counts), max(counts), sum(counts.values()))

    n = len(dataset) + 1
    repeated, lo, hi, total = sample_stat(RandomSampler(dataset, replacement=True, num_samples=n))
    assert repeated > 0 and lo >= 0 and hi < len(dataset) and total == n
    assert sample_stat(RandomSampler(dataset)) == (0, 0, len(dataset) - 1, len(dataset))
    n = len(dataset) * 2
    assert sample_stat(RandomSampler(dataset, num_samples=n)) == (
        len(dataset),
        0,
        len(dataset) - 1,
        n,
    )
    n = len(dataset) - 1
    repeated, lo, hi, total = sample_stat(RandomSampler(dataset, num_samples=n))
    assert repeated == 0 and lo >= 0 and hi < len(dataset) and total == n
    n = len(dataset) + 1
    assert sample_stat(RandomSampler(dataset, num_samples=n)) == (1, 0, len(dataset) - 1, n)
    with pytest.raises(
        TypeError, match="replacement should be a boolean value, but got replacement=0"
    ):
        RandomSampler(dataset, replacement=0)


@pytest.mark.parametrize("replacement", [True, False])
def test_random_sampler_len(make, data, replacement):
    num_samples = len(data[2]) + 5
    sampler = RandomSampler(data[2], replacement=replacement, num_samples=num_samples)
    assert len(sampler) == num_samples
    assert sum(1 for _ in sampler) == num_samples
    assert len(make(data[2], batch_size=1, sampler=sampler)) == num_samples
    assert len(make(data[2], batch_size=6, sampler=sampler)) == math.ceil(num_samples / 6)


def test_distributed_sampler_invalid_rank():
    dataset = np.arange(10, dtype=np.int32)
    with pytest.raises(ValueError, match="Invalid rank"):
        DistributedSampler(dataset, 3, 3)
    with pytest.raises(ValueError, match="Invalid rank"):
        DistributedSampler(dataset, 3, -1)


def test_duplicating_data_with_drop_last(make):
    num_processes, num_batches = 4, 9
    data_set = np.arange(num_batches, dtype=np.int32)
    scanned = []
    for i in range(num_processes):
        s = DistributedSampler(data_set, num_processes, i)
        for batch in make(
            data_set, batch_size=int(num_batches / num_processes), drop_last=True, sampler=s
        ):
            scanned.extend(A(batch).tolist())
    assert len(scanned) == len(set(scanned))


def test_sampler_reproducibility(data):
    weights = [0.1, 0.9, 0.4, 0.7, 3.0, 0.6]
    for fn in (
        lambda: RandomSampler(data[2], num_samples=5, replacement=True, generator=generator(42)),
        lambda: RandomSampler(data[2], replacement=False, generator=generator(42)),
        lambda: WeightedRandomSampler(
            weights, num_samples=5, replacement=True, generator=generator(42)
        ),
        lambda: WeightedRandomSampler(
            weights, num_samples=5, replacement=False, generator=generator(42)
        ),
        lambda: SubsetRandomSampler(range(10), generator=generator(42)),
    ):
        assert list(fn()) == list(fn())
    # torch: samplers without a generator draw from the global RNG at each pass, so reseeding
    # it repeats them; ours take numpy's global RNG the same way
    for make_sampler in (
        lambda: RandomSampler(data[2], num_samples=5, replacement=True),
        lambda: RandomSampler(data[2], replacement=False),
        lambda: WeightedRandomSampler(weights, num_samples=5, replacement=True),
        lambda: WeightedRandomSampler(weights, num_samples=5, replacement=False),
        lambda: SubsetRandomSampler(range(10)),
    ):
        sampler = make_sampler()
        np.random.seed(0)
        l1 = list(sampler) + list(sampler)
        np.random.seed(0)
        l2 = list(sampler) + list(sampler)
        assert l1 == l2
        its = (iter(sampler), iter(sampler))
        ls = ([], [])
        for idx in range(len(sampler)):
            for i in range(2):
                if idx == 0:
                    np.random.seed(0)
                ls[i].append(next(its[i]))
        assert ls[0] == ls[1]


def _check_sampler(make, values, **kwargs):
    dl = make(
        TensorDataset(values, np.zeros(len(values))), sampler=range(2, 12), batch_size=2, **kwargs
    )
    assert len(dl) == 5
    for i, (inputs, _target) in enumerate(dl):
        assert len(inputs) == 2
        assert_equal(inputs, values[i * 2 + 2 : i * 2 + 4])


def _check_batch_sampler(make, values, **kwargs):
    batches = []
    for i in range(0, 20, 5):
        batches.append(tuple(range(i, i + 2)))
        batches.append(tuple(range(i + 2, i + 5)))
    dl = make(TensorDataset(values, np.zeros(len(values))), batch_sampler=batches, **kwargs)
    assert len(dl) == 8
    for i, (inputs, _target) in enumerate(dl):
        offset = i * 5 // 2
        size = 2 if i % 2 == 0 else 3
        assert len(inputs) == size
        assert_equal(inputs, values[offset : offset + size])


def test_sampler(make, data):
    _check_sampler(make, data[0])
    _check_sampler(make, data[0], num_workers=4)
    _check_sampler(make, data[0], num_workers=4, multiprocessing_context="spawn")


def test_batch_sampler(make, data):
    _check_batch_sampler(make, data[0])
    _check_batch_sampler(make, data[0], num_workers=4)
    _check_batch_sampler(make, data[0], num_workers=4, multiprocessing_context="spawn")


class OnesDataset(Dataset):
    def __getitem__(self, i):
        return np.ones((2, 3, 4)) * i

    def __len__(self):
        return 1000


def test_numpy(make):
    batch = next(iter(make(OnesDataset(), batch_size=12)))
    assert batch.dtype == mx.float32  # DIFFERENCE: float64 becomes float32 (torch: DoubleTensor)
    assert batch.shape == (12, 2, 3, 4)


def test_error(make):
    check_error(make(ErrorDataset(100), batch_size=2, shuffle=True))


def test_error_workers(make):
    check_error(make(ErrorDataset(41), batch_size=2, shuffle=True, num_workers=4))


def test_partial_workers(make, data):
    """Workers exit even if the iterator is not exhausted."""
    before = children()
    loader = iter(make(data[2], batch_size=2, num_workers=4))
    for i, _ in enumerate(loader):
        if i == 10:
            break
    assert i == 10
    del loader
    if not make(data[2], num_workers=4).persistent_workers:
        no_children_left(before)


def test_len(make, data):
    def check_len(dl, expected):
        assert len(dl) == expected
        assert sum(1 for _ in dl) == expected

    check_len(data[2], 100)
    check_len(make(data[2], batch_size=2), 50)
    check_len(make(data[2], batch_size=3), 34)


def test_iterabledataset_len():
    class SizedStream(IterableDataset):
        def __len__(self):
            return 10

        def __iter__(self):
            return iter(range(10))

    for batch_size, drop_last, expected in (
        (1, False, 10),
        (1, True, 10),
        (2, False, 5),
        (2, True, 5),
        (3, False, 4),
        (3, True, 3),
    ):
        assert (
            len(DataLoader(SizedStream(), batch_size=batch_size, drop_last=drop_last)) == expected
        )


class ScalarDataset(Dataset):
    def __init__(self, dtype):
        self.dtype = dtype

    def __getitem__(self, i):
        return self.dtype()

    def __len__(self):
        return 4


def test_numpy_scalars(make):
    dtypes = {
        np.float64: mx.float32,
        np.float32: mx.float32,
        np.float16: mx.float16,
        np.int64: mx.int64,
        np.int32: mx.int32,
        np.int16: mx.int16,
        np.int8: mx.int8,
        np.uint8: mx.uint8,
    }
    for dt, expected in dtypes.items():
        batch = next(iter(make(ScalarDataset(dt), batch_size=2)))
        assert batch.dtype == expected, (dt, batch.dtype)


def test_default_convert_keep_type():
    data = CustomDict({"a": 1, "b": 2})
    converted = default_convert(data)
    assert converted == data and type(converted) is CustomDict
    data = CustomList([1, 2, 3])
    converted = default_convert(data)
    assert converted == data and type(converted) is CustomList
    assert default_convert(range(2)) == [0, 1]


def test_default_collate_dtype():
    # DIFFERENCE: default_collate returns numpy (the loader makes mx.array of it); Python ints
    # collate to int32 and floats to float32 (torch: int64, float64)
    collated = default_collate([1, 2, -1])
    assert A(collated).tolist() == [1, 2, -1]
    assert collated.dtype == np.int32
    collated = default_collate([1.1, 2.3, -0.9])
    np.testing.assert_allclose(A(collated), [1.1, 2.3, -0.9], rtol=1e-6)
    assert collated.dtype == np.float32
    collated = default_collate([True, False])
    assert A(collated).tolist() == [True, False] and collated.dtype == np.bool_
    arr = ["a", "b", "c"]
    assert default_collate(arr) == arr


def test_default_collate_keep_type():
    collated = default_collate([CustomDict({"a": 1, "b": 2}), CustomDict({"a": 3, "b": 4})])
    assert type(collated) is CustomDict
    assert {k: A(v).tolist() for k, v in collated.items()} == {"a": [1, 3], "b": [2, 4]}
    collated = default_collate([CustomList([1, 2, 3]), CustomList([4, 5, 6])])
    assert type(collated) is CustomList
    assert [A(v).tolist() for v in collated] == [[1, 4], [2, 5], [3, 6]]
    collated = default_collate([range(2), range(2)])
    assert type(collated) is list and [A(v).tolist() for v in collated] == [[0, 0], [1, 1]]


def test_default_collate_bad_numpy_types():
    arr = np.array(["a", "b", "c"])
    assert list(default_collate(arr)) == list(arr)
    with pytest.raises(TypeError):
        default_collate(np.array([[["a", "b", "c"]]]))
    with pytest.raises(TypeError):
        default_collate(np.array([object(), object(), object()]))
    with pytest.raises(TypeError):
        default_collate(np.array([[[object(), object(), object()]]]))


def test_default_collate_numpy_memmap():
    with tempfile.TemporaryFile() as f:
        arr = np.array([[0, 1], [2, 3], [4, 5], [6, 7]])
        arr_memmap = np.memmap(f, dtype=arr.dtype, mode="w+", shape=arr.shape)
        arr_memmap[:] = arr[:]
        arr_new = np.memmap(f, dtype=arr.dtype, mode="r", shape=arr.shape)
        collated = default_collate(list(arr_new))
    assert A(collated).tolist() == arr.tolist()


def test_default_collate_bad_sequence_type():
    batch = [["X"], ["X", "X"]]
    with pytest.raises(RuntimeError):
        default_collate(batch)
    with pytest.raises(RuntimeError):
        default_collate(batch[::-1])


class StringDataset(Dataset):
    def __init__(self):
        self.s = "12345"

    def __len__(self):
        return len(self.s)

    def __getitem__(self, ndx):
        return (self.s[ndx], ndx)


@pytest.mark.parametrize("num_workers", [0, 4])
def test_string_dataloader_shuffle(num_workers):
    # torch's TestStringDataLoader.test_shuffle_pin_memory (CUDA-only there: pin_memory left out)
    loader = DataLoader(StringDataset(), batch_size=2, shuffle=True, num_workers=num_workers)
    for s, n in loader:
        assert isinstance(s[0], str)
        assert isinstance(s, tuple)  # torch: the strings of a tuple field come as a tuple
        assert [int(c) for c in s] == [int(i) + 1 for i in np.array(n)]


def test_excessive_thread_creation_warning(data):
    with pytest.warns(
        UserWarning,
        match=r"excessive worker creation might get DataLoader running slow or even freeze",
    ):
        DataLoader(data[2], batch_size=2, num_workers=1000)


# ---------------------------------------------------------------------- other test classes


class DictDataset(Dataset):
    def __len__(self):
        return 4

    def __getitem__(self, ndx):
        return {
            "a_tensor": np.full((4, 2), ndx, dtype=np.float32),
            "another_dict": {"a_number": ndx},
        }


def test_dict_sequential_batch():
    for persistent_workers in (False, True):
        loader = DataLoader(
            DictDataset(),
            batch_size=2,
            shuffle=False,
            persistent_workers=persistent_workers,
            num_workers=1 if persistent_workers else 0,
        )
        for i, sample in enumerate(loader):
            idx = i * loader.batch_size
            assert set(sample) == {"a_tensor", "another_dict"}
            assert set(sample["another_dict"]) == {"a_number"}
            t = A(sample["a_tensor"])
            assert t.shape == (2, 4, 2) and (t[0] == idx).all() and (t[1] == idx + 1).all()
            n = A(sample["another_dict"]["a_number"])
            assert n.shape == (2,) and n[0] == idx and n[1] == idx + 1


class StartCheckingDataset(Dataset):
    def __init__(self):
        self.data = list(range(10))

    def __len__(self):
        return len(self.data)

    def __getitem__(self, idx):
        assert self.start == 0  # persistent workers keep the dataset as it was at their start
        return self.data[idx]


def test_dataset_not_reset():
    dataset = StartCheckingDataset()
    dataloader = DataLoader(dataset, num_workers=2, persistent_workers=True)
    dataset.start = 0
    for i in range(10):
        for _ in dataloader:
            pass
        dataset.start = i


EARLY_EXIT_SCRIPT = (
    RANDOM_DATASET
    + """

if __name__ == "__main__":
    dl = DataLoader(RandomDataset(64, (28, 28)), batch_size=16, num_workers=2,
                    persistent_workers=True, multiprocessing_context="fork")
    for _ in dl:
        break
"""
)


def test_early_exit():
    subprocess.run([sys.executable, "-c", EARLY_EXIT_SCRIPT], check=True, timeout=60)


class NamedTupleDataset(Dataset):
    Batch = collections.namedtuple("Batch", ["data", "label", "random_tensor"])
    Data = collections.namedtuple("Data", ["positive", "negative"])

    def __len__(self):
        return 4

    def __getitem__(self, ndx):
        return self.Batch(
            data=self.Data(positive=ndx, negative=-ndx),
            label=str(ndx),
            random_tensor=np.random.randn(3).astype(np.float32),
        )


def test_dataloader_with_namedtuple():
    for batch in DataLoader(NamedTupleDataset(), batch_size=2):
        assert isinstance(batch, NamedTupleDataset.Batch)
        assert isinstance(batch.data, NamedTupleDataset.Data)
        assert isinstance(batch.data.positive, mx.array)
    for batch in DataLoader(NamedTupleDataset(), batch_size=None):
        assert isinstance(batch, NamedTupleDataset.Batch)
        assert isinstance(batch.data, NamedTupleDataset.Data)
        assert not isinstance(batch.data.positive, mx.array)


class WorkerQueueDataset(Dataset):
    def __init__(self, data):
        self.data = data
        self.worker_id = None

    def worker_init_fn(self, worker_id):
        self.worker_id = worker_id

    def __getitem__(self, item):
        return self.worker_id, self.data[item]

    def __len__(self):
        return len(self.data)


def test_ind_worker_queue():
    dataset = WorkerQueueDataset(list(range(128)))
    max_num_workers = min(6, max(len(os.sched_getaffinity(0)), 2))
    for batch_size in (8, 16, 32, 64):
        for num_workers in range(1, max_num_workers + 1):
            loader = DataLoader(
                dataset,
                batch_size=batch_size,
                shuffle=False,
                num_workers=num_workers,
                timeout=5,
                worker_init_fn=dataset.worker_init_fn,
            )
            current = 0
            for i, (worker_ids, sample) in enumerate(loader):
                assert A(worker_ids).tolist() == [current] * batch_size
                assert A(sample).tolist() == list(range(i * batch_size, (i + 1) * batch_size))
                current = (current + 1) % num_workers


class SetAffinityDataset(IterableDataset):
    def __iter__(self):
        return iter(os.sched_getaffinity(0))


def test_set_affinity_in_worker_init():
    old_affinity = os.sched_getaffinity(0)
    expected = list(old_affinity)[-1]

    def worker_set_affinity(_):
        os.sched_setaffinity(0, [expected])

    for sample in DataLoader(
        SetAffinityDataset(), num_workers=2, worker_init_fn=worker_set_affinity
    ):
        assert A(sample).tolist() == [expected]
