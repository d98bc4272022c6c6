"""Lhotse's dynamic bucketing, shared by :class:`DynamicBucketingSampler` (map-style: the entries
are dataset indices) and :class:`DynamicBucketingDataset` (a stream: the entries are samples).

A literal port of ``lhotse.dataset.sampling.dynamic_bucketing`` (``DynamicBucketer``,
``estimate_duration_buckets``, ``TimeConstraint``, ``BucketSelectionState``) and of the rank
split of ``CutSampler.__next__``, down to the order in which it draws from its Python
``random.Random`` generators: with the same durations in the same order it yields Lhotse's
batches (``tests/lhotse_parity`` checks it against Lhotse itself).

NOTE [bucketer state]: everything that decides the next batches is plain data -- the buckets'
entries in insertion order, the two generators' states, the bucket-selection counters -- so a
position is saved and restored exactly (:meth:`DynamicBucketer.state` /
:meth:`DynamicBucketer.restore`). The entries themselves are the caller's business (indices,
or source positions that a stream re-reads).
"""

from __future__ import annotations

import random
import warnings
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, Generic, TypeVar

import numpy as np

K = TypeVar("K")
Entry = tuple[Any, float]  # (key, duration)

LHOTSE_BUCKET_SEED = 1234  # Lhotse's fixed seed of the bucket-selection generator


def estimate_duration_buckets(durations: Iterable[float], num_buckets: int) -> list[float]:
    """Lhotse's ``estimate_duration_buckets``: ``num_buckets - 1`` boundaries that split the
    sorted durations into buckets of about equal *total* duration. Bucket ``k`` holds the
    durations ``d`` with ``bins[k-1] < d <= bins[k]`` (``bisect_left``)."""
    if isinstance(num_buckets, bool) or not isinstance(num_buckets, int) or num_buckets < 2:
        raise ValueError(f"num_buckets must be an int >= 2 to estimate bins, got {num_buckets!r}")
    sizes = np.sort(np.asarray(list(durations), dtype=np.float64))
    if num_buckets > len(sizes):
        raise ValueError(
            f"The number of buckets ({num_buckets}) must be smaller than or equal to the number "
            f"of samples ({len(sizes)}) used to estimate them"
        )
    size_per_bucket = sizes.sum() / num_buckets
    bins: list[float] = []
    total = 0.0
    for size in sizes.tolist():
        if total > size_per_bucket:
            bins.append(size)
            total = 0.0
        total += size
    return bins


class TimeConstraint:
    """Lhotse's ``TimeConstraint``: a batch is full once one more sample as long as its longest
    would make ``batch size * longest`` exceed ``max_duration`` (what the padded batch costs),
    or once it holds ``max_cuts`` samples. ``quadratic_duration`` counts each duration as
    ``d + d**2 / quadratic_duration`` (for models quadratic in the length)."""

    __slots__ = ("max_duration", "max_cuts", "quadratic_duration", "current", "num_cuts", "longest")

    def __init__(
        self,
        max_duration: float | None,
        max_cuts: int | None,
        quadratic_duration: float | None,
    ) -> None:
        self.max_duration = max_duration
        self.max_cuts = max_cuts
        self.quadratic_duration = quadratic_duration
        self.current = 0.0
        self.num_cuts = 0
        self.longest = 0.0

    def effective(self, duration: float) -> float:
        q = self.quadratic_duration
        return duration if q is None else duration + (duration**2) / q

    def add(self, duration: float) -> None:
        if self.max_duration is not None:
            duration = self.effective(duration)
            self.current += duration
            self.longest = max(self.longest, duration)
        self.num_cuts += 1

    def exceeded(self) -> bool:
        if self.max_cuts is not None and self.num_cuts > self.max_cuts:
            return True
        if self.max_duration is None:
            return False
        return self.num_cuts * self.longest > self.max_duration

    def close_to_exceeding(self) -> bool:
        if self.max_cuts is not None and self.num_cuts >= self.max_cuts:
            return True
        if self.max_duration is not None:
            return (self.num_cuts + 1) * self.longest > self.max_duration
        return False

    def fresh(self) -> TimeConstraint:
        return TimeConstraint(self.max_duration, self.max_cuts, self.quadratic_duration)


