"""The DataLoader's side of device-resident data (NOTE [device-resident data] in
``_loader/settings.py``): which dataset is on the device, and its epoch's index batches.

NOTE [device index batches]: a batch of device-resident data costs the host as little as a
hand-written loop slicing a precomputed index array. When the epoch's index batches are numpy
arrays (every sampler with ``indices()`` under a ``BatchSampler``, ``BucketBatchSampler``,
``DynamicBucketSampler``: the samplers' own, unchanged), :func:`device_batches` checks them
all at once, maps them through the ``Subset`` s above the :class:`ArrayDataset` and wraps
negative indices, and moves the whole epoch to the device as one ``mx.array``; each batch is
then a :class:`DeviceIndices` -- the same list of indices as before (errors and the loader's
state name these), carrying its slice of that array -- and the gather is one ``mx.take`` per
array, with no host work per batch beyond the slice. Batches, order and ``state_dict()`` are
the sampler's, exactly as on the host. An epoch with an index out of range, or batches that
are not numpy arrays (a user's ``batch_sampler``, consumed lazily), keep the per-batch path,
so the error is raised for its batch, as on the host.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np

from .dataset import ArrayDataset, Subset

__all__ = ["DeviceIndices", "device_batches", "device_resident"]


def device_resident(dataset: Any) -> ArrayDataset | None:
    """The device-resident :class:`ArrayDataset` behind ``dataset`` (itself, or under
    :class:`Subset` s, e.g. from :func:`random_split`), else None."""
    while isinstance(dataset, Subset) and type(dataset).__getitems__ is Subset.__getitems__:
        dataset = dataset.dataset
    if isinstance(dataset, ArrayDataset) and dataset.on_device:
        return dataset
    return None


class DeviceIndices(list[int]):
    """One batch's indices (a list, as the loader's other index batches) with ``rows``: their
    slice of the epoch's rows on the device, already mapped through ``Subset`` s and checked."""

    __slots__ = ("rows", "source")

    def __init__(self, indices: list[int], rows: Any, source: ArrayDataset) -> None:
        super().__init__(indices)
        self.rows = rows
        self.source = source

    def gather(self) -> tuple[Any, ...]:
        """The batch: one ``mx.take`` per array of the dataset."""
        return self.source.gather(self.rows)


class _DeviceEpoch(Iterable[DeviceIndices]):
    """The epoch's index batches, each made (a slice of the epoch's rows) when it is reached."""

    def __init__(self, batches: list[np.ndarray], rows: Any, source: ArrayDataset) -> None:
        self.batches, self.rows, self.source = batches, rows, source
        self.bounds = np.cumsum([0, *map(len, batches)]).tolist()

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self) -> Iterator[DeviceIndices]:
        rows, source, bounds = self.rows, self.source, self.bounds
        for k, batch in enumerate(self.batches):
            yield DeviceIndices(batch.tolist(), rows[bounds[k] : bounds[k + 1]], source)


def device_batches(dataset: Any, batches: Iterable[Any]) -> Iterable[Any]:
    """This epoch's ``batches`` for a device-resident ``dataset``: as :class:`DeviceIndices`
    with the epoch's rows moved to the device once (NOTE [device index batches]), or as given
    where they must keep the per-batch path."""
    source = device_resident(dataset)
    if (
        source is None
        or not isinstance(batches, list)
        or not batches
        or not all(isinstance(b, np.ndarray) and b.ndim == 1 for b in batches)
    ):
        return batches
    flat = np.concatenate(batches).astype(np.int64, copy=False)
    while isinstance(dataset, Subset):  # device_resident: plain Subsets down to the source
        mapping = np.asarray(dataset.indices, dtype=np.int64)
        if len(flat) and (flat.min() < -len(mapping) or flat.max() >= len(mapping)):
            return batches  # Subset's IndexError, for its batch
        flat, dataset = mapping[flat], dataset.dataset
    try:
        rows = source.rows(flat)
    except IndexError:
        return batches  # ArrayDataset's IndexError, for its batch
    return _DeviceEpoch(batches, rows, source)
