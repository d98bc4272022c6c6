"""Datasets: map-style and iterable, with torch's names and semantics.

Datasets return numpy arrays and Python values, never ``mx.array``: they run in worker
processes, and MLX arrays must not cross process boundaries. The one exception is a
device-resident :class:`ArrayDataset` (NOTE [device-resident data]): its arrays live in MLX's
memory and the DataLoader batches it in the main process, on the accelerator.

Store big per-sample data as one numpy array rather than a Python list of objects: forked
workers share numpy buffers, while touching list items (refcounts) copies pages into every
worker (torch issue #13246).
"""

from __future__ import annotations

import bisect
import math
import warnings
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Generic, TypeVar, cast

import numpy as np

from ._errors import NotSupported, SizeMismatchError
from .support import is_mlx_array

if TYPE_CHECKING:
    from .collate import Allocator

T_co = TypeVar("T_co", covariant=True)

__all__ = ["Dataset", "IterableDataset", "ArrayDataset", "Subset", "ConcatDataset", "random_split"]


class Dataset(Generic[T_co]):
    """A map-style dataset: implement ``__len__`` and ``__getitem__(index)``.

    Optionally implement ``__getitems__(indices) -> list | batch`` to fetch a whole batch in
    one call. Returning a ``list`` means "these are the samples, collate them"; returning
    anything else (tuple, dict, array) means "this is already the batch" and skips collation
    when the loader uses its default collate.
    """

    def __getitem__(self, index: int) -> T_co:
        raise NotImplementedError(f"{type(self).__name__} must implement __getitem__")

    def __add__(self, other: Dataset[T_co]) -> ConcatDataset[T_co]:
        return ConcatDataset([self, other])


class IterableDataset(Dataset[T_co]):
    """A stream of samples: implement ``__iter__``.

    With ``num_workers > 0`` each worker iterates its own copy; shard with
    :func:`mlx_audio.data.get_worker_info` to avoid duplicates. Implement ``state_dict()`` and
    ``load_state_dict(state)`` to make mid-epoch resume exact without replaying the stream.
    """

    def __iter__(self) -> Iterator[T_co]:
        raise NotImplementedError(f"{type(self).__name__} must implement __iter__")

    # torch's rule: `+` on an iterable dataset chains (a ChainDataset, not Dataset's ConcatDataset)
    def __add__(self, other: Dataset[T_co]) -> ChainDataset[T_co]:  # type: ignore[override]
        return ChainDataset([self, other])


class ChainDataset(IterableDataset[T_co]):
    """Several iterable datasets one after another (``a + b`` for iterable datasets).

    Resumable: its iterator's ``state_dict()`` says which dataset it is in and where (that
    dataset's own ``state_dict()`` where it has one, else the samples taken from it, replayed
    on resume): a resume starts in that dataset, never re-reading the ones before it."""

    def __init__(self, datasets: Iterable[Any]) -> None:
        self.datasets: list[Any] = list(datasets)

    def __iter__(self) -> Iterator[T_co]:
        return _ChainIterator(self.datasets)

    def __len__(self) -> int:
        total = 0
        for d in self.datasets:
            _check_chained(d)
            total += len(d)
        return total


class _ChainIterator(Iterator[Any]):
    """One pass of a :class:`ChainDataset`, with a resumable state."""

    def __init__(self, datasets: list[Any]) -> None:
        self.datasets = datasets
        self.index = 0  # the dataset being read
        self.taken = 0  # samples taken from it
        self.current: Iterator[Any] | None = None
        self.pending: dict[str, Any] | None = None

    def __next__(self) -> Any:
        if self.pending is not None:
            self._restore(self.pending)
        while self.index < len(self.datasets):
            if self.current is None:
                _check_chained(self.datasets[self.index])
                self.current, self.taken = iter(self.datasets[self.index]), 0
            for item in self.current:
                self.taken += 1
                return item
            self.index, self.current = self.index + 1, None
        raise StopIteration

    def state_dict(self) -> dict[str, Any]:
        if self.pending is not None:
            return self.pending
        state: dict[str, Any] = {"index": self.index, "taken": self.taken}
        if self.current is not None:
            dataset, iterator = self.datasets[self.index], cast(Any, self.current)
            if iterator is not dataset and callable(getattr(dataset, "state_dict", None)):
                state["dataset"] = dataset.state_dict()
            elif callable(getattr(iterator, "state_dict", None)):
                state["iterator"] = iterator.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if not isinstance(state, dict) or not {"index", "taken"} <= set(state):
            raise ValueError(f"not a ChainDataset state: {state!r:.200}")
        self.pending = dict(state)

    def _restore(self, state: dict[str, Any]) -> None:
        self.pending, self.index, self.current = None, int(state["index"]), None
        self.taken = int(state["taken"])
        if self.index >= len(self.datasets) or not (self.taken or len(state) > 2):
            return
        dataset = self.datasets[self.index]
        _check_chained(dataset)
        if state.get("dataset") is not None:
            dataset.load_state_dict(state["dataset"])
        self.current = iter(dataset)
        if state.get("iterator") is not None:
            cast(Any, self.current).load_state_dict(state["iterator"])
        elif state.get("dataset") is None:
            for _ in range(self.taken):  # replayed: a dataset without a state of its own
                next(self.current)


