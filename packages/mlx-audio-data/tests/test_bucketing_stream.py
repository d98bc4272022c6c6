"""DynamicBucketingDataset (bucketing a stream in a bounded buffer) and Mux (interleaving
streams as Hugging Face's interleave_datasets): the same batches as the map-style sampler,
bounded reading, exact resume through the DataLoader with and without worker processes,
ranks in lockstep, Hugging Face parity."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

from mlx_audio.data import (
    ChainDataset,
    DataLoader,
    DynamicBucketingDataset,
    DynamicBucketingSampler,
    IterableDataset,
    get_worker_info,
    mux,
    shard_loader,
)
from mlx_audio.data.sampler import epoch_rng


def long_tail(count: int, seed: int = 0) -> list[float]:
    rng = np.random.default_rng(seed)
    return np.round(np.clip(0.5 + rng.lognormal(1.0, 0.9, count), 0.5, 30.0), 3).tolist()


class Records(IterableDataset):
    """``{"id", "duration"}`` records, split by worker; ``stateful`` gives it torchdata's
    ``state_dict``/``load_state_dict`` (else a resume replays it)."""

    def __init__(self, durations, name="", stateful=False) -> None:
        self.durations, self.name, self.stateful = list(durations), name, stateful
        self.start = 0
        self.reads = 0  # samples handed out by this copy (to check the buffer's bound)

    def __iter__(self):
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info else (0, 1)
        mine = list(range(len(self.durations)))[worker::workers]
        start, self.start = self.start, 0
        for position in range(start, len(mine)):
            self.position = position + 1
            self.reads += 1
            i = mine[position]
            yield {"id": f"{self.name}{i}", "duration": self.durations[i]}

    def state_dict(self):
        if not self.stateful:
            raise AttributeError("state_dict")
        return {"position": getattr(self, "position", 0)}

    def load_state_dict(self, state):
        self.start = state["position"]

    def __getattribute__(self, name):  # stateless copies have no state_dict at all
        if name in ("state_dict", "load_state_dict") and not object.__getattribute__(
            self, "stateful"
        ):
            raise AttributeError(name)
        return object.__getattribute__(self, name)


def keep(batch):
    return [record["id"] for record in batch]


def bucketing(durations, stateful=False, **kwargs):
    kwargs.setdefault("max_duration", 40.0)
    kwargs.setdefault("duration_bins", [2.0, 4.0, 8.0])
    return DynamicBucketingDataset(Records(durations, stateful=stateful), "duration", **kwargs)


class Ordered(Records):
    """The records in a given order (ids are the dataset indices)."""

    def __init__(self, durations, order) -> None:
        super().__init__(durations)
        self.order = [int(i) for i in order]

    def __iter__(self):
        for i in self.order:
            yield {"id": str(i), "duration": self.durations[i]}


@pytest.mark.parametrize("shuffle", [False, True])
def test_a_stream_gets_the_samplers_batches(shuffle):
    """Fed in the order the sampler feeds its bucketer (its epoch permutation when shuffling),
    the stream yields the sampler's batches (which are Lhotse's: tests/lhotse_parity)."""
    durations = long_tail(300)
    settings = dict(max_duration=40.0, duration_bins=[2.0, 4.0, 8.0], buffer_size=80)
    sampler = DynamicBucketingSampler(durations, shuffle=shuffle, seed=2, **settings)
    order = epoch_rng(2, 0).permutation(300) if shuffle else range(300)
    stream = DynamicBucketingDataset(
        Ordered(durations, order), "duration", shuffle=shuffle, seed=2, **settings
    )
    assert [[int(r["id"]) for r in b] for b in stream] == [list(b) for b in sampler]


def test_the_buffer_bounds_what_is_read_ahead():
    durations = long_tail(500)
    stream = bucketing(durations, buffer_size=50)
    iterator = iter(stream)
    taken = 0
    for batch in iterator:
        taken += len(batch)
        assert stream.dataset.reads - taken <= 50
    assert taken == 500 and stream.stats()["samples"] == 500


@pytest.mark.parametrize("num_workers", [0, 2])
@pytest.mark.parametrize("stateful", [False, True])
def test_resume_mid_stream_is_exact(num_workers, stateful):
    durations = long_tail(240, seed=3)

    def loader():
        data = bucketing(durations, stateful, buffer_size=60, shuffle=True, seed=5)
        return DataLoader(data, batch_size=None, collate_fn=keep, num_workers=num_workers)

    expected = list(loader())
    first = loader()
    iterator = iter(first)
    head = [next(iterator) for _ in range(7)]
    state = json.loads(json.dumps(first.state_dict()))
    first.close()
    resumed = loader()
    resumed.load_state_dict(state)
    assert head + list(resumed) == expected
    assert sorted(i for b in expected for i in b) == sorted(str(i) for i in range(240))


@pytest.mark.parametrize("num_workers", [0, 2])
def test_ranks_step_in_lockstep_and_share_the_stream(num_workers):
    durations = long_tail(301, seed=4)
    loader = DataLoader(
        bucketing(durations, shuffle=True),
        batch_size=None,
        collate_fn=keep,
        num_workers=num_workers,
    )
    shards = [shard_loader(loader, 3, rank) for rank in range(3)]
    epochs = [list(shard) for shard in shards]
    assert len({len(e) for e in epochs}) == 1
    assert {i for e in epochs for b in e for i in b} == {str(i) for i in range(301)}


def test_a_state_from_another_world_size_is_refused():
    loader = DataLoader(bucketing(long_tail(100)), batch_size=None, collate_fn=keep)
    first = shard_loader(loader, 2, 0)
    iterator = iter(first)
    next(iterator)
    state = first.state_dict()
    other = shard_loader(loader, 3, 0)
    other.load_state_dict(state)
    with pytest.raises(ValueError, match="rank 0 of 2 and this stream is rank 0 of 3"):
        next(iter(other))


def test_stream_arguments_are_checked():
    with pytest.raises(ValueError, match="duration must be"):
        DynamicBucketingDataset(Records([1.0]), None, max_duration=5.0)
    with pytest.raises(ValueError, match="max_duration"):
        DynamicBucketingDataset(Records([1.0]), "duration")
    estimated = DynamicBucketingDataset(Records(long_tail(50)), "duration", max_duration=9.0)
    assert estimated.duration_bins == sorted(estimated.duration_bins)


# -- mux ---------------------------------------------------------------------------------------


def sources(stateful=False, sizes=(5, 12, 3)):
    return [Records([1.0] * n, name, stateful) for name, n in zip("abc", sizes)]


def ids_of(stream):
    return [sample["id"] for sample in stream]


STRATEGIES = ["first_exhausted", "all_exhausted", "all_exhausted_without_replacement"]


@pytest.mark.parametrize("weights", [None, [0.5, 0.25, 0.25], [0.125, 0.75, 0.125]])
@pytest.mark.parametrize("strategy", STRATEGIES)
def test_mux_is_hugging_faces_interleave_datasets(weights, strategy):
    hf = pytest.importorskip("datasets")

    def generate(name, n):
        for i in range(n):
            yield {"id": f"{name}{i}"}

    theirs = hf.interleave_datasets(
        [
            hf.IterableDataset.from_generator(generate, gen_kwargs={"name": n, "n": k})
            for n, k in zip("abc", (5, 12, 3))
        ],
        probabilities=weights,
        seed=7,
        stopping_strategy=strategy,
    )
    assert ids_of(mux(sources(), weights, seed=7, stopping_strategy=strategy)) == ids_of(theirs)


def test_mux_draws_by_weight_and_moves_with_the_epoch():
    many = [Records([1.0] * 4000, name) for name in "ab"]
    picked = ids_of(mux(many, [3, 1], seed=0))
    share = sum(i.startswith("a") for i in picked[:2000]) / 2000
    assert 0.72 < share < 0.78
    stream = mux(sources(), [1, 1, 1], seed=3, stopping_strategy="all_exhausted")
    first = ids_of(stream)
    assert ids_of(stream) == first
    stream.set_epoch(1)
    assert ids_of(stream) != first
    other = mux(sources(), [1, 1, 1], seed=4, stopping_strategy="all_exhausted")
    other.set_epoch(1)
    assert ids_of(other) != ids_of(stream)  # the seed still counts after epoch 0


@pytest.mark.parametrize("num_workers", [0, 2])
@pytest.mark.parametrize("stateful", [False, True])
@pytest.mark.parametrize("strategy", ["all_exhausted", "first_exhausted"])
def test_mux_resumes_exactly_with_each_sources_position(num_workers, stateful, strategy):
    def loader():
        stream = mux(sources(stateful, (30, 50, 9)), [0.5, 0.3, 0.2], 1, strategy)
        return DataLoader(stream, batch_size=3, collate_fn=ids_of, num_workers=num_workers)

    expected = list(loader())
    first = loader()
    iterator = iter(first)
    head = [next(iterator) for _ in range(4)]
    state = json.loads(json.dumps(first.state_dict()))
    first.close()
    resumed = loader()
    resumed.load_state_dict(state)
    assert head + list(resumed) == expected


def test_mux_arguments_are_checked():
    with pytest.raises(ValueError, match="stopping_strategy must be one of"):
        mux(sources(), stopping_strategy="longest")
    with pytest.raises(ValueError, match="3 datasets"):
        mux(sources(), [1, 2])
    with pytest.raises(ValueError, match="not all 0"):
        mux(sources(), [0, 0, 0])
    with pytest.raises(ValueError, match="at least one"):
        mux([])


@pytest.mark.parametrize("num_workers", [0, 2])
def test_bucketing_a_mux_of_corpora_resumes_exactly(num_workers):
    """Corpora mixed by weight, then batched by duration: the bucketing state holds the mux's
    state (its draws, each corpus's position), which holds each corpus's."""

    def loader():
        corpora = [Records(long_tail(120, seed=k), name) for k, name in enumerate("xyz")]
        mixed = mux(corpora, [0.5, 0.3, 0.2], seed=2, stopping_strategy="all_exhausted")
        data = DynamicBucketingDataset(
            mixed, "duration", max_duration=30.0, duration_bins=[2.0, 5.0], buffer_size=40
        )
        return DataLoader(data, batch_size=None, collate_fn=keep, num_workers=num_workers)

    expected = list(loader())
    first = loader()
    iterator = iter(first)
    head = [next(iterator) for _ in range(9)]
    state = json.loads(json.dumps(first.state_dict()))
    first.close()
    resumed = loader()
    resumed.load_state_dict(state)
    assert head + list(resumed) == expected
    assert {i[0] for b in expected for i in b} == set("xyz")


# -- ChainDataset ------------------------------------------------------------------------------


@pytest.mark.parametrize("num_workers", [0, 2])
@pytest.mark.parametrize("stateful", [False, True])
def test_chain_resumes_in_its_current_dataset_without_rereading_the_others(num_workers, stateful):
    def chain():
        return ChainDataset(
            [Records([1.0] * n, name, stateful) for name, n in zip("abc", (7, 5, 9))]
        )

    def loader(data):
        return DataLoader(data, batch_size=3, collate_fn=ids_of, num_workers=num_workers)

    expected = list(loader(chain()))
    first = loader(chain())
    iterator = iter(first)
    head = [next(iterator) for _ in range(3)]  # into "b" (worker 0) or "c" (one worker)
    state = json.loads(json.dumps(first.state_dict()))
    first.close()
    resumed_data = chain()
    resumed = loader(resumed_data)
    resumed.load_state_dict(state)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # exact: no "resuming by replaying" warning
        assert head + list(resumed) == expected
    if num_workers == 0:
        assert resumed_data.datasets[0].reads == 0  # "a" is not read again
