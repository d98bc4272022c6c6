"""Batching by duration: Lhotse's ``DynamicBucketingSampler`` as a ``batch_sampler`` over a
map-style dataset (each batch holds as many samples as fit the duration budget, so short clips
make big batches and long ones small). The stream version is
:class:`~mlx_audio.data.DynamicBucketingDataset`; the algorithm is in ``_bucketer``."""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from ._bucketer import (
    LHOTSE_BUCKET_SEED,
    DynamicBucketer,
    TimeConstraint,
    batch_stats,
    estimate_duration_buckets,
    rank_batches,
)
from .sampler import Sampler, epoch_rng
from .support import check_replicas

__all__ = ["DynamicBucketingSampler", "estimate_duration_buckets", "check_bucketing"]


def _positive(name: str, value: Any, kind: type = float) -> None:
    ok = not isinstance(value, bool) and isinstance(value, (int, float) if kind is float else int)
    if not ok or not value > 0 or (kind is float and not math.isfinite(value)):
        what = "a positive number" if kind is float else "a positive int"
        raise ValueError(f"{name} must be {what} or None, got {value!r}")


def check_bucketing(
    max_duration: float | None,
    max_batch_size: int | None,
    quadratic_duration: float | None,
    buffer_size: int,
    num_buckets: int,
    duration_bins: Sequence[float] | None,
) -> list[float] | None:
    """Lhotse's argument checks, as one ``ValueError`` each; the bins as floats."""
    if max_duration is None and max_batch_size is None:
        raise ValueError(
            "give max_duration (the padded duration of a batch: batch size x its longest "
            "sample), max_batch_size, or both"
        )
    if max_duration is not None:
        _positive("max_duration", max_duration)
    if max_batch_size is not None:
        _positive("max_batch_size", max_batch_size, int)
    if quadratic_duration is not None:
        _positive("quadratic_duration", quadratic_duration)
    _positive("buffer_size", buffer_size, int)
    if duration_bins is None:
        if isinstance(num_buckets, bool) or not isinstance(num_buckets, int) or num_buckets < 2:
            raise ValueError(f"num_buckets must be an int >= 2, got {num_buckets!r}")
        return None
    bins = [float(b) for b in duration_bins]
    if bins != sorted(bins) or not all(math.isfinite(b) for b in bins):
        raise ValueError(f"duration_bins must be finite and sorted ascending, got {bins}")
    return bins


