"""Turning a dataset into batches: fetch, per-sample transforms, collate -- one fetcher per kind
of dataset, as torch's ``_utils/fetch.py``: :class:`MapFetcher` (torch's ``_MapDatasetFetcher``:
index batches of a map-style dataset) and :class:`StreamFetcher` (``_IterableDatasetFetcher``:
the next batches of a sample stream). :func:`make_fetcher` (torch's ``_DatasetKind``) is where
a DataLoader's dataset kind picks one; the passes and workers run whichever they are given.

Worker side: run in the workers, and in the main process by the in-process pass
(``num_workers=0``), so both produce identical batches. Nothing here imports MLX.
"""

from __future__ import annotations

import inspect
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from .._device import DeviceIndices
from ..collate import Allocator, CollateError, collate_into, default_convert
from ..dataset import ArrayDataset
from ..sampler import epoch_rng

Transform = Callable[..., Any]
_END = object()


def _wants_rng(fn: Transform) -> bool:
    try:
        return "rng" in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


_current = threading.local()  # the (seed, epoch, index) of the sample being fetched


def sample_rng() -> np.random.Generator:
    """Inside a dataset's ``__getitem__`` run by a DataLoader: a numpy Generator seeded by
    (loader seed, epoch, index) -- the same numbers for that sample with any ``num_workers``
    and after any resume (the worker's global RNGs depend on which worker ran it). Outside a
    loader's fetch: an unseeded Generator."""
    key = getattr(_current, "key", None)
    if key is None:
        return np.random.default_rng()
    seed, epoch, ids = key
    return epoch_rng(seed, epoch, *ids, 1)  # a stream apart from the cpu_transforms' one


def index_ids(index: Any) -> tuple[int, ...]:
    """A sample's index as ints for seeding: one int, or several when a sampler yields whole
    index lists to a dataset without auto-batching (``batch_size=None``)."""
    if isinstance(index, (list, tuple, np.ndarray)):
        return tuple(int(i) for i in index)
    return (int(index),)


class SampleError(Exception):
    """Wraps an exception raised while fetching or transforming one sample."""

    def __init__(self, index: Any, error: BaseException) -> None:
        super().__init__(f"index {index}")
        self.index = index
        self.error = error


class _Fetcher:
    """What both fetchers share: the settings, per-sample transforms and collate.

    ``collate_fn=None`` means :func:`default_collate`; ``collate=False`` leaves the list of
    samples uncollated (used when a spawn worker cannot receive the user's collate_fn).
    """

    def __init__(
        self,
        dataset: Any,
        batch_size: int | None,
        drop_last: bool,
        collate_fn: Callable[[Any], Any] | None,
        transforms: Sequence[Transform],
        seed: int,
        collate: bool = True,
        batched: bool | None = None,
    ) -> None:
        self.dataset = dataset
        self.batch_size = batch_size
        self.batched = batch_size is not None if batched is None else batched  # batch_sampler
        self.drop_last = drop_last
        self.collate_fn = collate_fn
        self.transforms = [(fn, _wants_rng(fn)) for fn in transforms]
        self.seed = seed
        self.collate = collate
        self.alloc: Allocator | None = None  # set by process workers: collate into shared memory
        self.use_getitems = self.batched and hasattr(dataset, "__getitems__")

    # -- per sample -------------------------------------------------------------------------
    def transform(self, sample: Any, key: tuple[int, ...]) -> Any:
        rng = None
        for fn, wants_rng in self.transforms:
            if wants_rng:
                rng = rng or epoch_rng(self.seed, *key)
                sample = fn(sample, rng=rng)
            else:
                sample = fn(sample)
        return sample

    def _finish(self, samples: list[Any], indices: Sequence[Any]) -> Any:
        if not self.collate:
            return samples
        if not self.batched:
            sample = samples[0]
            return default_convert(sample) if self.collate_fn is None else self.collate_fn(sample)
        into = getattr(self.collate_fn, "collate_into", None)  # e.g. PadCollate: into shared memory
        if self.collate_fn is not None and into is None:
            return self.collate_fn(samples)
        try:
            return collate_into(samples, self.alloc) if into is None else into(samples, self.alloc)
        except CollateError as error:
            first, other = (f"the sample at index {indices[p]}" for p in error.positions)
            message = error.render((first, other)).replace("{", "{{").replace("}", "}}")
            raise type(error)(message, error.positions, error.path) from None


