"""Samplers with torch's names; random order is a pure function of (seed, epoch).

A sampler that defines ``indices() -> np.ndarray`` lets the DataLoader slice index batches out
of one numpy array instead of building Python lists, and skip batches on resume for free.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence, Sized
from typing import Any, Generic, TypeVar, cast

import numpy as np

from ._errors import WeightsError

__all__ = [
    "Sampler",
    "SequentialSampler",
    "RandomSampler",
    "BatchSampler",
    "SubsetRandomSampler",
    "WeightedRandomSampler",
    "DistributedSampler",
    "epoch_rng",
]


def epoch_rng(seed: int, epoch: int, *more: int) -> np.random.Generator:
    """The generator for (seed, epoch, ...): independent streams, same numbers every run."""
    return np.random.default_rng([int(seed) & 0xFFFFFFFFFFFFFFFF, int(epoch), *map(int, more)])


T_co = TypeVar("T_co", covariant=True)


class Sampler(Generic[T_co]):
    """Base class: iterate dataset indices. ``set_epoch(e)`` reshuffles deterministically."""

    epoch: int = 0

    def __iter__(self) -> Iterator[T_co]:
        raise NotImplementedError

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)


class SequentialSampler(Sampler[int]):
    """0, 1, ..., len(data_source) - 1."""

    def __init__(self, data_source: Sized) -> None:
        self.data_source = data_source

    def indices(self) -> np.ndarray:
        return np.arange(len(self.data_source), dtype=np.int64)

    def __iter__(self) -> Iterator[int]:
        return iter(range(len(self.data_source)))

    def __len__(self) -> int:
        return len(self.data_source)


class RandomSampler(Sampler[int]):
    """A random permutation (or draws with replacement) that depends only on (seed, epoch).

    ``seed=None`` takes the DataLoader's seed, or else one from numpy's global RNG at first
    use. A numpy ``generator`` instead draws fresh numbers each pass (not resumable).
    """

    def __init__(
        self,
        data_source: Sized,
        replacement: bool = False,
        num_samples: int | None = None,
        generator: np.random.Generator | None = None,
        seed: int | None = None,
    ) -> None:
        if not isinstance(replacement, bool):
            raise TypeError(
                f"replacement should be a boolean value, but got replacement={replacement}"
            )
        if num_samples is not None and (not isinstance(num_samples, int) or num_samples <= 0):
            raise ValueError(
                f"num_samples should be a positive integer value, but got num_samples={num_samples}"
            )
        if generator is not None and seed is not None:
            raise ValueError("RandomSampler: pass seed or generator, not both")
        self.data_source = data_source
        self.replacement = replacement
        self._num_samples = num_samples
        self.generator = generator
        self.seed = seed

    @property
    def num_samples(self) -> int:
        return len(self.data_source) if self._num_samples is None else self._num_samples

    def indices(self) -> np.ndarray:
        n = len(self.data_source)
        if self.generator is not None:
            rng = self.generator
        else:
            if self.seed is None:
                self.seed = int(np.random.randint(0, 2**31 - 1))
            rng = epoch_rng(self.seed, self.epoch)
        if self.replacement:
            return rng.integers(0, n, size=self.num_samples, dtype=np.int64)
        reps = -(-self.num_samples // n) if n else 0
        perm = np.concatenate([rng.permutation(n) for _ in range(reps)]) if reps else np.zeros(0)
        return perm[: self.num_samples].astype(np.int64)

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices().tolist())

    def __len__(self) -> int:
        return self.num_samples


class SubsetRandomSampler(Sampler[int]):
    """The given ``indices`` in a random order that depends only on (seed, epoch)."""

    def __init__(
        self,
        indices: Sequence[int],
        generator: np.random.Generator | None = None,
        seed: int | None = None,
    ) -> None:
        if generator is not None and seed is not None:
            raise ValueError("SubsetRandomSampler: pass seed or generator, not both")
        self.indices_ = np.asarray(list(indices), dtype=np.int64)
        self.generator = generator
        self.seed = seed

    def indices(self) -> np.ndarray:
        return self.indices_[_rng(self).permutation(len(self.indices_))]

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices().tolist())

    def __len__(self) -> int:
        return len(self.indices_)


class WeightedRandomSampler(Sampler[int]):
    """``num_samples`` indices drawn with probability proportional to ``weights`` (torch's
    ``WeightedRandomSampler``), seeded by (seed, epoch)."""

    def __init__(
        self,
        weights: Sequence[float],
        num_samples: int,
        replacement: bool = True,
        generator: np.random.Generator | None = None,
        seed: int | None = None,
    ) -> None:
        if (
            isinstance(num_samples, bool)
            or not isinstance(num_samples, (int, np.integer))
            or num_samples <= 0
        ):
            raise ValueError(
                f"num_samples should be a positive integer value, but got num_samples={num_samples!r}"
            )
        if not isinstance(replacement, bool):
            raise ValueError(
                f"replacement should be a boolean value, but got replacement={replacement}"
            )
        weights_array = np.asarray(weights, dtype=np.float64)
        if weights_array.ndim != 1:
            raise ValueError(
                f"weights should be a 1d sequence but given weights have shape {weights_array.shape}"
            )
        if (
            not np.isfinite(weights_array).all()
            or (weights_array < 0).any()
            or weights_array.sum() <= 0
        ):
            raise WeightsError("weights must be finite, non-negative and not all zero")
        if not replacement and num_samples > len(weights_array):
            raise WeightsError(
                f"cannot draw {num_samples} samples without replacement from {len(weights_array)} weights"
            )
        if generator is not None and seed is not None:
            raise ValueError("WeightedRandomSampler: pass seed or generator, not both")
        self.weights = weights_array
        self.num_samples = int(num_samples)
        self.replacement = replacement
        self.generator = generator
        self.seed = seed

    def indices(self) -> np.ndarray:
        rng = _rng(self)
        if self.replacement:
            p = self.weights / self.weights.sum()
            return rng.choice(len(p), self.num_samples, replace=True, p=p).astype(np.int64)
        # torch.multinomial without replacement: weighted order (exponential keys / weight);
        # zero weights come last, once the others are used up
        with np.errstate(divide="ignore"):
            keys = rng.exponential(size=len(self.weights)) / self.weights
        return np.argsort(keys, kind="stable")[: self.num_samples].astype(np.int64)

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices().tolist())

    def __len__(self) -> int:
        return self.num_samples


def _rng(sampler: Any) -> np.random.Generator:
    """The sampler's generator, else the one for (seed, epoch) (a seed drawn at first use)."""
    if sampler.generator is not None:
        return cast("np.random.Generator", sampler.generator)
    if sampler.seed is None:
        sampler.seed = int(np.random.randint(0, 2**31 - 1))
    return epoch_rng(sampler.seed, sampler.epoch)


