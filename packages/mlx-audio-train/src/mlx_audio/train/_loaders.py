"""What the loop needs to know about a loader: its length, limits, epochs and resumable state."""

from __future__ import annotations

import itertools
import math
import os
import warnings
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import mlx.core as mx
import numpy as np

from . import distributed
from ._tree import flatten

if TYPE_CHECKING:
    from .module import TrainModule
    from .trainer import Trainer


def batch_size_of(batch: Any) -> int:
    """The leading dimension of the first array in the batch (1 for scalars)."""
    first = batch[0] if isinstance(batch, (list, tuple)) and batch else batch
    if isinstance(first, mx.array) and first.ndim > 0:  # the usual (x, y): no tree walk
        return int(first.shape[0])
    for _, leaf in flatten(batch if isinstance(batch, (list, tuple, dict)) else [batch]):
        if isinstance(leaf, (mx.array, np.ndarray)) and leaf.ndim > 0:
            return int(leaf.shape[0])
    return 1


def length_of(loader: Any) -> int | None:
    try:
        return len(loader)
    except TypeError:
        return None


def limited(length: int | None, limit: int | float) -> float:
    """Batches per pass after ``limit_*_batches`` (an int count or a fraction); inf if unknown."""
    if limit == 0:  # 0 or 0.0: the loop is off, whatever the loader
        return 0
    if isinstance(limit, float):
        if length is None:
            if limit == 1.0:
                return math.inf
            raise ValueError("a fractional limit_*_batches needs a loader with a length")
        return int(length * limit) if limit < 1.0 else length
    return limit if length is None else min(length, limit)


def check_fit_inputs(trainer: Trainer, model: Any, train: Any, val: Any) -> None:
    """A TypeError that says what went wrong for the usual mix-ups of ``fit``'s arguments, and a
    warning when the train data is an iterator (a generator) that yields its batches once."""
    import mlx.nn as nn

    from .module import TrainModule

    if not isinstance(model, TrainModule):
        raise TypeError(f"Trainer.fit needs a TrainModule, got {type(model).__name__}")
    if not flatten(model.trainable_parameters()):
        raise ValueError(
            f"Trainer.fit: the {type(model).__name__} has no trainable parameter (every one "
            "frozen, or none at all), so there is nothing to train: unfreeze what should learn "
            "(model.unfreeze(), or layer.unfreeze() for a part) after any model.freeze()"
        )
    for name, loader in (("train_dataloaders", train), ("val_dataloaders", val)):
        if isinstance(loader, nn.Module):
            raise TypeError(
                f"Trainer.fit: {name} is a {type(loader).__name__}, a model: fit takes the model "
                "first, then the data: trainer.fit(model, train_loader, val_loader)"
            )
        if isinstance(loader, (str, bytes, os.PathLike)):
            raise TypeError(
                f"Trainer.fit: {name} is a path ({loader!r}), not batches: pass an iterable of "
                "batches, such as an mlx_audio.data.DataLoader over a dataset that reads it"
            )
        if loader is not None and not hasattr(loader, "__iter__"):
            raise TypeError(f"{name} must be an iterable of batches, got {type(loader).__name__}")
    if isinstance(train, dict) or (train is not None and len(split_loaders(train)) > 1):
        raise TypeError(
            "Trainer.fit: train_dataloaders holds several loaders; training on several at once "
            "(Lightning's CombinedLoader) is not available here: concatenate the datasets "
            "(mlx_audio.data.ConcatDataset) into one loader. Several validation loaders are "
            "taken: val_dataloaders=[a, b]"
        )
    epochs = trainer.epoch_limit
    if isinstance(train, Iterator) and (epochs is None or epochs > 1) and trainer.is_global_zero:
        trainer.warn_once(
            f"train_dataloaders is an iterator ({type(train).__name__}): it yields its batches "
            f"once, so fit trains one epoch, not {epochs or 'more'}; pass a list or a DataLoader "
            "to train for several epochs"
        )


def one_pass_done(trainer: Trainer) -> bool:
    """Whether the train data is an iterator (a generator), whose batches come once, and this
    ``fit`` has run its epoch (``trainer._batches`` is the epoch's; None when ``fit`` starts)."""
    return isinstance(trainer._train_loader, Iterator) and trainer._batches is not None