class DynamicBucketingSampler(Sampler[list[int]]):
    """Index batches of similar duration whose padded size fits a budget (Lhotse's
    ``DynamicBucketingSampler``, every argument with Lhotse's meaning), for
    ``DataLoader(dataset, batch_sampler=...)``.

    ``durations[i]`` is sample ``i``'s duration in any unit (seconds, or samples/frames:
    ``AudioFolder.lengths()`` reads them from file headers); ``max_duration``,
    ``duration_bins`` and ``quadratic_duration`` are in the same unit. Samples go to buckets
    by duration (``duration_bins``: ``num_buckets - 1`` boundaries, by default estimated from
    the first ``num_samples_for_bins_estimate`` durations so that every bucket holds about the
    same total duration). A buffer of ``buffer_size`` samples is spread over the buckets; each
    batch comes from one bucket and is closed once one more sample as long as its longest would
    make ``batch size x longest`` (its padded duration; with ``quadratic_duration`` each
    duration counts as ``d + d**2 / quadratic_duration``) exceed ``max_duration``, or once it
    holds ``max_batch_size`` samples (Lhotse's ``max_cuts``). The buffer is then refilled.
    As in Lhotse, the check follows the sample that closes the batch, so one longer than the
    batch's others can take ``batch size x longest`` past ``max_duration``.

    ``shuffle=True``: the dataset order is a permutation drawn from ``(seed, epoch)``, and
    each batch is drawn at random within its bucket (``random.Random(seed + epoch)``, as
    Lhotse). ``drop_last``: stop at the first step where no bucket holds a full batch.
    ``sync_buckets`` (Lhotse's): the bucket of each step is drawn from a generator of its own
    with a fixed seed, the same on every rank. ``seed=None`` takes the DataLoader's seed.

    Data-parallel (``num_replicas``/``rank``, or :meth:`for_rank`; ``shard_loader`` and the
    Trainer call it): every rank draws the same batches and keeps every ``num_replicas``-th
    one; the last incomplete group is pooled and split so every rank gets the same number of
    batches (Lhotse's ``CutSampler``). Batches are a pure function of ``(seed, epoch)``: the
    DataLoader's ``state_dict()`` resumes them exactly. :meth:`stats` reports the padding
    fraction and the batch-size histogram of the epoch.

    ``order`` (Lhotse's sampler over a ``CutSet.mux``): a function ``(seed, epoch) -> indices``
    giving the order the samples enter the buckets instead of the (shuffled) dataset order, e.g.
    :class:`~mlx_audio.data.interleave.WeightedOrder` for several corpora drawn by weight.
    """

    def __init__(
        self,
        durations: Sequence[float] | np.ndarray,
        max_duration: float | None = None,
        max_batch_size: int | None = None,
        num_buckets: int = 10,
        duration_bins: Sequence[float] | None = None,
        num_samples_for_bins_estimate: int = 10000,
        buffer_size: int = 20000,
        quadratic_duration: float | None = None,
        shuffle: bool = False,
        drop_last: bool = False,
        seed: int | None = None,
        sync_buckets: bool = True,
        num_replicas: int = 1,
        rank: int = 0,
        order: Callable[[int, int], np.ndarray] | None = None,
    ) -> None:
        check_replicas(num_replicas, rank)
        values = np.asarray(durations, dtype=np.float64).reshape(-1)
        if len(values) == 0:
            raise ValueError("DynamicBucketingSampler needs at least one duration")
        if not np.isfinite(values).all() or (values < 0).any():
            raise ValueError("durations must be finite and >= 0")
        bins = check_bucketing(
            max_duration,
            max_batch_size,
            quadratic_duration,
            buffer_size,
            num_buckets,
            duration_bins,
        )
        _positive("num_samples_for_bins_estimate", num_samples_for_bins_estimate, int)
        if bins is None:
            bins = estimate_duration_buckets(values[:num_samples_for_bins_estimate], num_buckets)
        self.durations = values
        self.duration_bins: list[float] = bins
        self.num_buckets = len(bins) + 1
        self.max_duration = max_duration
        self.max_batch_size = max_batch_size
        self.quadratic_duration = quadratic_duration
        self.buffer_size = buffer_size
        self.num_samples_for_bins_estimate = num_samples_for_bins_estimate
        self.shuffle = bool(shuffle)
        self.drop_last = bool(drop_last)
        self.sync_buckets = bool(sync_buckets)
        self.seed = seed
        self.generator = None  # a DataLoader fills ``seed`` from its own when None
        self.num_replicas = num_replicas
        self.rank = rank
        rows = getattr(order, "sources", None)  # a WeightedOrder: one source per sample
        if rows is not None and len(rows) != len(values):
            raise ValueError(
                f"order covers {len(rows)} samples (its sources) but durations has {len(values)}: "
                "give the order one source per sample of the dataset"
            )
        self.order = order
        self._cache: tuple[tuple[int, int], list[np.ndarray]] | None = None

    def index_batches(self) -> list[np.ndarray]:
        """This epoch's batches (this rank's share) as index arrays."""
        key = self._key()
        if self._cache is None or self._cache[0] != key:
            self._cache = (key, list(self._generate(*key)))
        return list(self._cache[1])

    def _key(self) -> tuple[int, int]:
        if self.seed is None:
            self.seed = int(np.random.randint(0, 2**31 - 1))
        return int(self.seed), int(self.epoch)

    def _generate(self, seed: int, epoch: int) -> Iterator[np.ndarray]:
        n = len(self.durations)
        if self.order is not None:
            order = np.asarray(self.order(seed, epoch), dtype=np.int64).reshape(-1)
            if len(order) and (order.min() < 0 or order.max() >= n):
                bad = int(order.min()) if order.min() < 0 else int(order.max())
                raise ValueError(
                    f"order({seed}, {epoch}) gave index {bad}; durations has {n} samples "
                    f"(indices 0..{n - 1})"
                )
        else:
            order = epoch_rng(seed, epoch).permutation(n) if self.shuffle else np.arange(n)
        stream = iter(order.tolist())
        durations = self.durations.tolist()

        def pull() -> tuple[int, float] | None:
            index = next(stream, None)
            return None if index is None else (index, durations[index])

        bucketer: DynamicBucketer[int] = DynamicBucketer(
            pull,
            self.duration_bins,
            TimeConstraint(self.max_duration, self.max_batch_size, self.quadratic_duration),
            self.buffer_size,
            self.shuffle,
            self.drop_last,
            random.Random(seed + epoch),
            random.Random(LHOTSE_BUCKET_SEED) if self.sync_buckets else None,
            self.num_replicas,
        )
        batches = rank_batches(bucketer.next_batch, self.num_replicas, self.rank, self.drop_last)
        for b in batches:
            yield np.fromiter((i for i, _ in b), dtype=np.int64, count=len(b))

    def for_rank(
        self, num_replicas: int, rank: int, seed: int | None = None
    ) -> DynamicBucketingSampler:
        """The same sampler (bins, budget, seed) restricted to ``rank``'s share."""
        return DynamicBucketingSampler(
            self.durations,
            max_duration=self.max_duration,
            max_batch_size=self.max_batch_size,
            duration_bins=self.duration_bins,
            buffer_size=self.buffer_size,
            quadratic_duration=self.quadratic_duration,
            shuffle=self.shuffle,
            drop_last=self.drop_last,
            seed=self.seed if self.seed is not None else seed,
            sync_buckets=self.sync_buckets,
            num_replicas=num_replicas,
            rank=rank,
            order=self.order,
        )

    def __iter__(self) -> Iterator[list[int]]:
        """This epoch's batches, computed as they are taken (the DataLoader takes the whole
        epoch at once: ``index_batches``)."""
        key = self._key()
        if self._cache is not None and self._cache[0] == key:
            return (batch.tolist() for batch in self._cache[1])
        return (batch.tolist() for batch in self._generate(*key))

    def __len__(self) -> int:
        """The number of batches of an epoch, when it is the same for every epoch
        (``shuffle=False`` with ``sync_buckets``). A shuffling sampler's count changes from epoch
        to epoch, so it has no ``len()`` (a ``TypeError``, as Lhotse's): a loop over it, or a
        Trainer, runs each epoch to its end instead of stopping at a stale count;
        ``stats()["batches"]`` gives the current epoch's."""
        if self.shuffle or not self.sync_buckets:
            raise TypeError(
                "a shuffling DynamicBucketingSampler has no len(): its number of batches changes "
                "from epoch to epoch (stats()['batches'] gives this epoch's)"
            )
        return len(self.index_batches())

    def stats(self) -> dict[str, Any]:
        """This epoch's batches (this rank's): ``batches``, ``samples``, ``padding_fraction``
        (the share of padded steps when each batch is padded to its longest sample),
        ``batch_sizes`` (``{size: count}``) and ``mean_batch_size``."""
        return batch_stats(self.durations[b] for b in self.index_batches())

    def padding_fraction(self) -> float:
        """The share of padded steps when each batch is padded to its longest sample."""
        return float(self.stats()["padding_fraction"])
