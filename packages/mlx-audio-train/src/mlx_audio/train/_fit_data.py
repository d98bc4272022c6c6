"""When ``fit`` asks for its loaders (NOTE [when the loaders are asked for] in _fit_loop.py):
the validation loaders at the sanity check, the train loader after it, or earlier when
``trainer.estimated_stepping_batches`` is read; each made ready once (overfit, seeds, shards,
limits), as Lightning's ``_FitLoop.setup_data`` / ``_EvaluationLoop.setup_data``."""

from __future__ import annotations

import math
import warnings
from typing import TYPE_CHECKING, Any

from . import distributed
from ._arguments import val_check_batch
from ._data_source import asks_later, has_source, is_overridden, request
from ._loaders import (
    agreed_batches,
    check_fit_inputs,
    length_of,
    limited,
    report_device_data,
    seed_and_shard,
    split_loaders,
)
from ._reload import overfit_loaders
from .module import TrainModule

if TYPE_CHECKING:
    from .trainer import Trainer


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
        asks_later(trainer, self.train)  # trainer.estimated_stepping_batches: NOTE in _fit_loop

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
            trainer.epoch_limit * per_epoch
            if trainer.epoch_limit is not None and per_epoch is not None
            else None
        )

    def finish(self) -> None:
        """Once both are asked for: when to validate, and the short-epoch warning."""
        trainer = self.trainer
        trainer.val_check_batch = val_check_batch(
            trainer.args, trainer.num_training_batches, sum(trainer.num_val_batches)
        )
        warn_short_epoch(trainer)
        report_device_data(trainer._train_loader, trainer._val_loaders)


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