def batch_size_error(batch_size: object) -> ValueError:
    """torch's words for a batch_size that is not a positive int (its BatchSampler's, which its
    DataLoader raises too)."""
    return ValueError(
        f"batch_size should be a positive integer value, but got batch_size={batch_size}"
    )


class BatchSampler(Sampler[list[int]]):
    """Groups a sampler's indices into lists of ``batch_size``."""

    def __init__(self, sampler: Iterable[int], batch_size: int, drop_last: bool) -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size <= 0:
            raise batch_size_error(batch_size)
        if not isinstance(drop_last, bool):
            raise ValueError(f"drop_last should be a boolean value, but got drop_last={drop_last}")
        self.sampler = sampler
        self.batch_size = batch_size
        self.drop_last = drop_last

    def set_epoch(self, epoch: int) -> None:
        super().set_epoch(epoch)
        if hasattr(self.sampler, "set_epoch"):
            self.sampler.set_epoch(epoch)

    def __iter__(self) -> Iterator[list[int]]:
        if hasattr(self.sampler, "indices"):
            yield from (b.tolist() for b in self.index_batches())
            return
        batch: list[int] = []
        for index in self.sampler:
            batch.append(int(index))
            if len(batch) == self.batch_size:
                yield batch
                batch = []
        if batch and not self.drop_last:
            yield batch

    def index_batches(self) -> list[np.ndarray]:
        """All of this epoch's batches as numpy slices (needs a sampler with ``indices()``)."""
        flat = self.sampler.indices()  # type: ignore[attr-defined]
        stop = len(flat) - len(flat) % self.batch_size if self.drop_last else len(flat)
        return [flat[i : i + self.batch_size] for i in range(0, stop, self.batch_size)]

    def __len__(self) -> int:
        n = len(self.sampler)  # type: ignore[arg-type]
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)


class DistributedSampler(Sampler[int]):
    """This rank's share of the dataset, equal in length on every rank (torch semantics).

    ``num_replicas`` and ``rank`` default to ``mx.distributed.init()``'s group. Without
    ``drop_last`` the order is padded by repeating indices so every rank gets the same number
    of samples (unequal counts deadlock collective ops). Call ``set_epoch`` each epoch (the
    DataLoader does) to reshuffle.
    """

    def __init__(
        self,
        dataset: Sized,
        num_replicas: int | None = None,
        rank: int | None = None,
        shuffle: bool = True,
        seed: int = 0,
        drop_last: bool = False,
    ) -> None:
        if num_replicas is None or rank is None:
            import mlx.core as mx

            group = mx.distributed.init()
            num_replicas = group.size() if num_replicas is None else num_replicas
            rank = group.rank() if rank is None else rank
        if num_replicas <= 0:
            raise ValueError(f"num_replicas must be positive, got {num_replicas}")
        if not 0 <= rank < num_replicas:
            raise ValueError(
                f"Invalid rank {rank}, rank should be in the interval [0, {num_replicas - 1}]"
            )
        self.dataset = dataset
        self.num_replicas = num_replicas
        self.rank = rank
        self.shuffle = shuffle
        self.seed = int(seed)
        self.drop_last = drop_last
        n = len(dataset)
        if drop_last and n % num_replicas:
            self.num_samples = n // num_replicas
        else:
            self.num_samples = -(-n // num_replicas)
        self.total_size = self.num_samples * num_replicas

    def indices(self) -> np.ndarray:
        n = len(self.dataset)
        order = epoch_rng(self.seed, self.epoch).permutation(n) if self.shuffle else np.arange(n)
        if self.drop_last:
            order = order[: self.total_size]
        elif self.total_size > n:
            reps = -(-(self.total_size - n) // n)
            order = np.concatenate([order, np.tile(order, reps)[: self.total_size - n]])
        return order[self.rank : self.total_size : self.num_replicas].astype(np.int64)

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices().tolist())

    def __len__(self) -> int:
        return self.num_samples