class MapFetcher(_Fetcher):
    """Batches of a map-style dataset for index batches (torch's ``_MapDatasetFetcher``)."""

    def fetch(self, indices: Sequence[int], epoch: int) -> Any:
        """The batch for ``indices`` (a single sample when ``batch_size`` is None)."""
        if self.use_getitems:
            try:
                if (
                    self.alloc is not None
                    and self.collate_fn is None
                    and isinstance(self.dataset, ArrayDataset)
                ):
                    data = self.dataset.take(indices, self.alloc)  # gathered into the output memory
                else:
                    data = self.dataset.__getitems__(indices)
            except Exception as error:
                raise SampleError(list(map(int, indices)), error) from error
            if not isinstance(data, list):
                if self.transforms:
                    raise TypeError(
                        f"{type(self.dataset).__name__}.__getitems__ returned a whole batch "
                        f"({type(data).__name__}), so per-sample cpu_transforms cannot run; "
                        "return a list of samples from __getitems__ or drop cpu_transforms"
                    )
                return (
                    data if self.collate_fn is None or not self.collate else self.collate_fn(data)
                )
            samples = [self._transform_one(s, i, epoch) for s, i in zip(data, indices)]
        else:
            samples = [self._transform_one(self._get(i, epoch), i, epoch) for i in indices]
        return self._finish(samples, indices)

    def _get(self, index: int, epoch: int) -> Any:
        if isinstance(index, np.integer):
            index = int(index)  # datasets get Python ints, as from torch's samplers
        _current.key = (self.seed, epoch, index_ids(index))
        try:
            return self.dataset[index]
        except Exception as error:
            raise SampleError(index, error) from error
        finally:
            _current.key = None

    def _transform_one(self, sample: Any, index: int, epoch: int) -> Any:
        if not self.transforms:
            return sample
        try:
            return self.transform(sample, (epoch, *index_ids(index)))
        except Exception as error:
            raise SampleError(index, error) from error


class DeviceFetcher(MapFetcher):
    """Batches of a device-resident :class:`ArrayDataset` (NOTE [device-resident data], in
    ``_loader/settings.py``): the index batch goes to the dataset, which gathers it with one
    ``mx.take`` per array on the accelerator; no per-sample work, no host copy. Runs in the
    main process only (the loader never gives it to workers)."""

    def fetch(self, indices: Sequence[int], epoch: int) -> Any:
        if not self.batched:  # batch_size=None: one sample per index, as any map-style dataset
            return super().fetch(indices, epoch)
        try:  # NOTE [device index batches] (_device.py): rows moved to the device per epoch
            data = (
                indices.gather()
                if isinstance(indices, DeviceIndices)
                else self.dataset.__getitems__(indices)
            )
        except Exception as error:
            raise SampleError(list(map(int, indices)), error) from error
        return data if self.collate_fn is None else self.collate_fn(data)


class StreamFetcher(_Fetcher):
    """The next batches of a sample stream (torch's ``_IterableDatasetFetcher``); the stream
    itself belongs to whoever iterates (a worker or the in-process pass)."""

    def batches(
        self, stream: Iterator[Any], epoch: int, worker_id: int, position: list[int]
    ) -> Iterator[Any]:
        """Batches from a sample stream; ``position[0]`` counts samples (for transform RNGs)."""
        size = 1 if self.batch_size is None else self.batch_size
        while True:
            samples = []
            keys = []
            for _ in range(size):
                sample = next(stream, _END)  # next(), not islice: iter() is never called again
                if sample is _END:
                    break
                key = (epoch, worker_id, position[0])
                try:
                    samples.append(self.transform(sample, key) if self.transforms else sample)
                except Exception as error:
                    raise SampleError(
                        f"#{position[0]} of worker {worker_id}'s stream", error
                    ) from error
                keys.append(f"#{position[0]}")
                position[0] += 1
            if not samples or (len(samples) < size and self.drop_last):
                return
            yield self._finish(samples, keys)


Fetcher = MapFetcher | StreamFetcher


def fetcher_class(iterable: bool, device: bool = False) -> type[MapFetcher | StreamFetcher]:
    """The fetcher for a dataset of this kind (torch's ``_DatasetKind.create_fetcher``): the one
    place a DataLoader's dataset kind picks the code that fetches, resumes and reports state
    (the passes and the workers dispatch on the fetcher they are given). ``device``: a
    device-resident ``ArrayDataset`` (NOTE [device-resident data])."""
    if iterable:
        return StreamFetcher
    return DeviceFetcher if device else MapFetcher


def as_transform_list(
    transforms: Transform | Sequence[Transform] | None, name: str
) -> list[Transform]:
    if transforms is None:
        return []
    items: list[Transform] = (
        list(transforms) if isinstance(transforms, (list, tuple)) else [transforms]  # type: ignore[list-item]
    )
    for fn in items:
        if not callable(fn):
            raise ValueError(f"{name} must be a callable or a list of callables, got {fn!r}")
    return items


def compose(fns: Sequence[Callable[[Any], Any]]) -> Callable[[Any], Any] | None:
    if not fns:
        return None
    if len(fns) == 1:
        return fns[0]

    def composed(batch: Any) -> Any:
        for fn in fns:
            batch = fn(batch)
        return batch

    return composed


def stream_parts(dataset: Any, iterator: Any = None) -> dict[str, Any]:
    """What resumes a dataset exactly: its own ``state_dict()``, else that of the iterator its
    ``__iter__`` returned (torchdata's ``Stateful`` protocol); empty when neither has one. A
    dataset that is its own iterator has an iterator's state (as in torchdata): it describes
    what ``__iter__`` set up, so it is loaded after ``iter()``, never before."""
    if iterator is dataset and callable(getattr(iterator, "state_dict", None)):
        return {"iterator": iterator.state_dict()}
    if callable(getattr(dataset, "state_dict", None)):
        return {"dataset": dataset.state_dict()}
    if iterator is not None and callable(getattr(iterator, "state_dict", None)):
        return {"iterator": iterator.state_dict()}
    return {}


def index_list(indices: Any) -> list[int]:
    if isinstance(indices, DeviceIndices):
        return indices  # a list with its rows on the device
    return indices.tolist() if isinstance(indices, np.ndarray) else list(indices)
