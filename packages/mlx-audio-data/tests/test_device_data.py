"""Device-resident ArrayDataset (NOTE [device-resident data]): batched on the accelerator with one
mx.take per array, the same batches, order and state_dict() as the host path."""

import json
import warnings

import mlx.core as mx
import numpy as np
import pytest
from data_testing import assert_same_batches

from mlx_audio.data import (
    ArrayDataset,
    BatchSampler,
    BucketBatchSampler,
    DataLoader,
    DistributedSampler,
    RandomSampler,
    SequentialSampler,
    Subset,
    TensorDataset,
    random_split,
)
from mlx_audio.data._device import DeviceIndices, device_batches
from mlx_audio.data._loader.fetch import DeviceFetcher


def arrays(n=103):
    rng = np.random.default_rng(0)
    return (
        rng.standard_normal((n, 4, 3)).astype(np.float32),
        rng.integers(0, 10, n).astype(np.int32),
        np.arange(n, dtype=np.int64),
    )


def exact(a, b):
    """Element for element, and the same dtypes (assert_same_batches compares values)."""
    assert_same_batches(a, b)
    for x, y in zip(a, b):
        for u, v in zip(x, y):
            assert isinstance(v, mx.array) and u.dtype == v.dtype and u.shape == v.shape


SETTINGS = {
    "sequential": lambda n: {"batch_size": 16},
    "shuffle+seed": lambda n: {"batch_size": 16, "shuffle": True, "seed": 7},
    "drop_last": lambda n: {"batch_size": 10, "shuffle": True, "seed": 1, "drop_last": True},
    "generator": lambda n: {"batch_size": 8, "shuffle": True},  # + a seeded generator below
    "sampler": lambda n: {"batch_size": 9, "sampler": SequentialSampler(range(n))},
    "distributed": lambda n: {
        "batch_size": 8,
        "sampler": DistributedSampler(range(n), num_replicas=3, rank=1, shuffle=True, seed=4),
    },
    "bucketed": lambda n: {
        "batch_sampler": BucketBatchSampler(
            np.random.default_rng(2).integers(10, 500, n), batch_size=12, num_buckets=4, seed=5
        )
    },
}


@pytest.mark.parametrize("case", list(SETTINGS))
@pytest.mark.parametrize("given", ["mx.array", "device=True"])
def test_same_batches_and_order_as_the_host_path(case, given):
    host_arrays = arrays()
    device = (
        ArrayDataset(*(mx.array(a) for a in host_arrays))
        if given == "mx.array"
        else ArrayDataset(*host_arrays, device=True)
    )
    assert device.on_device and all(isinstance(a, mx.array) for a in device.arrays)

    def make(dataset):
        kwargs = SETTINGS[case](len(host_arrays[0]))
        if case == "generator":
            kwargs["generator"] = np.random.default_rng(3)
        return DataLoader(dataset, **kwargs)

    host, on_device = make(ArrayDataset(*host_arrays)), make(device)
    assert isinstance(on_device._fetcher(), DeviceFetcher)
    for _ in range(2):  # two epochs: each epoch's order from (seed, epoch)
        exact(list(host), list(on_device))
    states = [loader.state_dict() for loader in (host, on_device)]
    if "seed" not in SETTINGS[case](1):  # drawn at random for each loader
        [state.pop("seed") for state in states]
    assert states[0] == states[1]


@pytest.mark.parametrize("stop_at", [0, 4])
def test_mid_epoch_resume_matches_the_host_path(stop_at):
    x, y, i = arrays()

    def make(device):
        return DataLoader(
            ArrayDataset(x, y, i, device=device), batch_size=16, shuffle=True, seed=11
        )

    states = {}
    rests = {}
    for device in (False, True):
        loader = make(device)
        list(loader)  # epoch 0
        for b, _ in enumerate(loader):
            if b == stop_at:
                states[device] = json.loads(json.dumps(loader.state_dict()))
                break
        restored = make(device)
        restored.load_state_dict(states[device])
        rests[device] = list(restored) + list(restored)  # the rest of epoch 1, then epoch 2
    assert states[False] == states[True]
    exact(rests[False], rests[True])
    # and a state saved by the host loader resumes the device one (and back)
    crossed = make(True)
    crossed.load_state_dict(states[False])
    exact(rests[False], list(crossed) + list(crossed))


