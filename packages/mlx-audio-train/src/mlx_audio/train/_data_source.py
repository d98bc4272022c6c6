"""Where each entry point's loaders come from (Lightning's ``_DataConnector``): the loaders passed
to ``fit``/``validate``/``test``/``predict``, else the datamodule's ``*_dataloader()``, else the
module's; ``prepare_data`` on rank 0; and Lightning's errors for the mix-ups."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from . import distributed
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
