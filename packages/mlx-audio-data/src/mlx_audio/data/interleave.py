"""Combining corpora: several streams interleaved by weight, with Hugging Face's
``interleave_datasets`` semantics for iterable datasets, resumable (each source's position in
the state) and deterministic under a seed."""

from __future__ import annotations

import copy
import math
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from ._loader.worker import get_worker_info
from ._streams import END, SourceCursor
from .dataset import IterableDataset
from .sampler import epoch_rng

__all__ = ["Mux", "mux", "WeightedOrder"]

STRATEGIES = ("first_exhausted", "all_exhausted", "all_exhausted_without_replacement")
_BLOCK = 1000  # Hugging Face draws the sources' indices 1000 at a time


def _shift(rng: np.random.Generator, value: int) -> np.random.Generator:
    """Hugging Face's ``shift_rngs``: a generator moved by ``value`` (an epoch, a worker)."""
    return np.random.default_rng(int(copy.deepcopy(rng).integers(0, 1 << 63)) - value)


class Mux(IterableDataset[Any]):
    """Samples from several streams, the source of each drawn by weight
    (``datasets.interleave_datasets`` for iterable datasets, same semantics).

    ``weights=None`` takes the sources in turn (0, 1, ..., 0, 1, ...); else each sample's source
    is drawn with probability ``weights[i] / sum(weights)`` from ``numpy.random.default_rng(seed)``
    (Hugging Face's draws, 1000 at a time). ``stopping_strategy``: ``"first_exhausted"`` stops
    once a source has run out; ``"all_exhausted"`` restarts each source that runs out until
    every one has run out at least once (oversampling); ``"all_exhausted_without_replacement"``
    takes each sample of every source once. As Hugging Face, a source counts as run out as soon
    as its last sample is taken (one sample is read ahead).

    Epochs: ``set_epoch(e)`` moves the draws (Hugging Face's ``shift_rngs``). Workers: each
    worker iterates its own copy, its draws moved by its worker id (as Hugging Face's); every
    source must split itself by worker (``get_worker_info()``), and each worker stops by the
    strategy on its own share. Resume: the iterator's ``state_dict()`` (saved by the DataLoader
    after every batch) holds the number of draws and each source's position (NOTE [source
    positions]) before the sample it read ahead, which it reads again on resume.
    """

    def __init__(
        self,
        datasets: Sequence[Any],
        weights: Sequence[float] | None = None,
        seed: int = 0,
        stopping_strategy: str = "first_exhausted",
    ) -> None:
        self.datasets = list(datasets)
        if not self.datasets:
            raise ValueError("mux needs at least one dataset")
        if stopping_strategy not in STRATEGIES:
            raise ValueError(
                f"stopping_strategy must be one of {', '.join(STRATEGIES)}, got "
                f"{stopping_strategy!r}"
            )
        self.probabilities: list[float] | None = None
        if weights is not None:
            values = [float(w) for w in weights]
            if len(values) != len(self.datasets):
                raise ValueError(
                    f"weights has {len(values)} entries for {len(self.datasets)} datasets"
                )
            if any(not math.isfinite(w) or w < 0 for w in values) or sum(values) <= 0:
                raise ValueError(f"weights must be finite, >= 0 and not all 0, got {values}")
            total = sum(values)
            self.probabilities = [w / total for w in values]
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ValueError(f"seed must be an int >= 0, got {seed!r}")
        self.seed = seed
        self.stopping_strategy = stopping_strategy
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __iter__(self) -> Iterator[Any]:
        return _MuxIterator(self)


def mux(
    datasets: Sequence[Any],
    weights: Sequence[float] | None = None,
    seed: int = 0,
    stopping_strategy: str = "first_exhausted",
) -> Mux:
    """:class:`Mux` (``interleave_datasets`` for streams)."""
    return Mux(datasets, weights, seed, stopping_strategy)