def test_workers_are_not_used_and_the_loader_says_why_once():
    x, y, _ = arrays()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loader = DataLoader(
            TensorDataset(mx.array(x), mx.array(y)),
            batch_size=16,
            shuffle=True,
            seed=2,
            num_workers=2,
            persistent_workers=True,
        )
        batches = list(loader) + list(loader)
    messages = [str(w.message) for w in caught]
    assert len(messages) == 1 and "num_workers=2 is not used" in messages[0], messages
    assert "device" in messages[0] and loader.worker_pids == []
    assert caught[0].filename == __file__  # the line that made the loader, not its caller's
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        DataLoader(TensorDataset(mx.array(x)), num_workers=1000)  # no workers: no CPU advice
        DataLoader(ArrayDataset(x), num_workers=1000)  # host: torch's advice
    said = [str(w.message) for w in caught]
    assert len(said) == 2 and "is not used" in said[0] and "create 1000 worker" in said[1], said
    host = DataLoader(ArrayDataset(x, y), batch_size=16, shuffle=True, seed=2, num_workers=2)
    exact(list(host) + list(host), batches)


def test_cpu_transforms_are_refused_with_the_alternative():
    x, y, _ = arrays()
    with pytest.raises(ValueError, match="cpu_transforms .* use mlx_transforms"):
        DataLoader(ArrayDataset(x, y, device=True), batch_size=4, cpu_transforms=lambda s: s)


def test_mlx_transforms_and_collate_fn_see_the_device_batch():
    x, y, _ = arrays()
    seen = []

    def scale(batch):
        seen.append(type(batch[0]))
        return batch[0] * 2, batch[1]

    loader = DataLoader(
        ArrayDataset(x, y, device=True), batch_size=32, shuffle=True, seed=0, mlx_transforms=scale
    )
    host = DataLoader(ArrayDataset(x, y), batch_size=32, shuffle=True, seed=0, mlx_transforms=scale)
    exact(list(host), list(loader))
    assert set(seen) == {mx.array}
    collated = DataLoader(
        ArrayDataset(x, y, device=True), batch_size=32, collate_fn=lambda b: {"x": b[0], "y": b[1]}
    )
    first = next(iter(collated))
    assert isinstance(first["x"], mx.array) and np.array_equal(np.array(first["x"]), x[:32])


def test_random_split_subsets_stay_on_the_device():
    x, y, _ = arrays()
    train, val = random_split(ArrayDataset(x, y, device=True), [0.8, 0.2], seed=0)
    host_train, _ = random_split(ArrayDataset(x, y), [0.8, 0.2], seed=0)
    loader = DataLoader(train, batch_size=8, shuffle=True, seed=3)
    assert isinstance(loader._fetcher(), DeviceFetcher)
    exact(list(DataLoader(host_train, batch_size=8, shuffle=True, seed=3)), list(loader))


def test_items_nbytes_and_bounds():
    x, y, _ = arrays()
    data = ArrayDataset(x, y, device=True)
    assert data.nbytes == x.nbytes + y.nbytes and len(data) == len(x)
    row = data[5]
    assert isinstance(row[0], mx.array) and np.array_equal(np.array(row[0]), x[5])
    last = data.__getitems__([-1, 0])
    assert np.array_equal(np.array(last[1]), y[[-1, 0]])
    with pytest.raises(IndexError, match="out of range for 103 samples"):
        data.__getitems__([0, 103])
    with pytest.raises(ValueError, match="same first dimension"):
        ArrayDataset(mx.zeros((3, 2)), np.zeros(4))
    with pytest.raises(ValueError, match="device must be True or False"):
        ArrayDataset(x, device="gpu")
    on_host = ArrayDataset(mx.array(x), y, device=False)  # said so: on the host, copied there
    assert not on_host.on_device and isinstance(on_host.arrays[0], np.ndarray)
    assert ArrayDataset(mx.array(x)).on_device and not ArrayDataset(x).on_device
    unbatched = list(DataLoader(data, batch_size=None))
    exact(list(DataLoader(ArrayDataset(x, y), batch_size=None))[:3], unbatched[:3])


@pytest.mark.parametrize("bad", [103, -104, 10**6])
def test_one_item_out_of_range_raises_as_on_the_host(bad):
    """``data[i]`` (``batch_size=None``, a ``Subset``) is checked as a batch is: MLX reads out
    of bounds unchecked (garbage values, a crash for a large negative index)."""
    x, y, _ = arrays()
    data = ArrayDataset(x, y, device=True)
    with pytest.raises(IndexError, match="out of range for 103 samples"):
        data[bad]
    with pytest.raises(IndexError, match="out of range for 103 samples"):
        Subset(data, [0, bad])[1]
    loader = iter(DataLoader(data, batch_size=None, sampler=[102, bad]))
    assert int(next(loader)[1].item()) == int(y[102])
    with pytest.raises(IndexError, match="out of range for 103 samples"):
        next(loader)
    assert int(data[-103][1].item()) == int(y[0])


@pytest.mark.parametrize("field", [np.array(["a"] * 103), ["a"] * 103, None])
def test_a_field_mlx_cannot_hold_is_refused_naming_its_dtype(field):
    x, _, _ = arrays()
    with pytest.raises(
        ValueError, match=r"takes numeric arrays, got \['float32', '(<U1|object)'\]"
    ):
        ArrayDataset(x, field, device=True)


