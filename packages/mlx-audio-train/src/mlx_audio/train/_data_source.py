"""Where each entry point's loaders come from (Lightning's ``_DataConnector``): the loaders passed
to ``fit``/``validate``/``test``/``predict``, else the datamodule's ``*_dataloader()``, else the
module's; ``prepare_data`` on rank 0; Lightning's errors for the mix-ups; and when fit asks for its loaders
(:class:`FitData`)."""

from __future__ import annotations

import math
import warnings
import weakref
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from . import distributed
from ._arguments import val_check_batch
from ._loaders import (
    agreed_batches,
    check_fit_inputs,
    length_of,
    limited,
    seed_and_shard,
    split_loaders,
)
from ._reload import overfit_loaders
from .datamodule import DataModule
from .module import TrainModule

if TYPE_CHECKING:
    from .trainer import Trainer


def is_overridden(name: str, instance: Any, parent: type) -> bool:
    """Lightning's ``is_overridden``: the instance has its own ``name`` (a subclass's method, or an
    attribute set on it), not ``parent``'s; an attribute set to None is not."""
    attr = getattr(instance, name, None)
    if attr is None:
        return False
    return getattr(attr, "__func__", attr) is not getattr(parent, name, None)


def attach(
    trainer: Trainer,
    model: TrainModule | None,
    datamodule: Any,
    given: tuple[Any, ...],
    entry: str,
) -> tuple[TrainModule, DataModule | None, tuple[Iterable[Any] | None, ...]]:
    """Check the arguments of an entry point as Lightning does, and remember the datamodule.
    A DataModule passed where the loaders go is taken as ``datamodule`` (Lightning)."""
    if given and isinstance(given[0], DataModule):
        datamodule, given = given[0], (None, *given[1:])
    if model is None:
        model = trainer.module
        if model is None:
            raise TypeError(
                f"`Trainer.{entry}()` requires a `LightningModule` when it hasn't been passed in a"
                " previous run (here a TrainModule)"
            )
    if datamodule is not None:
        if not isinstance(datamodule, DataModule):
            raise TypeError(
                f"Trainer.{entry}: datamodule must be a DataModule, got {type(datamodule).__name__}"
            )
        if any(x is not None for x in given):
            if entry == "fit":
                raise ValueError(
                    "You cannot pass `train_dataloader` or `val_dataloaders` to"
                    " `trainer.fit(datamodule=...)`"
                )
            raise ValueError(
                f"You cannot pass both `trainer.{entry}(dataloaders=..., datamodule=...)`"
            )
        datamodule.trainer = trainer
    trainer.datamodule = datamodule
    return model, datamodule, given


def prepare_data(trainer: Trainer) -> None:
    """The datamodule's ``prepare_data``, then the module's, on rank 0 only (Lightning's
    ``local_rank == 0``: one machine here); every rank waits until it is done."""
    datamodule, module = trainer.datamodule, trainer.module
    ran = False
    for owner, parent in ((datamodule, DataModule), (module, TrainModule)):
        if owner is not None and is_overridden("prepare_data", owner, parent):
            if distributed.global_rank() == 0:
                trainer.hooks.call_data_hook(owner, "prepare_data")
            ran = True
    if ran and distributed.world_size() > 1:
        distributed.barrier("rank 0's prepare_data")


_PENDING: weakref.WeakKeyDictionary[Any, FitData] = weakref.WeakKeyDictionary()


def estimated_steps(trainer: Trainer) -> int | None:
    """``max_epochs x updates per epoch``; in a fit that has not asked for its train loader yet,
    it is asked for now (Lightning's ``estimated_stepping_batches`` loads it)."""
    data = _PENDING.get(trainer)
    if data is not None:
        data.train()
    return trainer._estimated_max_steps


def has_source(trainer: Trainer, kind: str) -> bool:
    """Whether the datamodule (when there is one) or else the module defines
    ``{kind}_dataloader`` (Lightning's ``_DataHookSelector``: the datamodule wins)."""
    if trainer.datamodule is not None:
        return is_overridden(f"{kind}_dataloader", trainer.datamodule, DataModule)
    return is_overridden(f"{kind}_dataloader", trainer.module, TrainModule)


