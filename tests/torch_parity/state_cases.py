"""Resume cases run through torchdata's StatefulDataLoader (anchor venv) and through our
DataLoader: the batches after ``load_state_dict`` must be the same (a port of what torchdata's
test/stateful_dataloader/test_state_dict.py checks, on deterministic orders so both frameworks'
RNGs stay out of it). Runs under both interpreters (numpy/stdlib only)."""

from __future__ import annotations

import json
import time
from typing import Any

import numpy as np

STATE_CASES: dict[str, Any] = {}


class Numbers:
    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> Any:
        return np.float32(i)


def make_stream(base: type, get_worker_info: Any, n: int, stateful: bool) -> Any:
    """An iterable of 0..n-1 sharded by worker; with ``stateful`` it saves its own position."""

    class Stream(base):  # type: ignore[misc, valid-type]
        def __init__(self) -> None:
            self.position = 0

        def __iter__(self):
            info = get_worker_info()
            wid, count = (info.id, info.num_workers) if info else (0, 1)
            items = list(range(wid, n, count))
            while self.position < len(items):
                value = items[self.position]
                self.position += 1
                yield np.float32(value)
            self.position = 0

    if stateful:

        def state_dict(self):
            return {"position": self.position}

        def load_state_dict(self, state):
            self.position = int(state["position"])

        Stream.state_dict = state_dict
        Stream.load_state_dict = load_state_dict
    return Stream()


def resume_run(L: Any, tolist: Any, make: Any, stop_after: int, epochs_after: int = 1) -> dict:
    loader = make()
    seen = []
    state = None
    iterator = iter(loader)
    for _ in range(stop_after):
        seen.append(tolist(next(iterator)))
    state = loader.state_dict()
    state = L.roundtrip(state)
    resumed = make()
    resumed.load_state_dict(state)
    rest = [tolist(b) for b in resumed]
    later = [[tolist(b) for b in resumed] for _ in range(epochs_after)]
    return {"seen": seen, "rest": rest, "later": later}


def state_case(fn):
    STATE_CASES[fn.__name__] = fn
    return fn


for _workers in (0, 2):
    for _stop in (0, 1, 3, 7):

        def _map(L, tolist, workers=_workers, stop=_stop):
            return resume_run(
                L, tolist, lambda: L.Loader(Numbers(20), batch_size=3, num_workers=workers), stop
            )

        _map.__name__ = f"map_w{_workers}_stop{_stop}"
        state_case(_map)

        def _stream(L, tolist, workers=_workers, stop=_stop):
            def make():
                return L.Loader(
                    make_stream(L.IterableDataset, L.get_worker_info, 17, True),
                    batch_size=2,
                    num_workers=workers,
                )

            return resume_run(L, tolist, make, stop)

        _stream.__name__ = f"stateful_stream_w{_workers}_stop{_stop}"
        state_case(_stream)


@state_case
def map_drop_last_mid_epoch(L, tolist):
    return resume_run(L, tolist, lambda: L.Loader(Numbers(20), batch_size=3, drop_last=True), 2)


@state_case
def map_unbatched(L, tolist):
    return resume_run(L, tolist, lambda: L.Loader(Numbers(6), batch_size=None), 2)


@state_case
def map_after_a_whole_epoch(L, tolist):
    loader = L.Loader(Numbers(9), batch_size=4)
    first = [tolist(b) for b in loader]
    state = L.roundtrip(loader.state_dict())
    resumed = L.Loader(Numbers(9), batch_size=4)
    resumed.load_state_dict(state)
    return {"first": first, "next": [tolist(b) for b in resumed]}


def roundtrip_json(state: Any) -> Any:
    return json.loads(json.dumps(state))


# -- torchdata's test_state_dict.py, the cases of issue 29 ---------------------------------------
def identity(x: Any) -> Any:
    return x


