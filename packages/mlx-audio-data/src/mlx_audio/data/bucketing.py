"""Length bucketing: batches of similar-length samples, so padding is small and the padded
shapes come from a short list (a compiled step traces once per shape, not once per batch)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

from .sampler import Sampler, epoch_rng
from .support import check_replicas

__all__ = ["BucketBatchSampler"]


class BucketBatchSampler(Sampler[list[int]]):
    """Index batches drawn from length buckets (a ``batch_sampler`` for the DataLoader).

    ``lengths[i]`` is sample ``i``'s length (samples or frames, the axis ``PadCollate`` pads;
    audio datasets give it cheaply from file headers: ``AudioFolder.lengths()``). Buckets are
    ``(boundaries[k-1], boundaries[k]]``; by default ``num_buckets`` boundaries at quantiles of
    ``lengths`` (the last one the longest sample). Pad each batch to its bucket's upper
    boundary with ``PadCollate(pad_to_lengths=sampler.boundaries)``: at most
    ``len(boundaries)`` padded lengths ever reach the model.

    Each epoch (``set_epoch``; the DataLoader calls it) shuffles within buckets and then the
    order of the batches, as a pure function of ``(seed, epoch)``: the same batches every run,
    resumable. ``shuffle=False`` yields buckets shortest first, in dataset order within each.
    ``seed=None`` takes the DataLoader's seed. ``drop_last`` drops each bucket's short batch.

    Data-parallel: with ``num_replicas``/``rank`` (or :meth:`for_rank`) every rank draws the
    same epoch's batches and keeps every ``num_replicas``-th one from ``rank`` on, the list first
    padded by repeating batches so every rank gets the same count (unequal counts deadlock).
    """

    def __init__(
        self,
        lengths: Sequence[int] | np.ndarray,
        batch_size: int,
        num_buckets: int = 8,
        boundaries: Sequence[int] | None = None,
        shuffle: bool = True,
        drop_last: bool = False,
        seed: int | None = None,
        num_replicas: int = 1,
        rank: int = 0,
    ) -> None:
        check_replicas(num_replicas, rank)
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size <= 0:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        self.lengths = np.asarray(lengths, dtype=np.int64).reshape(-1)
        if len(self.lengths) == 0:
            raise ValueError("BucketBatchSampler needs at least one length")
        if (self.lengths < 0).any():
            raise ValueError("lengths must be >= 0")
        if boundaries is None:
            if (
                isinstance(num_buckets, bool)
                or not isinstance(num_buckets, int)
                or num_buckets <= 0
            ):
                raise ValueError(f"num_buckets must be a positive int, got {num_buckets!r}")
            quantiles = np.quantile(
                self.lengths, np.linspace(0, 1, num_buckets + 1)[1:], method="higher"
            )
            boundaries = sorted({int(q) for q in quantiles})
        else:
            boundaries = sorted({int(b) for b in boundaries})
            if int(self.lengths.max()) > boundaries[-1]:
                raise ValueError(
                    f"the longest sample ({int(self.lengths.max())}) exceeds the last boundary "
                    f"({boundaries[-1]}); add a boundary or crop the samples"
                )
        self.boundaries: list[int] = list(boundaries)
        self.batch_size = batch_size
        self.shuffle = bool(shuffle)
        self.drop_last = bool(drop_last)
        self.seed = seed
        self.num_replicas = num_replicas
        self.rank = rank
        self.generator = None  # a DataLoader fills ``seed`` from its own when None
        self.bucket_of = np.searchsorted(np.asarray(self.boundaries), self.lengths, side="left")

    def _buckets(self) -> list[np.ndarray]:
        return [np.flatnonzero(self.bucket_of == k) for k in range(len(self.boundaries))]

    def index_batches(self) -> list[np.ndarray]:
        """This epoch's batches as index arrays."""
        rng = None
        if self.shuffle:
            if self.seed is None:
                self.seed = int(np.random.randint(0, 2**31 - 1))
            rng = epoch_rng(self.seed, self.epoch)
        batches: list[np.ndarray] = []
        for members in self._buckets():
            order = rng.permutation(members) if rng is not None else members
            stop = len(order) - len(order) % self.batch_size if self.drop_last else len(order)
            batches.extend(order[i : i + self.batch_size] for i in range(0, stop, self.batch_size))
        if rng is not None:
            batches = [batches[i] for i in rng.permutation(len(batches))]
        if self.num_replicas > 1:
            total = -(-len(batches) // self.num_replicas) * self.num_replicas
            batches = (batches * (-(-total // max(len(batches), 1))))[:total]
            batches = batches[self.rank :: self.num_replicas]
        return batches

    def for_rank(self, num_replicas: int, rank: int, seed: int | None = None) -> BucketBatchSampler:
        """The same sampler (buckets, batch size, seed) restricted to ``rank``'s share."""
        return BucketBatchSampler(
            self.lengths,
            self.batch_size,
            boundaries=self.boundaries,
            shuffle=self.shuffle,
            drop_last=self.drop_last,
            seed=self.seed if self.seed is not None else seed,
            num_replicas=num_replicas,
            rank=rank,
        )

    def __iter__(self) -> Iterator[list[int]]:
        return (batch.tolist() for batch in self.index_batches())

    def __len__(self) -> int:
        sizes = np.bincount(self.bucket_of, minlength=len(self.boundaries))
        if self.drop_last:
            count = int((sizes // self.batch_size).sum())
        else:
            count = int((-(-sizes // self.batch_size)).sum())
        return -(-count // self.num_replicas)

    def padding_fraction(self) -> float:
        """Share of padded steps when each batch is padded to its bucket's boundary."""
        bounds = np.asarray(self.boundaries)[self.bucket_of]
        return float(1.0 - self.lengths.sum() / max(int(bounds.sum()), 1))
