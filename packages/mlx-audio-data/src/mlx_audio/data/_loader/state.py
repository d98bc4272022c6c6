"""The DataLoader's resumable state: a small versioned dict (Grain's iterator state), checked
against the loader it is loaded into, so a state never silently resumes a different stream.

Keys: ``version``; what the batches depend on (``seed``, ``batch_size``, ``drop_last``,
``dataset_length``, ``sampler``, ``batch_sampler``, ``num_workers``); where the pass stands (``epoch``,
``batches_yielded``, and for iterable datasets the workers' stream states).

Also here: what a saved position means to a stream's pass (:func:`resumes_exactly`), and the
passes' states as JSON-friendly values (:func:`jsonable`).
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np

VERSION = 2
# the keys a state holds besides the position (what state_dict() leaves out of a loaded state)
STATE_KEYS = (
    "version",
    "seed",
    "num_workers",
    "batch_size",
    "drop_last",
    "dataset_length",
    "sampler",
    "batch_sampler",
)
_SETTINGS = (
    "batch_size",
    "drop_last",
    "dataset_length",
    "sampler",
    "batch_sampler",
    "num_replicas",
)


def settings_of(loader: Any) -> dict[str, Any]:
    """What a saved position depends on, besides the seed."""
    try:
        length: int | None = len(loader.dataset)
    except TypeError:  # an unsized stream
        length = None
    return {
        "batch_size": loader.batch_size,
        "drop_last": bool(loader.drop_last),
        "dataset_length": length,
        "sampler": _name(loader.sampler),
        "batch_sampler": _name(loader.batch_sampler),
        "num_replicas": _replicas(loader),
    }


def _replicas(loader: Any) -> int | None:
    """Ranks sharing the dataset (a position means other batches under another world size)."""
    count = getattr(
        loader.sampler, "num_replicas", getattr(loader.batch_sampler, "num_replicas", 1)
    )
    return int(count) if count and int(count) > 1 else None


def _name(sampler: Any) -> str | None:
    return None if sampler is None else type(sampler).__name__


def make_state(loader: Any, seed: int, position: dict[str, Any]) -> dict[str, Any]:
    return {
        "version": VERSION,
        "seed": seed,
        "num_workers": loader.num_workers,
        **settings_of(loader),
        **position,
    }


def check_state(state: Any, loader: Any, given_seed: int | None) -> None:
    """``ValueError`` naming what differs between ``state`` and ``loader`` (and what to do)."""
    if not isinstance(state, dict) or state.get("version") not in (1, VERSION):
        raise ValueError(f"not a DataLoader state (version {VERSION}): {state!r:.200}")
    for key in ("epoch", "batches_yielded", "seed"):
        if key not in state:
            raise ValueError(f"DataLoader state is missing {key!r}: {state!r:.200}")
    if given_seed is not None and int(state["seed"]) != given_seed:
        raise ValueError(
            f"the state was saved by a loader with seed={state['seed']} and this one has "
            f"seed={given_seed}: its batches would differ. Build the loader without a seed (it "
            "takes the state's) or with the same one"
        )
    yielded = state["batches_yielded"]
    if isinstance(yielded, bool) or not isinstance(yielded, int) or yielded < 0:
        raise ValueError(
            f"DataLoader state: 'batches_yielded' must be an int >= 0, got {yielded!r}"
        )
    try:
        batches = len(loader)
    except TypeError:  # an unsized stream
        batches = None
    if batches is not None and yielded > batches:
        raise ValueError(
            f"DataLoader state: 'batches_yielded' is {yielded} but an epoch of this loader has "
            f"{batches} batches: the state belongs to another loader or was edited"
        )
    _check_streams_split(state, loader)
    if state["version"] == 1:
        return  # written before the settings were recorded
    mine = settings_of(loader)
    for key in _SETTINGS:
        if state.get(key) != mine[key]:
            raise ValueError(
                f"the state was saved by a loader with {key}={state.get(key)!r} and this one has "
                f"{key}={mine[key]!r}: resuming would skip the wrong batches. Resume with the same "
                "dataset and batching, or start the epoch afresh (loader.set_epoch(e))"
            )


class WorkersChanged(ValueError, AssertionError):
    """torchdata raises ``AssertionError`` for a state of another ``num_workers``."""


def _check_streams_split(state: dict[str, Any], loader: Any) -> None:
    """An IterableDataset runs one stream per worker: a position in those streams means
    nothing to another number of workers (torchdata refuses any such state; a map-style one
    resumes here with any number, the batches do not depend on the workers)."""
    saved = [state.get("stream") or {}, *(w or {} for w in state.get("workers") or [])]
    positioned = state["batches_yielded"] or any(
        s.get("dataset") is not None or s.get("iterator") is not None for s in saved
    )
    if loader._iterable and state.get("num_workers") != loader.num_workers and positioned:
        raise WorkersChanged(
            f"the state was saved with num_workers={state.get('num_workers')} and this loader "
            f"has num_workers={loader.num_workers}: an IterableDataset's stream is split per "
            "worker, so where each one stood cannot be carried over. Resume with "
            f"num_workers={state.get('num_workers')}, or start the epoch afresh "
            "(loader.set_epoch(e))"
        )


def resumes_exactly(resume: dict[str, Any], dataset: Any, wrapped: bool) -> bool:
    """Whether a stream's pass resumes from saved stream states (or the dataset's own state);
    else it replays the stream, which is said once. Called from a stream pass's ``__init__``:
    the warning points at the user's ``iter()`` (one frame further out when the pass is built
    inside a ``DevicePass``: ``wrapped``)."""
    skip = int(resume.get("batches_yielded", 0))
    saved = [resume.get("stream") or {}, *(w or {} for w in resume.get("workers") or [])]
    has_saved = any(s.get("iterator") is not None or s.get("dataset") is not None for s in saved)
    stateful = hasattr(dataset, "state_dict") and hasattr(dataset, "load_state_dict")
    exact = has_saved or (bool(skip) and stateful)
    if skip and not exact:
        warnings.warn(
            f"{type(dataset).__name__} has no state_dict()/load_state_dict(): resuming by "
            f"replaying its stream and dropping the first {skip} batches",
            stacklevel=5 if wrapped else 4,
        )
    return exact


def jsonable(value: Any) -> Any:
    """numpy scalars and arrays as Python values; keys are left alone (a dataset's state comes
    back to its load_state_dict as it gave it)."""
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value


class Delivered:
    """Which of an epoch's index batches a map-style pass has handed out, by position.

    NOTE [out-of-order resume]: with ``in_order=False`` batches are handed out as workers finish
    them, so "the first ``batches_yielded`` batches" is not what was delivered (counting them
    so lost some batches and repeated others on resume). The state records what was: every
    position below the first one not yet handed out, plus those handed out beyond it
    (``ahead``); a resumed pass dispatches exactly the others, each once. A stream's workers
    hand their batches back in their own order, so a stream's state (each worker's position
    after its last batch handed out) is exact either way. ``in_order=True`` never has
    ``ahead``: its states are unchanged.
    """

    def __init__(self, resume: dict[str, Any]) -> None:
        self.ahead = {int(p) for p in resume.get("ahead", [])}
        self.first = int(resume.get("batches_yielded", 0)) - len(self.ahead)

    def remaining(self, batches: Iterable[Any]) -> Iterator[tuple[int, Any]]:
        """(position, index batch) of the batches still to hand out, in epoch order."""
        done = frozenset(self.ahead)  # fixed now: ``mark`` drops positions the pass reaches
        for position, indices in itertools.islice(enumerate(batches), self.first, None):
            if position not in done:
                yield position, indices

    def mark(self, position: int) -> None:
        """The batch at ``position`` is handed out (or its error raised)."""
        if position != self.first:
            self.ahead.add(position)
            return
        self.first += 1
        while self.first in self.ahead:
            self.ahead.discard(self.first)
            self.first += 1

    def state(self) -> dict[str, Any]:
        return {"ahead": sorted(self.ahead)} if self.ahead else {}


def next_epoch_start(final: dict[str, Any], iterable: bool, persistent: bool) -> dict[str, Any]:
    """Where the next epoch starts after a pass that ran to its end (torchdata's state after
    ``StopIteration``): what outlives the pass. A dataset object that lives on (in the main
    process; with ``persistent_workers``, in the workers) keeps its state -- a persistent
    map-style worker its global RNGs too (they are not reseeded between epochs) -- so a loader
    resumed from this state starts the next epoch as the uninterrupted one would."""
    position: dict[str, Any] = {"batches_yielded": 0}
    stream = final.get("stream") or {}
    if stream.get("dataset") is not None:  # an iterator's state ends with its pass
        position["stream"] = {"dataset": stream["dataset"]}
    workers = final.get("workers") or []
    if persistent and iterable:
        workers = [{"dataset": w["dataset"]} if w and "dataset" in w else None for w in workers]
    if persistent and any(w is not None for w in workers):
        position["workers"] = workers
    return position