def listed(batches: Any, tolist: Any) -> list:
    return json.loads(json.dumps([tolist(b) for b in batches]))


def generator_iterable(L: Any, sizes: list[int], increment_epoch: bool = False) -> Any:
    """torchdata's GeneratorIterable: worker w yields (i, epoch) over its share; its state says
    where it stands and which epoch it is in (reset once its generator has run out)."""

    class GeneratorIterable(L.IterableDataset):  # type: ignore[misc, name-defined]
        def __init__(self) -> None:
            self.sizes, self.i, self.resume, self.epoch = list(sizes), 0, None, 0

        def __iter__(self):
            info = L.get_worker_info()
            wid = info.id if info else 0
            if not info:
                self.sizes = [sum(self.sizes)]
            self.i = 0
            if self.resume is not None:
                self.i, self.resume = self.resume, None
            start = sum(self.sizes[:wid])
            for i in range(start + self.i, start + self.sizes[wid]):
                self.i += 1
                yield (i, self.epoch)
            self.i = 0
            if increment_epoch:
                self.epoch += 1

        def state_dict(self):
            return {"i": self.i, "epoch": self.epoch}

        def load_state_dict(self, state):
            self.resume, self.epoch = state["i"], state["epoch"]

    return GeneratorIterable()


for _workers in (0, 4):

    def _multi_epoch(L, tolist, workers=_workers):
        """TestMultiEpochState (a state saved after StopIteration, loaded into a loader that has
        run two batches and read back before iterating), and the state after the resumed
        epoch against the uninterrupted run's. (torchdata's state read back right after
        load_state_dict is not the loaded one -- the fetchers it restores report themselves --
        so that comparison is ours alone: tests/torch_port/test_state_dict.py.)"""

        def make():
            return L.Loader(
                generator_iterable(L, [3, 5, 8, 6], increment_epoch=True),
                num_workers=workers,
                persistent_workers=workers > 0,
                collate_fn=identity,
            )

        dl = make()
        exp0 = listed(dl, tolist)
        state1 = L.roundtrip(dl.state_dict())
        exp1 = listed(dl, tolist)
        state2 = L.roundtrip(dl.state_dict())
        exp2 = listed(dl, tolist)
        dl = make()
        it = iter(dl)
        next(it), next(it)
        dl.load_state_dict(state1)
        dl.state_dict()  # read back before iterating: changes nothing
        data1 = listed(dl, tolist)
        after = L.same(L.roundtrip(dl.state_dict()), state2)
        data2 = listed(dl, tolist)
        result = {"epochs": [exp0, exp1, exp2], "resumed_same": [data1 == exp1, data2 == exp2]}
        if workers == 0:  # with workers torchdata's answer is racy: how far its workers'
            # prefetch got decides it (True or False between runs of the same code); ours is
            # exact and checked in tests/torch_port/test_state_dict.py
            result["state_after_resumed_epoch_same"] = after
        return result

    _multi_epoch.__name__ = f"multi_epoch_load_then_state_w{_workers}"
    state_case(_multi_epoch)


class RandomMap:
    """torchdata's DummyMapDataset(shuffle=True): each item draws from the worker's global RNG,
    and the dataset's state is that RNG's."""

    def __init__(self, L: Any, n: int) -> None:
        self.L, self.n = L, n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> Any:
        return self.L.randint(self.n)

    def state_dict(self) -> Any:
        return {"g": self.L.rng_state()}

    def load_state_dict(self, state: Any) -> None:
        self.L.set_rng_state(state["g"])