def _check_chained(dataset: Any) -> None:
    """As torch, checked when the chain is used (an AssertionError there; also a TypeError)."""
    if not isinstance(dataset, IterableDataset):
        raise NotSupported(
            f"ChainDataset only supports IterableDataset, got {type(dataset).__name__}"
        )


class StackDataset(Dataset[Any]):
    """Datasets of one length side by side: ``StackDataset(a, b)[i] == (a[i], b[i])``,
    ``StackDataset(x=a, y=b)[i] == {"x": a[i], "y": b[i]}`` (torch's ``StackDataset``)."""

    def __init__(self, *args: Dataset[Any], **kwargs: Dataset[Any]) -> None:
        if args and kwargs:
            raise ValueError(
                "Supported either ``tuple``- (via ``args``) or``dict``- (via ``kwargs``) like input/output, "
                "but both types are given: pass the datasets as positional or as keyword arguments"
            )
        if not args and not kwargs:
            raise ValueError("At least one dataset should be passed to StackDataset")
        self.datasets: tuple[Dataset[Any], ...] | dict[str, Dataset[Any]] = args if args else kwargs
        items = args if args else tuple(kwargs.values())
        lengths = {len(d) for d in items}  # type: ignore[arg-type]
        if len(lengths) != 1:
            raise ValueError(f"Size mismatch between datasets: their lengths are {sorted(lengths)}")
        self._length = lengths.pop()

    def __len__(self) -> int:
        return self._length

    def __getitem__(self, index: int) -> Any:
        if isinstance(self.datasets, dict):
            return {k: d[index] for k, d in self.datasets.items()}
        return tuple(d[index] for d in self.datasets)

    def __getitems__(self, indices: list[int]) -> list[Any]:
        """torch's batch fetch: each dataset's own ``__getitems__`` where it has one."""
        named = isinstance(self.datasets, dict)
        pairs: Iterable[tuple[int | str, Any]] = (
            self.datasets.items() if named else enumerate(self.datasets)  # type: ignore[union-attr]
        )
        columns = {}
        for key, d in pairs:
            if callable(getattr(d, "__getitems__", None)):
                items = d.__getitems__(indices)
                if isinstance(d, (ArrayDataset, Subset)) and isinstance(items, tuple):
                    items = list(zip(*items))  # an ArrayDataset's batch: one array a field
                if len(items) != len(indices):
                    raise ValueError(
                        "Nested dataset's output size mismatch. "
                        f"Expected {len(indices)}, got {len(items)}"
                    )
            else:
                items = [d[i] for i in indices]
            columns[key] = items
        if named:
            return [{k: c[i] for k, c in columns.items()} for i in range(len(indices))]
        return [tuple(c[i] for c in columns.values()) for i in range(len(indices))]