def request(trainer: Trainer, given: Any, kind: str, required: bool) -> Any:
    """The loaders of ``kind`` (``"train"``, ``"val"``, ``"test"``, ``"predict"``): those given,
    else the datamodule's ``{kind}_dataloader()``, else the module's. None when neither defines
    it and ``required`` is False; else the default method's error."""
    if given is not None:
        return given
    name = f"{kind}_dataloader"
    source: Any = trainer.datamodule if trainer.datamodule is not None else trainer.module
    parent = DataModule if trainer.datamodule is not None else TrainModule
    if not is_overridden(name, source, parent):
        if not required:
            return None
        entry = {"train": "fit", "val": "validate", "test": "test", "predict": "predict"}[kind]
        where = "train_dataloaders" if kind == "train" else "dataloaders"
        raise ValueError(
            f"`{name}` must be implemented to be used with the Lightning Trainer: define "
            f"{type(source).__name__}.{name}(), pass a DataModule that does, or pass the loader: "
            f"trainer.{entry}(model, {where}=...)"
        )
    return trainer.hooks.call_data_hook(source, name)


class FitData:
    """Fit's loaders, each asked for once when first needed (NOTE [when the loaders are asked
    for]): those given to fit, else the datamodule's or the module's ``*_dataloader()``."""

    def __init__(self, trainer: Trainer, model: TrainModule, train: Any, val: Any) -> None:
        self.trainer, self.model = trainer, model
        self.given_train, self.given_val = train, val
        self.train_done = self.val_done = False
        # Lightning's values before its loops set up their data (none of the last run's)
        trainer.num_training_batches, trainer.num_val_batches = math.inf, []
        trainer._train_loader, trainer._val_loaders = None, []
        trainer._estimated_max_steps = None
        _PENDING[trainer] = self  # until done(): estimated_steps asks for the train loader

    def val_defined(self) -> bool:
        """Lightning's ``enable_validation``: a validation source, a ``validation_step`` and a
        ``limit_val_batches`` that is not 0."""
        trainer = self.trainer
        if trainer.limit_val_batches == 0 or getattr(self.model, "validation_step", None) is None:
            return False
        return self.given_val is not None or has_source(trainer, "val")

    def val(self) -> None:
        if self.val_done:
            return
        self.val_done = True
        trainer, model = self.trainer, self.model
        loader = None
        if trainer.limit_val_batches != 0 and getattr(model, "validation_step", None) is not None:
            loader = request(trainer, self.given_val, "val", required=False)
            overridden = is_overridden("validation_step", model, TrainModule)
            if loader is None and overridden and trainer.is_global_zero:
                trainer.warn_once(  # Lightning's words (its configuration validator)
                    "You defined a `validation_step` but have no `val_dataloader`."
                    " Skipping val loop."
                )
        check_fit_inputs(trainer, model, None, loader)
        _, loaders = overfit_loaders(trainer, None, [] if loader is None else split_loaders(loader))
        trainer._val_loaders = seed_and_shard(trainer, *loaders)
        trainer.num_val_batches = [
            distributed.smallest(limited(length_of(x), trainer.limit_val_batches))
            for x in trainer._val_loaders
        ]

    def train(self) -> None:
        if self.train_done:
            return
        self.train_done = True
        trainer = self.trainer
        loader = request(trainer, self.given_train, "train", required=True)
        check_fit_inputs(trainer, self.model, loader, None)
        loader, _ = overfit_loaders(trainer, loader, [])
        (trainer._train_loader,) = seed_and_shard(trainer, loader)
        trainer.num_training_batches = agreed_batches(
            trainer, limited(length_of(trainer._train_loader), trainer.limit_train_batches)
        )
        per_epoch = (
            math.ceil(trainer.num_training_batches / trainer.accumulate_grad_batches)
            if math.isfinite(trainer.num_training_batches)
            else None
        )
        trainer._estimated_max_steps = (
            trainer.max_epochs * per_epoch
            if trainer.max_epochs is not None and per_epoch is not None
            else None
        )

    def finish(self) -> None:
        """Once both are asked for: when to validate, and the short-epoch warning."""
        trainer = self.trainer
        _PENDING.pop(trainer, None)
        trainer.val_check_batch = val_check_batch(
            trainer.args, trainer.num_training_batches, sum(trainer.num_val_batches)
        )
        warn_short_epoch(trainer)


def warn_short_epoch(trainer: Trainer) -> None:
    """Lightning 2.6's warning (``_FitLoop.setup_data``, its words): an epoch with fewer batches
    than ``log_every_n_steps`` logs no step of its own."""
    batches = trainer.num_training_batches
    if trainer.loggers and batches < trainer.log_every_n_steps and not trainer.fast_dev_run:
        if trainer.is_global_zero:
            warnings.warn(
                f"The number of training batches ({batches}) is smaller than the logging interval"
                f" Trainer(log_every_n_steps={trainer.log_every_n_steps}). Set a lower value for"
                " log_every_n_steps if you want to see logs for the training epoch.",
                UserWarning,
                stacklevel=4,
            )