class _MuxIterator(Iterator[Any]):
    """One pass of a :class:`Mux` (Hugging Face's ``CyclingMultiSourcesExamplesIterable`` /
    ``RandomlyCyclingMultiSourcesExamplesIterable.__iter__``)."""

    def __init__(self, owner: Mux) -> None:
        self.owner = owner
        count = len(owner.datasets)
        self.cursors = [SourceCursor(d) for d in owner.datasets]
        self.ahead: list[Any] = [None] * count  # None: not read yet; END: ran out
        self.before: list[dict[str, Any] | None] = [None] * count  # position before `ahead`
        self.exhausted = [False] * count
        self.draws = 0
        self.finished = False
        self.started = False
        self.pending: dict[str, Any] | None = None
        self._block: list[int] = []
        self._block_index = -1
        self._rng: np.random.Generator | None = None

    # -- the sources' order --------------------------------------------------------------------
    def _generator(self) -> np.random.Generator:
        rng = np.random.default_rng(self.owner.seed)
        if self.owner.epoch:
            rng = _shift(rng, self.owner.epoch)
        info = get_worker_info()
        if info is not None:
            rng = _shift(rng, info.id)
        return rng

    def _source_at(self, draw: int) -> int:
        count = len(self.cursors)
        p = self.owner.probabilities
        if p is None:
            return draw % count
        block, offset = divmod(draw, _BLOCK)
        if block != self._block_index:
            if self._rng is None or block != self._block_index + 1:  # a resume: draw up to it
                self._rng = self._generator()
                for _ in range(block):
                    self._rng.choice(count, size=_BLOCK, p=p)
            self._block = [int(i) for i in self._rng.choice(count, size=_BLOCK, p=p)]
            self._block_index = block
        return self._block[offset]

    # -- iteration -----------------------------------------------------------------------------
    def _start(self) -> None:
        self.started = True
        state, self.pending = self.pending, None
        if state is None:
            for cursor in self.cursors:
                cursor.start()
            return
        self.draws = int(state["draws"])
        self.exhausted = [bool(e) for e in state["exhausted"]]
        self.finished = bool(state["finished"])
        for i, (cursor, source) in enumerate(zip(self.cursors, state["sources"])):
            cursor.start(source["position"])
            if source["ahead"] == "end":
                self.ahead[i] = END
            elif source["ahead"] == "read":
                self._read_ahead(i)

    def _read_ahead(self, i: int) -> None:
        self.before[i] = self.cursors[i].position()
        self.ahead[i] = self.cursors[i].next()

    def __next__(self) -> Any:
        if not self.started:
            self._start()
        without = self.owner.stopping_strategy == "all_exhausted_without_replacement"
        stop = all if self.owner.stopping_strategy != "first_exhausted" else any
        while not self.finished:
            i = self._source_at(self.draws)
            self.draws += 1
            if stop(self.exhausted):
                self.finished = True
                break
            if self.exhausted[i] and without:
                continue
            if self.ahead[i] is None:
                self._read_ahead(i)
            result = self.ahead[i]
            self._read_ahead(i)
            if self.ahead[i] is END:
                self.exhausted[i] = True
                if not without:  # restart it, in case the strategy goes on
                    self.cursors[i].start()
                    self.ahead[i] = None
            if result is not END:
                return result
        raise StopIteration

    # -- state ---------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        if self.pending is not None:
            return self.pending
        sources: list[dict[str, Any]] = []
        for i, cursor in enumerate(self.cursors):
            ahead = self.ahead[i]
            if ahead is END:
                sources.append({"position": None, "ahead": "end"})
            elif ahead is None:
                position = cursor.position() if self.started else None
                sources.append({"position": position, "ahead": "none"})
            else:
                sources.append({"position": self.before[i], "ahead": "read"})
        return {
            "draws": self.draws,
            "exhausted": list(self.exhausted),
            "finished": self.finished,
            "sources": sources,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        keys = ("draws", "exhausted", "finished", "sources")
        if not isinstance(state, dict) or any(k not in state for k in keys):
            raise ValueError(f"not a Mux state: {state!r:.200}")
        if len(state["sources"]) != len(self.cursors):
            raise ValueError(
                f"the state has {len(state['sources'])} sources and this Mux "
                f"{len(self.cursors)}: resume with the same datasets"
            )
        self.pending = state


class WeightedOrder:
    """The map-style mux: the order of an epoch over several sources concatenated in one
    dataset, each sample's source drawn by weight (as :class:`Mux`), for a sampler's ``order``
    (``DynamicBucketingSampler(order=...)``).

    ``sources[i]`` is row ``i``'s source (0 .. ``len(weights) - 1``). An epoch is
    ``len(sources)`` draws from ``epoch_rng(seed, epoch)``: draw ``j`` picks source ``s`` with
    probability ``weights[s] / sum(weights)`` and takes that source's next row, each source
    going through its rows in a random order, a new one each pass (a source drawn more often
    than it has rows repeats rows; one drawn less leaves some out this epoch). A pure function
    of ``(seed, epoch)``: a loader resumed after ``b`` batches goes on exactly, and
    :meth:`positions` gives each source's position (its rows taken) at any point of the epoch.
    """

    def __init__(self, sources: Sequence[int] | np.ndarray, weights: Sequence[float]) -> None:
        self.sources = np.asarray(sources, dtype=np.int64).reshape(-1)
        values = [float(w) for w in weights]
        if any(not math.isfinite(w) or w < 0 for w in values) or sum(values) <= 0:
            raise ValueError(f"weights must be finite, >= 0 and not all 0, got {values}")
        if len(self.sources) and (self.sources.min() < 0 or self.sources.max() >= len(values)):
            raise ValueError(f"sources must be in 0..{len(values) - 1}: one per weight")
        self.rows = [np.flatnonzero(self.sources == s) for s in range(len(values))]
        for s, rows in enumerate(self.rows):
            if values[s] > 0 and not len(rows):
                raise ValueError(f"source {s} has weight {values[s]} and no rows")
        self.weights = values
        self.probabilities = np.asarray(values) / sum(values)

    def draws(self, seed: int, epoch: int) -> np.ndarray:
        """Each draw's source, for the epoch."""
        rng = epoch_rng(seed, epoch)
        return rng.choice(len(self.weights), size=len(self.sources), p=self.probabilities)

    def __call__(self, seed: int, epoch: int) -> np.ndarray:
        """The epoch's row order."""
        picks = self.draws(seed, epoch)
        order = np.empty(len(picks), dtype=np.int64)
        for s, rows in enumerate(self.rows):
            where = np.flatnonzero(picks == s)
            if not len(where):
                continue
            passes = -(-len(where) // len(rows))
            ranks = [epoch_rng(seed, epoch, s + 1, p).permutation(len(rows)) for p in range(passes)]
            order[where] = rows[np.concatenate(ranks)[: len(where)]]
        return order

    def positions(self, seed: int, epoch: int, samples: int) -> list[int]:
        """How many rows each source has given after the epoch's first ``samples`` draws."""
        picks = self.draws(seed, epoch)[:samples]
        return [int((picks == s).sum()) for s in range(len(self.weights))]
