import numpy as np
import pytest

from mlx_audio.data import BatchSampler, DataLoader, IterableDataset, SequentialSampler

DATA = list(range(10))


class Stream(IterableDataset):
    def __iter__(self):
        yield from range(5)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"batch_size": 0}, "batch_size should be a positive integer value, but got batch_size=0"),
        ({"batch_size": -3}, "batch_size"),
        ({"batch_size": 2.5}, "batch_size"),
        ({"num_workers": -1}, "num_workers"),
        ({"timeout": -1}, "timeout"),
        (
            {"prefetch_factor": 2},
            "prefetch_factor option could only be specified in multiprocessing",
        ),
        ({"num_workers": 2, "prefetch_factor": 0}, "prefetch_factor"),
        ({"persistent_workers": True}, "persistent_workers"),
        ({"sampler": SequentialSampler(DATA), "shuffle": True}, "mutually exclusive"),
        (
            {"batch_sampler": BatchSampler(SequentialSampler(DATA), 2, False), "batch_size": 4},
            "batch_sampler",
        ),
        (
            {"batch_sampler": BatchSampler(SequentialSampler(DATA), 2, False), "drop_last": True},
            "batch_sampler",
        ),
        ({"seed": 1, "generator": np.random.default_rng()}, "seed or generator"),
        ({"seed": -1}, "seed"),
        ({"generator": 3}, "numpy.random.Generator"),
        ({"worker_type": "fiber"}, "worker_type"),
        ({"num_workers": 1, "multiprocessing_context": "teleport"}, "valid start method"),
        ({"multiprocessing_context": "spawn"}, r"num_workers > 0\), but got num_workers=0"),
        ({"collate_fn": 3}, "collate_fn"),
        ({"cpu_transforms": [len, 3]}, "cpu_transforms"),
        ({"batch_size": None, "drop_last": True}, "batch_size=None"),
    ],
)
def test_invalid_arguments_raise_before_any_work(kwargs, message):
    with pytest.raises(ValueError, match=message):
        DataLoader(DATA, **kwargs)


def test_iterable_dataset_rejects_shuffle_and_samplers():
    with pytest.raises(ValueError, match="IterableDataset"):
        DataLoader(Stream(), shuffle=True)
    with pytest.raises(ValueError, match="IterableDataset"):
        DataLoader(Stream(), sampler=SequentialSampler(DATA))


def test_defaults_and_lengths():
    assert DataLoader(DATA, num_workers=2).prefetch_factor == 2
    assert DataLoader(DATA).prefetch_factor is None
    assert len(DataLoader(DATA, batch_size=3)) == 4
    assert len(DataLoader(DATA, batch_size=3, drop_last=True)) == 3
    assert len(DataLoader(DATA, batch_size=None)) == 10
    with pytest.raises(TypeError):
        len(DataLoader(Stream(), batch_size=2))


def test_batch_sampler_and_custom_sampler_are_used():
    batches = list(DataLoader(DATA, batch_sampler=[[3, 1], [0]]))
    assert [b.tolist() for b in batches] == [[3, 1], [0]]
    batches = list(DataLoader(DATA, batch_size=4, sampler=[9, 8, 7, 6, 5]))
    assert [b.tolist() for b in batches] == [[9, 8, 7, 6], [5]]


def test_errors_are_also_the_exception_types_torch_raises():
    """_errors.py: code written against torch (``except AssertionError``, ``pytest.raises(
    RuntimeError)``) catches ours, which are ValueErrors too and keep torch's words first."""
    from mlx_audio.data import ConcatDataset, TensorDataset, WeightedRandomSampler, random_split

    for kind in (AssertionError, ValueError):
        with pytest.raises(kind, match="^datasets should not be an empty iterable"):
            ConcatDataset([])
        with pytest.raises(kind, match="^Size mismatch between tensors"):
            TensorDataset(np.zeros(2), np.zeros(1))
    for kind in (RuntimeError, ValueError):
        with pytest.raises(kind, match="non-negative"):
            WeightedRandomSampler([1.0, -1.0], 2)
        with pytest.raises(kind, match="without replacement"):
            WeightedRandomSampler([1.0, 1.0], 3, replacement=False)
    for lengths in ([3, 3], [0.5, 0.6]):  # counts, and fractions that do not sum to 1
        with pytest.raises(
            ValueError,
            match="^Sum of input lengths does not equal the length of the input dataset!",
        ):
            random_split(range(10), lengths)