for _pw in (True,):
    for _bs in (None, 4):

        def _epoch_end(L, tolist, pw=_pw, bs=_bs):
            """TestSnapshotEnd.test_map: a state saved at an epoch's end, loaded into a new
            loader, gives the next epoch (the workers' RNGs included)."""

            def make():
                return L.Loader(
                    RandomMap(L, 24),
                    num_workers=3,
                    collate_fn=identity,
                    persistent_workers=pw,
                    batch_size=bs,
                    **L.seeded(15),
                )

            dl = make()
            listed(dl, tolist)
            state_end = L.roundtrip(dl.state_dict())
            exp = listed(dl, tolist)
            dl = make()
            dl.load_state_dict(state_end)
            return {"same": listed(dl, tolist) == exp, "batches": len(exp)}

        _epoch_end.__name__ = f"epoch_end_map_pw{int(_pw)}_bs{_bs}"
        state_case(_epoch_end)


def count_iter_calls_iter(L: Any, length: int) -> Any:
    """torchdata's CountIterCallsIter: its own iterator; its state describes the iteration that
    __iter__ creates, so it can only be loaded once __iter__ has run."""

    class CountIterCallsIter(L.IterableDataset):  # type: ignore[misc, name-defined]
        def __init__(self) -> None:
            self.length, self.iter_calls = length, 0

        def __iter__(self):
            self.iter_calls += 1
            info = L.get_worker_info()
            wid, count = (info.id, info.num_workers) if info else (0, 1)
            share = self.length // count
            self.curr, self.end = share * wid, share * (wid + 1)
            return self

        def __next__(self):
            if self.curr >= self.end:
                raise StopIteration
            self.curr += 1
            return self.curr - 1

        def state_dict(self):
            return {"state": {"curr": self.curr, "end": self.end}, "iter_calls": self.iter_calls}

        def load_state_dict(self, state):
            self.curr, self.end = state["state"]["curr"], state["state"]["end"]

    return CountIterCallsIter()


for _workers in (0, 2):

    def _state_init(L, tolist, workers=_workers):
        """TestStateInitializationDataset: 10 batches, a state, a new loader resumed from it."""

        def make():
            return L.Loader(count_iter_calls_iter(L, 40), num_workers=workers, collate_fn=identity)

        it = iter(dl := make())
        data = [next(it) for _ in range(10)]
        state = L.roundtrip(dl.state_dict())
        dl = make()
        dl.load_state_dict(state)
        it = iter(dl)
        data += [next(it) for _ in range(30)]
        return listed(data, tolist)

    _state_init.__name__ = f"state_initialization_dataset_w{_workers}"
    state_case(_state_init)


for _kind in ("map", "stream"):

    def _mismatch(L, tolist, kind=_kind):
        """TestNumWorkersMismatch: a state saved with 0 workers loaded with 3, and back."""
        outcomes = []
        for initial, other in ((0, 3), (3, 0)):

            def make(workers):
                if kind == "map":
                    return L.Loader(Numbers(20), batch_size=3, num_workers=workers)
                stream = make_stream(L.IterableDataset, L.get_worker_info, 17, True)
                return L.Loader(stream, batch_size=2, num_workers=workers)

            it = iter(dl := make(initial))
            next(it), next(it)
            state = L.roundtrip(dl.state_dict())
            dl = make(other)
            try:
                dl.load_state_dict(state)
                outcomes.append(listed(dl, tolist))
            except AssertionError:
                outcomes.append("AssertionError")
        return outcomes

    _mismatch.__name__ = f"num_workers_mismatch_{_kind}"
    state_case(_mismatch)