def agreed_batches(trainer: Trainer, count: float) -> float:
    """The training batches per epoch of every rank: the smallest count of any rank (unequal
    counts would deadlock), said once when they differ (uneven shards)."""
    counts = distributed.each_rank(count)
    least = min(counts)
    if len(set(counts)) > 1 and trainer.is_global_zero:
        shown = ", ".join(str(int(c)) if math.isfinite(c) else "unsized" for c in counts)
        trainer.warn_once(
            f"the ranks' training loaders differ in length ({shown} batches per epoch, rank 0 "
            f"first): every rank trains {int(least)} per epoch, the shortest's count, and the "
            "rest of the longer ones is never used. Give every rank as many batches (an "
            "mlx_audio.data DataLoader is split evenly, padded as torch's DistributedSampler)"
        )
    return int(least) if math.isfinite(least) else least


def close_loaders(trainer: Trainer, given: Any) -> None:
    """Close the loaders ``fit`` opened: the one given and its shard (those with workers)."""
    for loader in {id(x): x for x in (given, trainer._train_loader)}.values():
        if loader is not None and hasattr(loader, "close") and is_stateful_loader(loader):
            loader.close()
    trainer._batches = None


def seed_and_shard(trainer: Trainer, *loaders: Any) -> list[Any]:
    """Give seedless DataLoaders the run's seed (``Trainer(seed=...)``; with several ranks always,
    so their shards fit together), then split them across the ranks (distributed.py)."""
    for loader in loaders:
        unseeded = is_stateful_loader(loader) and getattr(loader, "seed", 0) is None
        if unseeded and (trainer.seed is not None or distributed.world_size() > 1):
            loader.seed = trainer.rng_base
    return (
        distributed.shard_loaders(trainer, *loaders)
        if distributed.world_size() > 1
        else list(loaders)
    )


def is_stateful_loader(loader: Any) -> bool:
    return all(hasattr(loader, name) for name in ("state_dict", "load_state_dict", "set_epoch"))


class EpochBatches:
    """One epoch's batches with ``is_last`` known as each arrives (Lightning's data fetcher).

    With a known count the last batch is the count-th; otherwise one batch is read ahead, and
    the loader's state is snapshotted before the read-ahead so a checkpoint resumes exactly.
    """

    def __init__(
        self, loader: Any, count: float, start: int, loader_state: dict[str, Any] | None, epoch: int
    ) -> None:
        self.loader = loader
        self.stateful = is_stateful_loader(loader)
        if self.stateful:
            if loader_state:
                loader.load_state_dict(loader_state)
            else:
                loader.set_epoch(epoch)
        iterator = iter(loader)
        if start and not (self.stateful and loader_state):  # not resumable: skip what was seen
            warnings.warn(
                "You're resuming from a checkpoint that ended before the epoch ended and your "
                "dataloader is not resumable. This can cause unreliable results if further "
                "training is done. Consider using an end-of-epoch checkpoint or make your "
                "dataloader resumable by implementing the `state_dict` / `load_state_dict` "
                "interface.",
                stacklevel=3,
            )
            iterator = itertools.islice(iterator, start, None)
        self.iterator: Iterator[Any] = iterator
        self.count = count
        self.seen = start
        self.ahead: list[Any] = []
        self.snapshot: dict[str, Any] | None = None
        self.cut_short = False  # data-parallel, unsized: this rank had batches left at the end

    def next(self) -> tuple[Any, bool] | None:
        fetched = self._next()
        if math.isfinite(self.count) or distributed.world_size() == 1:
            return fetched
        # data-parallel over unsized loaders: the epoch ends on every rank when it ends on one
        # (NOTE [same collectives on every rank] in distributed.py); 2 = no batch, 1 = the last
        agreed = distributed.largest(2 if fetched is None else int(fetched[1]))
        self.cut_short = fetched is not None and agreed > int(fetched[1])
        return None if fetched is None or agreed == 2 else (fetched[0], agreed == 1)

    def _next(self) -> tuple[Any, bool] | None:
        if self.seen >= self.count:
            return None
        if self.ahead:
            batch = self.ahead.pop()
        else:
            try:
                batch = next(self.iterator)
            except StopIteration:
                return None
        self.seen += 1
        if math.isfinite(self.count):
            return batch, self.seen >= self.count
        self.snapshot = self.loader.state_dict() if self.stateful else None
        try:
            self.ahead.append(next(self.iterator))
        except StopIteration:
            return batch, True
        return batch, False

    def loader_state(self) -> dict[str, Any] | None:
        if not self.stateful:
            return None
        return (
            self.snapshot if self.ahead and self.snapshot is not None else self.loader.state_dict()
        )