class ArrayDataset(Dataset[tuple[Any, ...]]):
    """Samples are rows of equally long arrays (torch's ``TensorDataset``).

    ``__getitems__`` gathers a batch with one fancy-indexing call per array. Device-resident
    (NOTE [device-resident data]): built from ``mx.array`` s, or from numeric numpy arrays with
    ``device=True`` (moved into MLX's memory once, here), the arrays stay on the accelerator and
    a batch is one ``mx.take`` per array there, nothing gathered or copied on the host per step;
    ``device=False`` keeps them on the host (``mx.array`` s copied). :attr:`nbytes`: their bytes.
    """

    def __init__(self, *arrays: Any, device: bool | None = None) -> None:
        if not arrays:
            raise ValueError("ArrayDataset needs at least one array")
        if device is not None and not isinstance(device, bool):
            raise ValueError(f"ArrayDataset device must be True or False, got {device!r}")
        self.on_device = any(is_mlx_array(a) for a in arrays) if device is None else device
        if self.on_device:
            import mlx.core as mx

            arrays = tuple(a if isinstance(a, mx.array) else np.asarray(a) for a in arrays)
            kinds = [str(a.dtype) for a in arrays if isinstance(a, np.ndarray)]
            if any(np.dtype(k).kind not in "biuf" for k in kinds):  # MLX: numbers, bools
                raise ValueError(f"ArrayDataset(device=True) takes numeric arrays, got {kinds}")
            self.arrays: tuple[Any, ...] = tuple(
                a if isinstance(a, mx.array) else mx.array(a) for a in arrays
            )
            mx.eval(self.arrays)  # materialised once, not inside the first step's graph
        else:
            self.arrays = tuple(np.asarray(a) for a in arrays)
        shapes = [tuple(a.shape) for a in self.arrays]
        if any(len(s) == 0 for s in shapes):
            raise ValueError(
                f"ArrayDataset arrays must have a first dimension, got shapes {shapes}"
            )
        if len({s[0] for s in shapes}) != 1:
            raise SizeMismatchError(
                "Size mismatch between tensors: ArrayDataset arrays must have the same first "
                f"dimension, got {shapes}"
            )
        self._length = int(shapes[0][0])  # asked per batch (samplers, checks): computed once

    @property
    def nbytes(self) -> int:
        """Bytes the arrays take (in MLX's memory when device-resident)."""
        return sum(int(a.nbytes) for a in self.arrays)

    def __len__(self) -> int:
        return self._length

    def __getitem__(self, index: int) -> tuple[Any, ...]:
        if self.on_device and isinstance(index, (int, np.integer)):
            self._checked([index])  # MLX reads out of bounds unchecked
        return tuple(a[index] for a in self.arrays)

    def __getitems__(self, indices: Sequence[int] | np.ndarray) -> tuple[Any, ...]:
        return self.take(indices)

    def take(
        self, indices: Sequence[int] | np.ndarray, alloc: Allocator | None = None
    ) -> tuple[Any, ...]:
        """The batch at ``indices``; ``alloc(shape, dtype)`` supplies the output buffers (the
        DataLoader passes shared or MLX memory, so the batch is gathered with a single copy).
        Device-resident: one ``mx.take`` per array, on the accelerator (``alloc`` unused)."""
        if self.on_device:
            return self.gather(self.rows(indices))
        indices = self._checked(indices)
        run = len(indices) > 0 and _is_contiguous_run(indices)
        out = []
        for a in self.arrays:
            start = int(indices[0]) if run else 0
            if alloc is None:
                out.append(
                    a[start : start + len(indices)].copy() if run else np.take(a, indices, axis=0)
                )
                continue
            target = alloc((len(indices), *a.shape[1:]), a.dtype)
            if run:
                np.copyto(target, a[start : start + len(indices)])
            else:
                np.take(a, indices, axis=0, out=target, mode="wrap")  # "raise" would buffer `out`
            out.append(target)
        return tuple(out)

    def rows(self, indices: Sequence[int] | np.ndarray) -> Any:
        """Device-resident: ``indices`` checked, wrapped, as an ``mx.array`` for :meth:`gather`."""
        import mlx.core as mx

        return mx.array(self._checked(indices), dtype=mx.int32 if len(self) < 2**31 else mx.int64)

    def gather(self, rows: Any) -> tuple[Any, ...]:
        """Device-resident: the batch at ``rows`` (from :meth:`rows`), one ``mx.take`` an array."""
        import mlx.core as mx

        return tuple(mx.take(a, rows, axis=0) for a in self.arrays)

    def _checked(self, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        indices, n = np.asarray(indices, dtype=np.int64), self._length
        if len(indices) and (indices.min() < -n or indices.max() >= n):
            raise IndexError(
                f"ArrayDataset index out of range for {n} samples: {indices.min()}..{indices.max()}"
            )
        return np.where(indices < 0, indices + n, indices)  # as a slice of the host arrays


TensorDataset = ArrayDataset  # torch's name for the same thing


def _is_contiguous_run(indices: np.ndarray) -> bool:
    return int(indices[-1]) - int(indices[0]) == len(indices) - 1 and bool(
        len(indices) < 2 or np.all(np.diff(indices) == 1)
    )


class Subset(Dataset[T_co]):
    """The samples of ``dataset`` at ``indices``, in that order."""

    def __init__(self, dataset: Dataset[T_co], indices: Sequence[int]) -> None:
        cls = type(self)
        if cls.__getitem__ is not Subset.__getitem__ and cls.__getitems__ is Subset.__getitems__:
            raise NotImplementedError(  # torch's check: the loader fetches through __getitems__
                f"{cls.__name__} overrides __getitem__ but not __getitems__. When subclassing Subset "
                "and overriding __getitem__, you must also override __getitems__ to ensure DataLoader "
                "works correctly with your custom logic. A simple implementation:\n\n"
                "def __getitems__(self, indices):\n    return [self.__getitem__(idx) for idx in indices]"
            )
        self.dataset = dataset
        self.indices = [int(i) for i in indices]

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, list):  # torch: a list of indices goes to the dataset as a list
            return self.dataset[[self.indices[i] for i in index]]  # type: ignore[index]
        return self.dataset[self.indices[index]]

    def __getitems__(self, indices: Sequence[int]) -> Any:
        mapped = [self.indices[int(i)] for i in indices]
        if hasattr(self.dataset, "__getitems__"):
            return self.dataset.__getitems__(mapped)
        return [self.dataset[i] for i in mapped]


