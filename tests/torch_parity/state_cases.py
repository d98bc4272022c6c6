"""Resume cases run through torchdata's StatefulDataLoader (anchor venv) and through our
DataLoader: the batches after ``load_state_dict`` must be the same (a port of what torchdata's
test/stateful_dataloader/test_state_dict.py checks, on deterministic orders so both frameworks'
RNGs stay out of it). Runs under both interpreters (numpy/stdlib only)."""

from __future__ import annotations

import json
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