_BATCH_TYPES = (mx.array, np.ndarray, tuple, list, dict, str, bytes, int, float)


def split_loaders(given: Any) -> list[Any]:
    """Lightning's sequential ``CombinedLoader`` over ``dataloaders``: a list or tuple of loaders,
    or a dict of them (its values, in order), are several loaders; anything else is one.

    NOTE [several loaders]: a list here may also be one loader whose items are batches (arrays,
    tuples, dicts), as our ``fit``/``validate`` take any iterable of batches: a list is several
    loaders only when every item is a loader (an iterable that is not itself a batch)."""
    if isinstance(given, dict):
        loaders = list(given.values())
        for name, loader in given.items():
            if not hasattr(loader, "__iter__") or isinstance(loader, (str, bytes)):
                raise TypeError(
                    f"dataloaders[{name!r}] must be an iterable of batches, got "
                    f"{type(loader).__name__}"
                )
        return loaders
    if isinstance(given, (list, tuple)) and given:
        if all(_is_loader(x) for x in given):
            return list(given)
    return [given]


def _is_loader(value: Any) -> bool:
    return hasattr(value, "__iter__") and not isinstance(value, _BATCH_TYPES)


def check_dataloader_idx(
    module: TrainModule, hooks: tuple[str, ...], several: bool, prefix: str
) -> None:
    """Lightning's ``_verify_dataloader_idx_requirement`` (its messages): with several loaders
    the step and batch hooks must take ``dataloader_idx``; with one, it must have a default."""
    import inspect

    for hook in hooks:
        fx = getattr(module, hook)
        fx = getattr(fx, "__wrapped__", fx)
        spec = inspect.getfullargspec(fx)
        present = "dataloader_idx" in spec.args[1:] or spec.varargs is not None
        if not several:
            params = inspect.signature(fx).parameters
            if present and "dataloader_idx" in params:
                if params["dataloader_idx"].default is inspect.Parameter.empty:
                    raise RuntimeError(
                        f"You provided only a single `{prefix}_dataloader`, but have included "
                        f"`dataloader_idx` in `{type(module).__name__}.{hook}()`. Either remove the"
                        " argument or give it a default value i.e. `dataloader_idx=0`."
                    )
        elif not present:
            raise RuntimeError(
                f"You provided multiple `{prefix}_dataloader`, but no `dataloader_idx`"
                f" argument in `{type(module).__name__}.{hook}()`. Try adding `dataloader_idx=0` to its"
                " signature."
            )


def report_device_data(train: Any, vals: list[Any]) -> None:
    """A status line per loader over a device-resident ``ArrayDataset`` (NOTE [device-resident
    data] in mlx_audio.data's _loader/settings.py) with the memory its arrays take there; on a CUDA GPU,
    where a loader batches an in-memory ``ArrayDataset`` on the host instead, the line says how
    to keep it on the device."""
    from mlx_audio.data import ArrayDataset, DataLoader

    from ._status import rank_zero_info

    gpu = bool(getattr(mx, "cuda", None) and mx.cuda.is_available())
    named = [("train", train)] + [
        ("val", v) if len(vals) == 1 else (f"val {i}", v) for i, v in enumerate(vals)
    ]
    for name, loader in named:
        dataset = loader.dataset if isinstance(loader, DataLoader) else None
        while dataset is not None and hasattr(dataset, "indices") and hasattr(dataset, "dataset"):
            dataset = dataset.dataset  # a Subset (random_split)
        if not isinstance(dataset, ArrayDataset):
            continue
        n, taken = len(loader.dataset), _bytes(dataset.nbytes)
        size = (  # a split shares its parent's arrays
            f"{n:,} samples; its arrays take {taken}"
            if n == len(dataset)
            else f"{n:,} of the {len(dataset):,} samples of arrays taking {taken}"
        )
        if dataset.on_device:
            rank_zero_info(
                f"Trainer: {name} data on the device ({size}): batched there, one mx.take per array"
            )
        elif gpu:
            rank_zero_info(
                f"Trainer: {name} data is an in-memory ArrayDataset ({size}) batched on the host; "
                "ArrayDataset(..., device=True) keeps it on the GPU and batches it there"
            )


def _bytes(n: int) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{n / scale:,.1f} {unit}"
    return f"{n} B"