class ConcatDataset(Dataset[T_co]):
    """Several map-style datasets one after another."""

    def __init__(self, datasets: Sequence[Dataset[T_co]]) -> None:
        self.datasets = list(datasets)
        if not self.datasets:
            raise SizeMismatchError("datasets should not be an empty iterable (ConcatDataset)")
        for d in self.datasets:
            if isinstance(d, IterableDataset):
                raise NotSupported("ConcatDataset does not support IterableDataset")
        sizes = [len(d) for d in self.datasets]  # type: ignore[arg-type]
        self.cumulative_sizes: list[int] = list(np.cumsum(sizes).tolist())

    def __len__(self) -> int:
        return self.cumulative_sizes[-1]

    def __getitem__(self, index: int) -> T_co:
        if index < 0:
            if -index > len(self):
                raise ValueError("absolute value of index should not exceed dataset length")
            index += len(self)
        which = bisect.bisect_right(self.cumulative_sizes, index)
        offset = self.cumulative_sizes[which - 1] if which else 0
        return self.datasets[which][index - offset]


def random_split(
    dataset: Dataset[T_co],
    lengths: Sequence[int | float],
    generator: np.random.Generator | None = None,
    seed: int | None = None,
) -> list[Subset[T_co]]:
    """Split ``dataset`` into non-overlapping random subsets of the given lengths.

    ``lengths`` are counts summing to ``len(dataset)`` or fractions summing to 1 (the remainder
    is spread round-robin, as in torch). Pass ``seed`` or a numpy ``generator`` for a
    reproducible split.
    """
    if generator is not None and seed is not None:
        raise ValueError("random_split: pass either seed or generator, not both")
    n = len(dataset)  # type: ignore[arg-type]
    if (
        lengths
        and all(0 <= f <= 1 for f in lengths)
        and math.isclose(sum(lengths), 1.0)
        and sum(lengths) != n
    ):
        counts = [int(math.floor(n * f)) for f in lengths]
        for i in range(n - sum(counts)):
            counts[i % len(counts)] += 1
        for i in (i for i, count in enumerate(counts) if count == 0):  # torch's warning
            message = f"Length of split at index {i} is 0. This might result in an empty dataset."
            warnings.warn(message, stacklevel=2)
    else:
        counts = [int(c) for c in lengths]
        if any(c < 0 for c in counts) or any(c != length for c, length in zip(counts, lengths)):
            raise ValueError(
                "Sum of input lengths does not equal the length of the input dataset! (random_split"
                f" takes counts summing to {n} or fractions summing to 1, got {lengths})"
            )
    if sum(counts) != n:
        raise ValueError(
            "Sum of input lengths does not equal the length of the input dataset! "
            f"(random_split lengths sum to {sum(counts)}, the dataset has {n} samples)"
        )
    if generator is None and seed is None:  # as torch's default generator: numpy's global RNG
        seed = int(np.random.randint(0, 2**31 - 1))
    rng = generator if generator is not None else np.random.default_rng(seed)
    order, bounds = rng.permutation(n).tolist(), np.cumsum([0, *counts]).tolist()
    return [Subset(dataset, order[a:b]) for a, b in zip(bounds, bounds[1:])]
