"""Batching by duration over a stream: Lhotse's ``DynamicBucketer`` inside a bounded buffer, as
an ``IterableDataset`` of batches (lists of samples) for ``DataLoader(..., batch_size=None,
collate_fn=...)``; resumable exactly through the DataLoader's state, with or without workers."""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from ._bucketer import (
    LHOTSE_BUCKET_SEED,
    DynamicBucketer,
    TimeConstraint,
    batch_stats,
    estimate_duration_buckets,
    rank_batches,
)
from ._loader.worker import get_worker_info
from ._streams import END, SourceCursor, duration_reader
from .dataset import IterableDataset
from .dynamic_bucketing import _positive, check_bucketing
from .support import check_replicas

__all__ = ["DynamicBucketingDataset"]


class DynamicBucketingDataset(IterableDataset[list[Any]]):
    """The batches of :class:`DynamicBucketingSampler` over a stream ``dataset``: a buffer of
    ``buffer_size`` samples spread over duration buckets, each batch taken from one bucket and
    closed by the ``max_duration`` / ``max_batch_size`` budget (every argument as the sampler's,
    which are Lhotse's). Yields lists of samples: batch them with
    ``DataLoader(this, batch_size=None, collate_fn=PadCollate())``.

    ``duration``: a function of a sample, or the key of its duration in the sample (a dict key
    or tuple position). ``duration_bins=None`` estimates them from the first
    ``num_samples_for_bins_estimate`` samples of ``dataset`` (read once, here, as Lhotse).
    Randomness comes from ``seed + epoch`` (``set_epoch``, as a Hugging Face stream's; call it
    each epoch when shuffling).

    Workers: each worker iterates its own copy, so ``dataset`` must split itself by worker
    (``get_worker_info()``); a worker's bucket choices use Lhotse's generator seeded with
    ``1234 + worker id``. Ranks (``num_replicas``/``rank``, or :meth:`for_rank`, which
    ``shard_loader`` and the Trainer call): as Lhotse, every rank reads the *same* stream
    (split by worker only, never by rank) and keeps every ``num_replicas``-th batch, the last
    group split evenly, so every rank gets the same number of batches. Keep the samples light
    (paths and durations) and load the audio in the ``collate_fn`` when the ranks are many.

    NOTE [stream bucketing state]: the state (the iterator's ``state_dict()``, saved by the
    DataLoader after every batch) is the source's position before the oldest sample still in
    the buffer (NOTE [source positions]), which of the samples read since are still buffered
    and in which bucket, and the bucketer's generators (NOTE [bucketer state]). A resume re-reads
    the source from that position and rebuilds the same buffer: exact, at the cost of re-reading
    the samples read since the oldest buffered one.
    """

    def __init__(
        self,
        dataset: Any,
        duration: Callable[[Any], float] | str | int,
        max_duration: float | None = None,
        max_batch_size: int | None = None,
        num_buckets: int = 10,
        duration_bins: Sequence[float] | None = None,
        num_samples_for_bins_estimate: int = 10000,
        buffer_size: int = 20000,
        quadratic_duration: float | None = None,
        shuffle: bool = False,
        drop_last: bool = False,
        seed: int = 0,
        sync_buckets: bool = True,
        num_replicas: int = 1,
        rank: int = 0,
    ) -> None:
        check_replicas(num_replicas, rank)
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ValueError(f"seed must be an int, got {seed!r}")
        bins = check_bucketing(
            max_duration,
            max_batch_size,
            quadratic_duration,
            buffer_size,
            num_buckets,
            duration_bins,
        )
        _positive("num_samples_for_bins_estimate", num_samples_for_bins_estimate, int)
        self.dataset = dataset
        self.duration = duration_reader(duration)
        if bins is None:
            head = itertools.islice(iter(dataset), num_samples_for_bins_estimate)
            bins = estimate_duration_buckets((self.duration(s) for s in head), num_buckets)
        self.duration_bins: list[float] = bins
        self.max_duration = max_duration
        self.max_batch_size = max_batch_size
        self.quadratic_duration = quadratic_duration
        self.buffer_size = buffer_size
        self.shuffle = bool(shuffle)
        self.drop_last = bool(drop_last)
        self.seed = seed
        self.sync_buckets = bool(sync_buckets)
        self.num_replicas = num_replicas
        self.rank = rank
        self.epoch = 0
        self._last: _BucketingIterator | None = None

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def for_rank(self, num_replicas: int, rank: int) -> DynamicBucketingDataset:
        """The same stream bucketing (bins, budget, seed, epoch) keeping ``rank``'s batches."""
        copy = DynamicBucketingDataset(
            self.dataset,
            self.duration,
            max_duration=self.max_duration,
            max_batch_size=self.max_batch_size,
            duration_bins=self.duration_bins,
            buffer_size=self.buffer_size,
            quadratic_duration=self.quadratic_duration,
            shuffle=self.shuffle,
            drop_last=self.drop_last,
            seed=self.seed,
            sync_buckets=self.sync_buckets,
            num_replicas=num_replicas,
            rank=rank,
        )
        copy.epoch = self.epoch
        return copy

    def __iter__(self) -> Iterator[list[Any]]:
        self._last = _BucketingIterator(self)
        return self._last

    def stats(self) -> dict[str, Any]:
        """The batches the last iteration in this process yielded so far (with workers, each
        worker's copy keeps its own): as :meth:`DynamicBucketingSampler.stats`."""
        return batch_stats(self._last.durations if self._last is not None else [])

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_last"] = None  # a worker gets the settings, not this process's iteration
        return state