class _NotEnoughData(Exception):
    pass


def _rng_state(rng: random.Random) -> list[Any]:
    version, internal, gauss = rng.getstate()
    return [version, list(internal), gauss]


def _set_rng_state(rng: random.Random, state: list[Any]) -> None:
    rng.setstate((state[0], tuple(state[1]), state[2]))


class DynamicBucketer(Generic[K]):
    """Lhotse's ``DynamicBucketer`` over ``(key, duration)`` entries pulled from ``pull``.

    ``fill(n)`` pulls up to ``n`` entries into their buckets (``bisect_left(duration_bins, d)``);
    ``next_batch()`` picks a bucket and takes one batch from it (raises ``StopIteration`` at the
    end), then pulls as many entries as it took. ``world_size`` only makes the bucket-selection
    generator repeat each choice that many times (Lhotse's ``sync_buckets``: the ranks' batches
    of one step come from the same bucket).
    """

    def __init__(
        self,
        pull: Callable[[], Entry | None],
        duration_bins: Sequence[float],
        constraint: TimeConstraint,
        buffer_size: int,
        shuffle: bool,
        drop_last: bool,
        rng: random.Random,
        bucket_rng: random.Random | None,
        world_size: int,
    ) -> None:
        self.pull = pull
        self.bins = list(duration_bins)
        self.constraint = constraint
        self.buffer_size = buffer_size
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.rng = rng
        self.bucket_rng = bucket_rng
        self.world_size = world_size
        self.buckets: list[list[Entry]] = [[] for _ in range(len(self.bins) + 1)]
        self.started = False
        self.exhausted = False
        self.selected: int | None = None  # BucketSelectionState: the bucket chosen ...
        self.usage = 0  # ... and how many times it was used

    # -- buffer --------------------------------------------------------------------------------
    def bucket_of(self, duration: float) -> int:
        return bisect_left(self.bins, duration)

    def put(self, entry: Entry) -> None:
        self.buckets[self.bucket_of(entry[1])].append(entry)

    def fill(self, count: int) -> None:
        for _ in range(count):
            if self.exhausted:
                return
            entry = self.pull()
            if entry is None:
                self.exhausted = True
                return
            self.put(entry)

    # -- batches -------------------------------------------------------------------------------
    def next_batch(self) -> list[Entry]:
        if not self.started:
            self.started = True
            self.fill(self.buffer_size)
        bucket = self.buckets[self._select()]
        order: Iterable[int] = range(len(bucket))
        if self.shuffle:  # pick_at_random: a permutation of the whole bucket, taken in order
            shuffled = list(range(len(bucket)))
            self.rng.shuffle(shuffled)
            order = shuffled
        constraint = self.constraint.fresh()
        used: list[int] = []
        for position in order:  # DurationBatcher._collect_batch
            used.append(position)
            constraint.add(bucket[position][1])
            if constraint.close_to_exceeding():
                if constraint.exceeded() and len(used) == 1:
                    warnings.warn(
                        "We have exceeded the max_duration constraint during sampling but have "
                        "only 1 sample: a sample is longer than max_duration (Lhotse's warning)",
                        stacklevel=3,
                    )
                break
        if not used:
            raise StopIteration
        batch = [bucket[p] for p in used]
        if self.shuffle:
            for position in sorted(used, reverse=True):
                del bucket[position]
        else:
            del bucket[: len(used)]
        self.fill(len(batch))
        return batch

    def _ready(self, bucket: list[Entry]) -> bool:
        constraint = self.constraint.fresh()
        for _, duration in bucket:
            constraint.add(duration)
            if constraint.close_to_exceeding():
                return True
        return False

    def _select(self) -> int:
        if self.bucket_rng is None:  # Lhotse's selection algorithm 1 (sync_buckets=False)
            ready = [k for k, b in enumerate(self.buckets) if self._ready(b)]
            if not ready:
                nonempty = [k for k, b in enumerate(self.buckets) if b]
                if self.drop_last or not nonempty:
                    raise StopIteration
                ready = nonempty
            return self.rng.choice(ready)
        saved = (self.bucket_rng.getstate(), self.selected, self.usage)
        try:
            return self._scan(self._ready)
        except _NotEnoughData:
            if self.drop_last:
                raise StopIteration from None
            self.bucket_rng.setstate(saved[0])
            self.selected, self.usage = saved[1], saved[2]
            try:
                return self._scan(lambda b: len(b) > 0)
            except _NotEnoughData:
                raise StopIteration from None

    def _scan(self, predicate: Callable[[list[Entry]], bool]) -> int:
        assert self.bucket_rng is not None
        if self.selected is None or self.usage == self.world_size:
            self.selected = self.bucket_rng.randrange(len(self.buckets))
            self.usage = 0
        self.usage += 1
        index = self.selected
        attempts = 0
        low = high = index
        count = len(self.buckets)
        while not (0 <= index < count and predicate(self.buckets[index])):
            if low < 0 and high >= count:
                raise _NotEnoughData
            attempts += 1
            index = index + (1 if attempts % 2 == 0 else -1) * attempts
            low, high = min(low, index), max(high, index)
        return index

    # -- state (NOTE [bucketer state]) ----------------------------------------------------------
    def state(self, key_state: Callable[[Any], Any]) -> dict[str, Any]:
        return {
            "buckets": [[key_state(key) for key, _ in bucket] for bucket in self.buckets],
            "rng": _rng_state(self.rng),
            "bucket_rng": None if self.bucket_rng is None else _rng_state(self.bucket_rng),
            "selected": self.selected,
            "usage": self.usage,
            "started": self.started,
            "exhausted": self.exhausted,
        }

    def restore(self, state: dict[str, Any], entries: Sequence[Sequence[Entry]]) -> None:
        self.buckets = [list(bucket) for bucket in entries]
        _set_rng_state(self.rng, state["rng"])
        if self.bucket_rng is not None and state["bucket_rng"] is not None:
            _set_rng_state(self.bucket_rng, state["bucket_rng"])
        self.selected, self.usage = state["selected"], int(state["usage"])
        self.started, self.exhausted = bool(state["started"]), bool(state["exhausted"])


