"""Small helpers of the Trainer: loaders, RNG state, argument checks, metric averaging."""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterable, Iterator
from importlib import metadata
from typing import Any

import mlx.core as mx
import numpy as np
from mlx.utils import tree_flatten


def batch_size_of(batch: Any) -> int:
    """The leading dimension of the first array in the batch (1 for scalars)."""
    for _, leaf in tree_flatten(batch if isinstance(batch, (list, tuple, dict)) else [batch]):
        if isinstance(leaf, (mx.array, np.ndarray)) and leaf.ndim > 0:
            return int(leaf.shape[0])
    return 1


def length_of(loader: Any) -> int | None:
    try:
        return len(loader)
    except TypeError:
        return None


def limited(length: int | None, limit: int | float | None) -> int | None:
    """Batches per pass after ``limit_*_batches`` (an int count or a fraction)."""
    if limit is None:
        return length
    if isinstance(limit, float):
        if length is None:
            return None if limit == 1.0 else _raise_fraction()
        return max(1, int(length * limit)) if limit > 0 else 0
    return limit if length is None else min(length, limit)


def _raise_fraction() -> int:
    raise ValueError(
        "a fractional limit_*_batches / val_check_interval needs a loader with a length"
    )


def is_stateful_loader(loader: Any) -> bool:
    return all(hasattr(loader, name) for name in ("state_dict", "load_state_dict", "set_epoch"))


def epoch_iterator(loader: Any, epoch: int, resume: dict | None) -> Iterator[Any]:
    """Iterate one epoch; resume mid-epoch through the loader's state or by skipping batches."""
    if is_stateful_loader(loader):
        if resume and resume.get("loader"):
            loader.load_state_dict(resume["loader"])
        else:
            loader.set_epoch(epoch)
        return iter(loader)
    iterator = iter(loader)
    skip = int((resume or {}).get("batch_in_epoch", 0))
    return itertools.islice(iterator, skip, None) if skip else iterator


def rng_state() -> dict[str, Any]:
    """numpy's and Python's global RNG states (MLX's key is re-derived each step instead:
    ``mx.random.state`` cannot be assigned from Python)."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss = random.getstate()
    return {
        "numpy": [name, keys.tolist(), pos, has_gauss, cached],
        "python": [version, list(internal), gauss],
    }


def seed_step(base: int, global_step: int, micro: int) -> None:
    """Seed MLX's global key from (base, step, micro-batch): dropout and other random ops in
    the train step then depend only on where training is, so a resumed run draws the same."""
    mix = np.random.SeedSequence([base & 0xFFFFFFFFFFFFFFFF, global_step, micro]).generate_state(
        2, dtype=np.uint64
    )
    mx.random.seed(int(mix[0]))


def set_rng_state(state: dict[str, Any]) -> None:
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, np.array(keys, dtype=np.uint32), pos, has_gauss, cached))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))


def seed_everything(seed: int) -> None:
    mx.random.seed(seed)
    np.random.seed(seed & 0xFFFFFFFF)
    random.seed(seed)


def versions() -> dict[str, str]:
    found = {}
    for dist in ("mlx", "numpy", "mlx-audio-train", "mlx-audio-data"):
        try:
            found[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return found


class MeanTracker:
    """Batch-size-weighted means of scalar ``mx.array`` metrics, summed on the device.

    ``eager`` evaluates the sums at every ``add`` (long validation loops: the graph stays
    small); otherwise they are evaluated once in :meth:`means`, saving a device sync per step.
    """

    def __init__(self, eager: bool = True) -> None:
        self.sums: dict[str, mx.array] = {}
        self.weight = 0
        self.eager = eager

    def add(self, values: dict[str, mx.array], weight: int = 1) -> None:
        for key, value in values.items():
            scaled = value if weight == 1 else value * weight  # the common case adds no graph node
            self.sums[key] = scaled if key not in self.sums else self.sums[key] + scaled
        self.weight += weight
        if self.eager:
            mx.eval(self.sums)

    def means(self) -> dict[str, float]:
        if not self.weight:
            return {}
        mx.eval(self.sums)  # one sync for all metrics
        return {k: v.item() / self.weight for k, v in self.sums.items()}


def iter_limited(iterable: Iterable[Any], limit: int | None) -> Iterator[Any]:
    return iter(iterable) if limit is None else itertools.islice(iterable, limit)