class _BucketingIterator(Iterator[list[Any]]):
    """One pass of a :class:`DynamicBucketingDataset` (NOTE [stream bucketing state])."""

    def __init__(self, owner: DynamicBucketingDataset) -> None:
        self.owner = owner
        self.cursor = SourceCursor(owner.dataset)
        self.pending: dict[str, Any] | None = None
        self.bucketer: DynamicBucketer[int] | None = None
        self.groups: Iterator[list[tuple[Any, float]]] | None = None
        self.read = 0  # samples read from the source in this pass
        self.items: dict[int, tuple[Any, dict[str, Any]]] = {}  # buffered: (sample, position)
        self.finished = False
        self.durations: list[list[float]] = []

    # -- iteration -----------------------------------------------------------------------------
    def __next__(self) -> list[Any]:
        if self.groups is None:
            self._begin()
        assert self.groups is not None
        if self.finished:
            raise StopIteration
        batch = next(self.groups, None)
        if batch is None:
            self.finished = True
            raise StopIteration
        self.durations.append([d for _, d in batch])
        return [sample for sample, _ in batch]

    def _begin(self) -> None:
        owner = self.owner
        info = get_worker_info()
        self.bucketer = DynamicBucketer(
            self._pull,
            owner.duration_bins,
            TimeConstraint(owner.max_duration, owner.max_batch_size, owner.quadratic_duration),
            owner.buffer_size,
            owner.shuffle,
            owner.drop_last,
            random.Random(owner.seed + owner.epoch),
            random.Random(LHOTSE_BUCKET_SEED + (info.id if info is not None else 0))
            if owner.sync_buckets
            else None,
            owner.num_replicas,
        )
        if self.pending is not None:
            self._restore(self.pending)
            self.pending = None
        else:
            self.cursor.start()
        self.groups = rank_batches(self._take, owner.num_replicas, owner.rank, owner.drop_last)

    def _pull(self) -> tuple[int, float] | None:
        position = self.cursor.position()
        sample = self.cursor.next()
        if sample is END:
            return None
        key = self.read
        self.read += 1
        self.items[key] = (sample, position)
        return key, self.owner.duration(sample)

    def _take(self) -> list[tuple[Any, float]]:
        assert self.bucketer is not None
        return [(self.items.pop(key)[0], d) for key, d in self.bucketer.next_batch()]

    # -- state ---------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        if self.pending is not None:
            return self.pending
        if self.bucketer is None:
            return {"read": 0}  # not started: a fresh pass
        oldest = min(self.items, default=self.read)
        position = self.items[oldest][1] if self.items else self.cursor.position()
        return {
            "num_replicas": self.owner.num_replicas,
            "rank": self.owner.rank,
            "read": self.read,
            "oldest": oldest,
            "source": position,
            "finished": self.finished,
            "bucketer": self.bucketer.state(lambda key: key),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if not isinstance(state, dict) or "read" not in state:
            raise ValueError(f"not a DynamicBucketingDataset state: {state!r:.200}")
        saved = (
            state.get("num_replicas", self.owner.num_replicas),
            state.get("rank", self.owner.rank),
        )
        if saved != (self.owner.num_replicas, self.owner.rank):
            raise ValueError(
                f"the state was saved by rank {saved[1]} of {saved[0]} and this stream is rank "
                f"{self.owner.rank} of {self.owner.num_replicas}: its batches would differ. Resume "
                "on the same number of ranks, or start the epoch afresh (loader.set_epoch(e))"
            )
        self.pending = state if "bucketer" in state else None

    def _restore(self, state: dict[str, Any]) -> None:
        assert self.bucketer is not None
        if state["finished"]:  # the pass had ended: nothing to rebuild
            self.finished = True
            return
        self.cursor.start(state["source"])
        buffered = {key for bucket in state["bucketer"]["buckets"] for key in bucket}
        for key in range(int(state["oldest"]), int(state["read"])):
            position = self.cursor.position()
            sample = self.cursor.next()
            if sample is END:
                raise ValueError(
                    f"{type(self.owner.dataset).__name__} ended early while a resume re-read the "
                    "buffered samples: its stream differs from the saved run's"
                )
            if key in buffered:
                self.items[key] = (sample, position)
        self.read = int(state["read"])
        entries = [
            [(key, self.owner.duration(self.items[key][0])) for key in bucket]
            for bucket in state["bucketer"]["buckets"]
        ]
        self.bucketer.restore(state["bucketer"], entries)
        self.finished = bool(state["finished"])