def split_sequence(items: list[Any], num_splits: int) -> list[list[Any]]:
    """Lhotse's ``split_sequence(seq, num_splits)`` (no shuffle, no drop_last): contiguous
    chunks, the first ``len % num_splits`` one item longer."""
    size, extra = divmod(len(items), num_splits)
    out, start = [], 0
    for i in range(num_splits):
        stop = start + size + (1 if i < extra else 0)
        out.append(items[start:stop])
        start = stop
    return out


def rank_batches(
    next_batch: Callable[[], list[Entry]], world_size: int, rank: int, drop_last: bool
) -> Iterator[list[Entry]]:
    """Lhotse's ``CutSampler.__next__``: draw ``world_size`` batches, keep the ``rank``-th.
    At the end (``drop_last=False``) the last, incomplete group is pooled and split into
    ``world_size`` parts (repeating its first samples when there are fewer than ranks), so
    every rank gets the same number of batches; ``drop_last=True`` drops it."""
    while True:
        batches = []
        for _ in range(world_size):
            try:
                batches.append(next_batch())
            except StopIteration:
                if world_size == 1 or drop_last:
                    return
        if not batches:
            return
        if len(batches) != world_size:
            combined = [entry for batch in batches for entry in batch]
            while (missing := world_size - len(combined)) > 0:
                combined = combined + combined[:missing]
            batches = split_sequence(combined, world_size)
        yield batches[rank]


def batch_stats(batches: Iterable[Sequence[float]]) -> dict[str, Any]:
    """Padding and batch sizes of batches given as their samples' durations (lengths).

    ``padding_fraction``: the share of padded steps when each batch is padded to its longest
    sample; ``batch_sizes``: a histogram ``{size: count}``."""
    total = padded = 0.0
    sizes: dict[int, int] = {}
    count = samples = 0
    for durations in batches:
        if not len(durations):
            continue
        count += 1
        samples += len(durations)
        total += float(sum(durations))
        padded += float(max(durations)) * len(durations)
        sizes[len(durations)] = sizes.get(len(durations), 0) + 1
    return {
        "batches": count,
        "samples": samples,
        "padding_fraction": 0.0 if padded <= 0 else 1.0 - total / padded,
        "batch_sizes": dict(sorted(sizes.items())),
        "mean_batch_size": samples / count if count else 0.0,
    }