for _kind in ("map", "stream"):

    def _end_of_epoch(L, tolist, kind=_kind):
        """TestEndOfEpochBehavior and TestMultiEpochSDL with persistent workers whose dataset
        state outlives an epoch (a map-style one drawing from the workers' RNGs; a stream
        counting its epochs): a state taken after the last batch resumes nothing of that
        epoch (map-style; a stream's: stream_state_after_its_last_batch); one taken after
        StopIteration resumes the next; two epochs, a state, and two more equal four
        uninterrupted ones."""

        def make():
            if kind == "map":
                data = RandomMap(L, 12)
            else:
                data = generator_iterable(L, [5, 7], increment_epoch=True)
            return L.Loader(data, num_workers=2, persistent_workers=True, collate_fn=identity)

        L.seed_all(0)
        dl = make()
        for _ in dl:
            state_in = L.roundtrip(dl.state_dict())
        state_out = L.roundtrip(dl.state_dict())
        counts = []
        for state in (state_in, state_out) if kind == "map" else (state_out,):
            resumed = make()
            resumed.load_state_dict(state)
            counts.append(len(listed(resumed, tolist)))
        L.seed_all(0)
        dl = make()
        first = listed(dl, tolist) + listed(dl, tolist)
        resumed = make()
        resumed.load_state_dict(L.roundtrip(dl.state_dict()))
        first += listed(resumed, tolist) + listed(resumed, tolist)
        L.seed_all(0)
        dl = make()
        whole = [b for _ in range(4) for b in listed(dl, tolist)]
        return {"counts": counts, "four_epochs_same": first == whole, "items": len(whole)}

    _end_of_epoch.__name__ = f"end_of_epoch_{_kind}_persistent"
    state_case(_end_of_epoch)


@state_case
def stream_state_after_its_last_batch(L, tolist):
    """A stream's state taken after the epoch's last batch, before StopIteration, once one
    worker has run out (its dataset counting epochs): what a loader resumed from it yields."""
    loader = L.Loader(
        generator_iterable(L, [5, 7], increment_epoch=True),
        num_workers=2,
        persistent_workers=True,
        collate_fn=identity,
    )
    for _ in loader:
        state = L.roundtrip(loader.state_dict())
    resumed = L.Loader(
        generator_iterable(L, [5, 7], increment_epoch=True), num_workers=2, collate_fn=identity
    )
    resumed.load_state_dict(state)
    return listed(resumed, tolist)


# -- in_order=False (torchdata's TestOutOfOrderWithCheckpointing) ------------------------------
class SlowIndex:
    """torchdata's _TestSlowIndexDataset: index ``slow`` takes 1 s."""

    def __init__(self, end: int, slow: int) -> None:
        self.end, self.slow = end, slow

    def __len__(self) -> int:
        return self.end

    def __getitem__(self, i: int) -> Any:
        if i == self.slow:
            time.sleep(1.0)
        return i


def slow_iterable(L: Any, start: int, end: int) -> Any:
    """torchdata's _TestSlowIterableDataset: contiguous shares, the middle value takes 1 s."""

    class SlowIterable(L.IterableDataset):  # type: ignore[misc, name-defined]
        def __iter__(self):
            info = L.get_worker_info()
            share = -(-(end - start) // info.num_workers)
            first = start + info.id * share
            for i in range(first, min(first + share, end)):
                if i == -(-(end - start) // 2):
                    time.sleep(1.0)
                yield i

    return SlowIterable()


def _out_of_order(L: Any, tolist: Any, make: Any, stop: int) -> list:
    dl = L.Loader(make(), num_workers=2, in_order=False)
    output = []
    for i, batch in enumerate(dl):
        output += tolist(batch)
        if i == stop:
            state = L.roundtrip(dl.state_dict())
            break
    resumed = L.Loader(make(), batch_size=1, num_workers=2, in_order=False)
    resumed.load_state_dict(state)
    return output + [v for b in resumed for v in tolist(b)]


@state_case
def out_of_order_index_ds(L, tolist):
    output = _out_of_order(L, tolist, lambda: SlowIndex(10, 0), 3)
    return {"first": output[:4], "sorted": sorted(output), "in_order": output == list(range(10))}


@state_case
def out_of_order_iterable_ds_one_completed_worker(L, tolist):
    return _out_of_order(L, tolist, lambda: slow_iterable(L, 0, 10), 7)


@state_case
def out_of_order_iterable_ds_no_completed_workers(L, tolist):
    return _out_of_order(L, tolist, lambda: slow_iterable(L, 0, 10), 3)