@pytest.mark.parametrize("case", ["shuffle+seed", "distributed", "bucketed", "sequential"])
def test_rows_move_to_the_device_once_per_epoch(case, monkeypatch):
    """NOTE [device index batches]: the epoch's indices are checked and moved once; a batch is a
    slice of them (no per-batch host checks or conversions), with the host path's batches."""
    host_arrays = arrays()
    calls = []
    rows = ArrayDataset.rows
    monkeypatch.setattr(ArrayDataset, "rows", lambda self, i: calls.append(len(i)) or rows(self, i))
    fetched = []
    gather = DeviceIndices.gather
    monkeypatch.setattr(DeviceIndices, "gather", lambda self: fetched.append(self) or gather(self))
    kwargs = SETTINGS[case](len(host_arrays[0]))
    device = DataLoader(ArrayDataset(*host_arrays, device=True), **kwargs)
    host = DataLoader(ArrayDataset(*host_arrays), **SETTINGS[case](len(host_arrays[0])))
    for epoch in range(2):
        exact(list(host), list(device))
        assert len(calls) == epoch + 1 and len(fetched) == len(device) * (epoch + 1)
    assert calls[0] == sum(len(b) for b in fetched[: len(device)])
    assert all(isinstance(b, list) for b in fetched)  # still the index list, as on the host


def test_subset_rows_and_negative_indices_are_mapped_once():
    x, y, i = arrays()
    order = [int(v) for v in np.random.default_rng(1).permutation(len(x))[:50]] + [-1, -2]
    nested = Subset(Subset(ArrayDataset(x, y, i, device=True), order), list(range(40, -12, -1)))
    host = Subset(Subset(ArrayDataset(x, y, i), order), list(range(40, -12, -1)))
    sampler = BatchSampler(RandomSampler(host, seed=3), 7, drop_last=False)
    loader = DataLoader(nested, batch_sampler=sampler)
    batches = device_batches(nested, sampler.index_batches())
    assert all(isinstance(b, DeviceIndices) for b in batches)
    exact(list(DataLoader(host, batch_sampler=sampler)), list(loader))


class ListBatches:
    """A user's batch_sampler: plain lists, consumed lazily (the per-batch path)."""

    def __init__(self, batches):
        self.batches = batches

    def __iter__(self):
        return iter([b.tolist() for b in self.batches])

    def __len__(self):
        return len(self.batches)


class ArrayBatches(ListBatches):
    """A batch_sampler with the epoch's index arrays (as BucketBatchSampler)."""

    def index_batches(self):
        return list(self.batches)


@pytest.mark.parametrize("bad", [103, -104])
@pytest.mark.parametrize("kind", [ArrayBatches, ListBatches])
def test_an_index_out_of_range_raises_for_its_batch_as_on_the_host(bad, kind):
    """An epoch whose indices are not all valid keeps the per-batch path: the batches before
    the bad one are yielded, its IndexError is raised, and the pass goes on (as on the host)."""
    x, y, _ = arrays()
    batches = [np.arange(0, 8), np.array([1, bad, 2]), np.arange(8, 16)]
    results = {}
    for device in (False, True):
        it = iter(DataLoader(ArrayDataset(x, y, device=device), batch_sampler=kind(batches)))
        first = next(it)
        with pytest.raises(IndexError, match="out of range for 103 samples"):
            next(it)
        results[device] = [first, next(it)]
        assert next(it, None) is None
    exact(results[False], results[True])
    given = list(batches)
    assert device_batches(ArrayDataset(x, device=True), given) is given
    given[1] = np.array([1, 2])
    assert isinstance(
        next(iter(device_batches(ArrayDataset(x, device=True), given))), DeviceIndices
    )


@pytest.mark.parametrize("device", [False, True])
def test_a_stack_of_array_datasets_batches_as_torchs_tensor_datasets(device):
    """``StackDataset`` over ``ArrayDataset`` s (and a ``Subset`` of one), as torch's over
    ``TensorDataset`` s: each part of a batch is its dataset's fields, collated (the array
    datasets' column-wise ``__getitems__`` was taken for a list of samples)."""
    from mlx_audio.data import StackDataset

    x, y, _ = arrays(10)
    data = ArrayDataset(x, y, device=device)
    loader = DataLoader(StackDataset(data, Subset(data, list(range(9, -1, -1)))), batch_size=4)
    first, reversed_ = next(iter(loader))
    assert np.array_equal(np.array(first[0]), x[:4]) and np.array_equal(np.array(first[1]), y[:4])
    assert np.array_equal(np.array(reversed_[1]), y[9:5:-1])
