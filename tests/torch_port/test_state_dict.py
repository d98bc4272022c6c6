"""A port of torchdata's ``test/stateful_dataloader/test_state_dict.py`` to ``mlx_audio.data``.

Each test keeps torchdata's name, datasets, interruption points and assertion (the batches after
``load_state_dict`` equal the ones the interrupted run went on to yield); ``torch.randint`` and
``torch.get_rng_state`` become numpy's global RNG. Left out: tests that read torchdata's internal
state layout (``_snapshot``/``_worker_snapshots``). DIFFERENCES (docs/api/data.md): a sampler's
random order comes from ``seed=`` (a pure function of seed and epoch) instead of a stateful
``torch.Generator``; a map-style state resumes with any ``num_workers`` (torchdata refuses);
``snapshot_every_n_steps`` is accepted and has no effect (every state is exact).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator

import numpy as np
import pytest

from mlx_audio.data import (
    DataLoader,
    Dataset,
    IterableDataset,
    RandomSampler,
    Sampler,
    StatefulDataLoader,
    get_worker_info,
)


class DummyIterator(Iterator):
    def __init__(self, samples, shuffle, include_generator):
        self.samples, self.shuffle, self.include_generator = samples, shuffle, include_generator
        self.size = len(samples)
        self.i = 0

    def __iter__(self):
        return self

    def __next__(self):
        if self.i >= len(self.samples):
            raise StopIteration
        i = int(np.random.randint(self.size)) if self.shuffle else self.i
        self.i += 1
        return self.samples[i]

    def state_dict(self):
        sd = {"nest": {"i": self.i}}
        if self.include_generator:
            sd["nest"]["g"] = _rng_state()
        return sd

    def load_state_dict(self, state_dict):
        self.i = state_dict["nest"]["i"]
        if self.include_generator:
            _set_rng_state(state_dict["nest"]["g"])


def _rng_state():
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return [name, keys.tolist(), pos, has_gauss, cached]


def _set_rng_state(state):
    name, keys, pos, has_gauss, cached = state
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))


class DummySamplerIterator(Iterator):
    def __init__(self, size):
        self.size = size
        self.i = 0

    def __next__(self):
        if self.i >= self.size:
            raise StopIteration
        self.i += 1
        return self.i - 1

    def state_dict(self):
        return {"i": self.i}

    def load_state_dict(self, state_dict):
        self.i = state_dict["i"]


class DummySampler(Sampler):
    def __init__(self, size):
        self.size = size

    def __iter__(self):
        return DummySamplerIterator(self.size)

    def __len__(self):
        return self.size


class DummyIterableDataset(IterableDataset):
    def __init__(self, sizes_for_all_workers, shuffle=False, include_generator=True):
        self.sizes_for_all_workers = sizes_for_all_workers
        self.shuffle, self.include_generator = shuffle, include_generator

    def __iter__(self):
        worker_info = get_worker_info()
        sizes = self.sizes_for_all_workers if worker_info else [sum(self.sizes_for_all_workers)]
        worker_id = worker_info.id if worker_info else 0
        start = sum(sizes[:worker_id])
        return DummyIterator(
            list(range(start, start + sizes[worker_id])), self.shuffle, self.include_generator
        )


class DummyMapDataset(Dataset):
    def __init__(self, size, shuffle, include_generator=True):
        self.size = size
        self.data = [
            {"id": i, "strcol": f"strcol_{i}", "listcol": [i, i + 1, i + 2]} for i in range(size)
        ]
        self.shuffle, self.include_generator = shuffle, include_generator

    def __len__(self):
        return self.size

    def __getitem__(self, i):
        if self.shuffle:
            i = int(np.random.randint(self.size))
        return self.data[i]

    def state_dict(self):
        return {"g": _rng_state()} if self.include_generator else {}

    def load_state_dict(self, state_dict):
        if self.include_generator:
            _set_rng_state(state_dict["g"])


class GeneratorIterable(IterableDataset):
    def __init__(self, sizes_for_all_workers, increment_epoch=False):
        self.sizes_for_all_workers = sizes_for_all_workers
        self.i = 0
        self.resume = None
        self.epoch = 0
        self.increment_epoch = increment_epoch

    def __iter__(self):
        worker_info = get_worker_info()
        sizes = self.sizes_for_all_workers if worker_info else [sum(self.sizes_for_all_workers)]
        worker_id = worker_info.id if worker_info else 0
        self.i = 0
        if self.resume is not None:
            self.i = self.resume
            self.resume = None
        start = sum(sizes[:worker_id])
        for i in range(start + self.i, start + sizes[worker_id]):
            self.i += 1
            yield (i, self.epoch)
        self.i = 0
        if self.increment_epoch:
            self.epoch += 1

    def state_dict(self):
        return {"i": self.i, "epoch": self.epoch}

    def load_state_dict(self, state):
        self.resume = state["i"]
        self.epoch = state["epoch"]


class GeneratorIterableNoState(IterableDataset):
    def __init__(self, sizes_for_all_workers):
        self.sizes_for_all_workers = sizes_for_all_workers

    def __iter__(self):
        worker_info = get_worker_info()
        sizes = self.sizes_for_all_workers if worker_info else [sum(self.sizes_for_all_workers)]
        worker_id = worker_info.id if worker_info else 0
        start = sum(sizes[:worker_id])
        yield from range(start, start + sizes[worker_id])


def identity(x):
    return x


def normalise(batches):
    """Our batches keep Python values; tuples of a collate_fn=identity batch compare as lists."""
    return json.loads(json.dumps(batches))


CASES = list(itertools.product([None, 7], [0, 1, 10]))


def run_and_checkpoint(make_dataset, interrupt, **kwargs):
    dl = DataLoader(make_dataset(), collate_fn=identity, **kwargs)
    it = iter(dl)
    for _ in range(interrupt):
        next(it)
    state_dict = dl.state_dict()
    exp = list(it)
    dl = DataLoader(make_dataset(), collate_fn=identity, **kwargs)
    dl.load_state_dict(state_dict)
    assert normalise(list(dl)) == normalise(exp)


@pytest.mark.parametrize(
    "num_workers, pw", [(0, False), (3, False), (3, True)], ids=["no_mp", "mp_x", "mp_pw"]
)
@pytest.mark.parametrize("batch_size, interrupt", CASES)
def test_iterable(num_workers, pw, batch_size, interrupt):
    run_and_checkpoint(
        lambda: DummyIterableDataset([0, 100, 37]),
        interrupt,
        num_workers=num_workers,
        persistent_workers=pw,
        batch_size=batch_size,
    )


@pytest.mark.parametrize("num_workers, interrupt", list(itertools.product([0, 3], [0, 1, 10])))
def test_iterable_random_state(num_workers, interrupt):
    run_and_checkpoint(
        lambda: DummyIterableDataset([0, 100, 37], shuffle=True),
        interrupt,
        num_workers=num_workers,
        batch_size=7,
    )


@pytest.mark.parametrize("num_workers, pw", [(3, False), (3, True)], ids=["mp_x", "mp_pw"])
@pytest.mark.parametrize("batch_size, interrupt", CASES)
@pytest.mark.parametrize("shuffle", [False, True])
def test_map(num_workers, pw, batch_size, interrupt, shuffle):
    dataset = DummyMapDataset(100, shuffle=shuffle)
    kwargs = dict(num_workers=num_workers, persistent_workers=pw, batch_size=batch_size)
    run_and_checkpoint(
        lambda: dataset, interrupt, sampler=RandomSampler(dataset, seed=13), **kwargs
    )


@pytest.mark.parametrize(
    "num_workers, pw", [(0, False), (3, False), (3, True)], ids=["no_mp", "mp_x", "mp_pw"]
)
@pytest.mark.parametrize("batch_size, interrupt", CASES)
def test_stateful_sampler(num_workers, pw, batch_size, interrupt):
    dataset = DummyMapDataset(100, shuffle=False)
    run_and_checkpoint(
        lambda: dataset,
        interrupt,
        sampler=DummySampler(len(dataset)),
        num_workers=num_workers,
        persistent_workers=pw,
        batch_size=batch_size,
    )


@pytest.mark.parametrize(
    "make",
    [lambda: GeneratorIterable([0, 100, 37]), lambda: GeneratorIterableNoState([0, 100, 37])],
    ids=["generator", "generator_no_state"],
)
@pytest.mark.parametrize(
    "num_workers, pw", [(0, False), (3, False), (3, True)], ids=["no_mp", "mp_x", "mp_pw"]
)
@pytest.mark.parametrize("interrupt", [0, 1, 10])
def test_generator(make, num_workers, pw, interrupt):
    dl = DataLoader(
        make(),
        num_workers=num_workers,
        collate_fn=identity,
        persistent_workers=pw,
        snapshot_every_n_steps=1,
    )
    exp = list(dl)
    dl = DataLoader(make(), num_workers=num_workers, collate_fn=identity, persistent_workers=pw)
    batches = []
    it = iter(dl)
    for _ in range(interrupt):
        batches.append(next(it))
    state_dict = dl.state_dict()
    assert normalise(batches) == normalise(exp[:interrupt])
    dl = DataLoader(make(), num_workers=num_workers, collate_fn=identity, persistent_workers=pw)
    dl.load_state_dict(state_dict)
    batches.extend(dl)
    assert normalise(batches) == normalise(exp)


@pytest.mark.parametrize("pw", [False, True])
@pytest.mark.parametrize("kind", ["generator", "iterable", "map", "map_shuffle"])
def test_snapshot_zero(pw, kind):
    dataset = {
        "generator": lambda: GeneratorIterable([0, 100, 37]),
        "iterable": lambda: DummyIterableDataset([0, 100, 37], shuffle=True),
        "map": lambda: DummyMapDataset(100, shuffle=True),
        "map_shuffle": lambda: DummyMapDataset(100, shuffle=False),
    }[kind]()
    dl = DataLoader(
        dataset,
        shuffle=kind == "map_shuffle",
        num_workers=3,
        collate_fn=identity,
        snapshot_every_n_steps=10,
        persistent_workers=pw,
    )
    it = iter(dl)
    state0 = dl.state_dict()
    exp = list(it)
    dl.load_state_dict(state0)
    assert normalise(list(dl)) == normalise(exp)


@pytest.mark.parametrize(
    "pw, num_workers, every_n_steps", list(itertools.product([False, True], [0, 2], [1, 15]))
)
def test_map_interrupted_shuffle(pw, num_workers, every_n_steps):
    dl = DataLoader(
        DummyMapDataset(10, shuffle=True),
        shuffle=True,
        num_workers=num_workers,
        collate_fn=identity,
        snapshot_every_n_steps=every_n_steps,
        persistent_workers=pw if num_workers > 0 else False,
    )
    it = iter(dl)
    state0 = dl.state_dict()
    exp = [next(it) for _ in range(4)]
    state1 = dl.state_dict()
    dl.load_state_dict(state1)
    exp.extend(iter(dl))
    dl.load_state_dict(state0)
    assert normalise(list(iter(dl))) == normalise(exp)


@pytest.mark.parametrize("pw, bs", list(itertools.product([False, True], [None, 4])))
@pytest.mark.parametrize("kind", ["generator", "generator_no_state", "map_shuffle"])
def test_snapshot_end(pw, bs, kind):
    def make():
        return {
            "generator": lambda: GeneratorIterable([0, 100, 37]),
            "generator_no_state": lambda: GeneratorIterableNoState([0, 100, 37]),
            "map_shuffle": lambda: DummyMapDataset(100, shuffle=False),
        }[kind]()

    kwargs = dict(
        num_workers=3,
        collate_fn=identity,
        persistent_workers=pw,
        batch_size=bs,
        shuffle=kind == "map_shuffle",
        seed=0,
    )
    dl = DataLoader(make(), **kwargs)
    exp = list(dl)
    state_end = dl.state_dict()
    if kind != "map_shuffle":
        assert normalise(list(dl)) == normalise(exp)  # a simple restart
        dl = DataLoader(make(), **kwargs)
        it = iter(dl)
        for _ in range(2):
            next(it)
        dl.load_state_dict(state_end)
        assert normalise(list(dl)) == normalise(exp)
    else:  # shuffled: the state after an epoch continues with the next epoch's order
        nxt = list(dl)
        dl = DataLoader(make(), **kwargs)
        dl.load_state_dict(state_end)
        assert normalise(list(dl)) == normalise(nxt)


def test_num_workers_mismatch():
    # DIFFERENCE: torchdata raises an AssertionError; a map-style state here resumes with any
    # number of workers (the order does not depend on them)
    dataset = DummyMapDataset(100, shuffle=False)
    for initial, other in ((0, 3), (3, 0)):
        dl = DataLoader(dataset, num_workers=initial, collate_fn=identity)
        it = iter(dl)
        exp = [next(it) for _ in range(5)]
        state = dl.state_dict()
        exp = list(it)
        dl = DataLoader(dataset, num_workers=other, collate_fn=identity)
        dl.load_state_dict(state)
        assert normalise(list(dl)) == normalise(exp)


def test_two_dataloaders():
    dataset = DummyMapDataset(100, shuffle=False)
    assert normalise(
        list(StatefulDataLoader(dataset, num_workers=2, collate_fn=identity))
    ) == normalise(list(DataLoader(dataset, num_workers=2, collate_fn=identity)))


@pytest.mark.parametrize("snapshot_every_n_steps, interrupt", [(0, 11), (17, 19)])
def test_fast_state_dict_request(snapshot_every_n_steps, interrupt):
    def make():
        return DataLoader(
            DummyIterableDataset([25, 25, 25, 25], shuffle=True),
            num_workers=4,
            batch_size=4,
            collate_fn=identity,
            persistent_workers=True,
        )

    dl = make()
    it = iter(dl)
    for _ in range(interrupt):
        next(it)
    state_dict = dl.state_dict()
    for _ in range(2):
        next(it)
    exp = list(it)
    dl.load_state_dict(state_dict)
    it = iter(dl)
    for _ in range(2):
        next(it)
    state_dict2 = dl.state_dict()
    dl = make()
    dl.load_state_dict(state_dict2)
    assert normalise(list(dl)) == normalise(exp)


@pytest.mark.parametrize("num_workers", [0, 3])
@pytest.mark.parametrize("kind", ["iterable", "map"])
def test_json_serde(num_workers, kind):
    interrupt = 4
    if kind == "iterable":
        dataset, sampler = (
            DummyIterableDataset([0, 100, 37], shuffle=False, include_generator=False),
            None,
        )
    else:
        dataset, sampler = (
            DummyMapDataset(100, shuffle=False, include_generator=False),
            DummySampler(100),
        )
    dl = DataLoader(dataset, sampler=sampler, num_workers=num_workers, collate_fn=identity)
    list(dl)
    it = iter(dl)
    for _ in range(interrupt):
        next(it)
    ser = json.dumps(dl.state_dict())
    exp = list(it)
    dl = DataLoader(dataset, sampler=sampler, num_workers=num_workers, collate_fn=identity)
    dl.load_state_dict(json.loads(ser))
    assert normalise(list(iter(dl))) == normalise(exp)


class ErrorDataset(Dataset):
    def __getitem__(self, index):
        raise ValueError("Iteration error")

    def __len__(self):
        return 10


def error_worker_init_fn(worker_id):
    raise ValueError("Worker init error")


@pytest.mark.parametrize("pw", [False, True])
def test_initial_state(pw):
    dl = DataLoader(
        DummyMapDataset(100, shuffle=False),
        num_workers=4,
        persistent_workers=pw,
        collate_fn=identity,
    )
    state = dl.state_dict()
    exp = list(dl)
    it = iter(dl)
    for _ in range(2):
        next(it)
    dl.load_state_dict(state)
    assert normalise(list(dl)) == normalise(exp)
    assert normalise(list(dl)) == normalise(exp)


@pytest.mark.parametrize("pw, interrupt", list(itertools.product([False, True], [2, 9])))
@pytest.mark.parametrize("ask_first", [True, False], ids=["state_dict_first", "load_first"])
def test_load_state_and_initial_state_dict(pw, interrupt, ask_first):
    dataset = DummyMapDataset(100, shuffle=True)
    dl = DataLoader(dataset, num_workers=4, persistent_workers=pw, collate_fn=identity, seed=0)
    it = iter(dl)
    for _ in range(interrupt):
        next(it)
    state = dl.state_dict()
    exp = list(it)
    dl = DataLoader(dataset, num_workers=4, persistent_workers=pw, collate_fn=identity, seed=0)
    if ask_first:
        dl.state_dict()
        dl.load_state_dict(state)
    else:
        dl.load_state_dict(state)
        assert json.loads(json.dumps(dl.state_dict())) == json.loads(json.dumps(state))
    assert normalise(list(dl)) == normalise(exp)


def test_init_error():
    dl = DataLoader(
        DummyMapDataset(100, shuffle=True),
        num_workers=4,
        collate_fn=identity,
        worker_init_fn=error_worker_init_fn,
    )
    with pytest.raises(ValueError, match="Worker init error"):
        next(
            iter(dl)
        )  # DIFFERENCE: raised at the first batch, as torch's DataLoader (torchdata: at iter())


def test_iteration_error():
    it = iter(DataLoader(ErrorDataset(), num_workers=4, collate_fn=identity))
    with pytest.raises(ValueError, match="Iteration error"):
        next(it)


@pytest.mark.parametrize("pw", [False, True])
def test_load_then_state(pw):
    dataset = DummyMapDataset(100, shuffle=True)
    dl = DataLoader(dataset, num_workers=4, persistent_workers=pw, collate_fn=identity, seed=0)
    state0 = dl.state_dict()
    exp = list(dl)
    dl = DataLoader(dataset, num_workers=4, persistent_workers=pw, collate_fn=identity, seed=0)
    it = iter(dl)
    for _ in range(3):
        next(it)
    dl.load_state_dict(state0)
    assert json.loads(json.dumps(dl.state_dict())) == json.loads(json.dumps(state0))
    assert normalise(list(dl)) == normalise(exp)
