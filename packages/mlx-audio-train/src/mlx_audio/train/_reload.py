"""The loaders the flags change: ``overfit_batches`` (the same first batches every epoch: a
shuffling DataLoader rebuilt in order), ``reload_dataloaders_every_n_epochs`` (new loaders from
the data's ``*_dataloader()`` hooks) and a DataLoader rebuilt with another batch size (the
tuner's ``scale_batch_size``)."""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .trainer import Trainer


def rebuilt(loader: Any, **changes: Any) -> Any:
    """A new ``mlx_audio.data.DataLoader`` with ``loader``'s settings and ``changes`` (e.g.
    ``batch_size=64``, or ``sampler=...``); its seed is kept, so its order is the same."""
    from mlx_audio.data import DataLoader

    if not isinstance(loader, DataLoader):
        raise TypeError(
            f"only an mlx_audio.data.DataLoader can be rebuilt, got {type(loader).__name__}"
        )
    if loader.batch_sampler is not None and type(loader.batch_sampler).__name__ != "BatchSampler":
        raise ValueError(
            f"the DataLoader's batch_sampler is a {type(loader.batch_sampler).__name__}, which sets "
            "the batches itself: it cannot be rebuilt with another batch size or order"
        )
    settings: dict[str, Any] = {
        "batch_size": loader.batch_size,
        "drop_last": loader.drop_last,
        "num_workers": loader.num_workers,
        "collate_fn": loader.collate_fn,
        "timeout": loader.timeout,
        "worker_init_fn": loader.worker_init_fn,
        "multiprocessing_context": loader.multiprocessing_context,
        "prefetch_factor": loader.prefetch_factor,
        "persistent_workers": loader.persistent_workers,
        "seed": loader.seed,
        "worker_type": loader.worker_type,
        "cpu_transforms": loader.cpu_transforms,
        "mlx_transforms": loader.mlx_transforms,
        "in_order": loader.in_order,
    }
    if loader.sampler is not None and "sampler" not in changes:
        settings["sampler"] = loader.sampler
    return DataLoader(loader.dataset, **{**settings, **changes})


def in_order(loader: Any, prefix: str) -> Any:
    """Lightning's ``_resolve_overfit_batches``: a loader whose sampler is not sequential is
    rebuilt with a ``SequentialSampler``, with Lightning's warning; other iterables (a list of
    batches) are taken as they are."""
    from mlx_audio.data import SequentialSampler

    sampler = getattr(loader, "sampler", None)
    if sampler is None or isinstance(sampler, SequentialSampler):
        return loader
    warnings.warn(
        f"You requested to overfit but enabled {prefix} dataloader shuffling. We are turning off "
        f"the {prefix} dataloader shuffling for you.",
        UserWarning,
        stacklevel=4,
    )
    try:
        return rebuilt(loader, sampler=SequentialSampler(loader.dataset))
    except ValueError as error:
        raise ValueError(f"Trainer(overfit_batches=...): the {prefix} loader: {error}") from None


def overfit_loaders(trainer: Trainer, train: Any, vals: list[Any]) -> tuple[Any, list[Any]]:
    """``fit``'s loaders under ``overfit_batches > 0`` (Lightning: train and val each in order)."""
    if trainer.overfit_batches <= 0:
        return train, vals
    return in_order(train, "train"), [in_order(v, "val") for v in vals]


def fresh_loader(trainer: Trainer, kind: str) -> Any:
    """The loaders of ``kind`` ("train" or "val") from where ``fit``'s came from (Lightning's
    ``_DataLoaderSource``): the datamodule's or the module's ``*_dataloader()`` asked again, or
    the very loaders given to ``fit`` (a source that is an instance returns it)."""
    from ._data_source import request

    given = trainer.given_loaders[0 if kind == "train" else 1]
    return request(trainer, given, kind, required=kind == "train")


def reload_due(trainer: Trainer, last: int | None) -> bool:
    """Lightning's ``_should_reload_*_dl``: every ``reload_dataloaders_every_n_epochs`` epochs
    since the last load (``last``: the epoch it happened)."""
    n = trainer.reload_dataloaders_every_n_epochs
    return bool(n) and (last is None or trainer.current_epoch - last >= n)


def reload_if_due(trainer: Trainer) -> None:
    """At an epoch's start under ``reload_dataloaders_every_n_epochs``: the train and val loaders
    asked for again (:func:`fresh_loader`), made ready as ``fit``'s (overfit, seeds, shards,
    limits); the loaders they replace are closed."""
    from . import distributed
    from ._arguments import val_check_batch
    from ._loaders import (
        agreed_batches,
        is_stateful_loader,
        length_of,
        limited,
        seed_and_shard,
        split_loaders,
    )

    if trainer.last_reload is None:  # fit's first epoch (or the resumed one): fit's loaders
        trainer.last_reload = trainer.current_epoch
        return
    if not reload_due(trainer, trainer.last_reload):
        return
    trainer.last_reload = trainer.current_epoch
    train, val = fresh_loader(trainer, "train"), fresh_loader(trainer, "val")
    vals = [] if val is None else split_loaders(val)
    train, vals = overfit_loaders(trainer, train, vals)
    train, *vals = seed_and_shard(trainer, train, *vals)
    old_loaders = [trainer._train_loader, *trainer._val_loaders]
    for old in old_loaders:
        if old is not None and all(old is not new for new in (train, *vals)):
            closable: Any = old  # an mlx_audio.data.DataLoader (with workers) has close()
            if is_stateful_loader(old) and hasattr(old, "close"):
                closable.close()  # the replaced loader's workers and shared memory
    trainer._train_loader = train
    trainer.num_training_batches = agreed_batches(
        trainer, limited(length_of(train), trainer.limit_train_batches)
    )
    if val is not None:
        trainer._val_loaders = vals
        trainer.num_val_batches = [
            distributed.smallest(limited(length_of(x), trainer.limit_val_batches)) for x in vals
        ]
    trainer.val_check_batch = val_check_batch(
        trainer.args, trainer.num_training_batches, sum(trainer.num_val_batches)
    )
