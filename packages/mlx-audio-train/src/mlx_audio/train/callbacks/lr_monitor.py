"""LearningRateMonitor: logs ``lr-<Optimizer>`` as Lightning does, with the rate the next update uses."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .._publish import send_to_loggers, should_update_logs
from .base import Callback

if TYPE_CHECKING:
    from mlx.optimizers import Optimizer

    from ..module import TrainModule
    from ..trainer import Trainer


def next_learning_rate(optimizer: Optimizer) -> float:
    """The rate the optimizer's next update will use: MLX evaluates a schedule at the update
    count before incrementing it, so that is ``schedule(step)`` (a constant rate is stored)."""
    schedule = getattr(optimizer, "_schedulers", {}).get("learning_rate")
    if schedule is not None:
        return float(schedule(optimizer.step).item())
    return float(optimizer.learning_rate.item())


class LearningRateMonitor(Callback):
    """``logging_interval="step"``: at the start of each batch on a logging step
    (``log_every_n_steps``), the rate that batch's update uses; ``"epoch"``: at each epoch's
    start; ``None``: both. The key is ``lr-<OptimizerClass>`` (e.g. ``lr-AdamW``), the step
    Lightning's logging step. Silent when the trainer has no logger."""

    def __init__(self, logging_interval: str | None = None) -> None:
        if logging_interval not in ("step", "epoch", None):
            raise ValueError(
                f"LearningRateMonitor: logging_interval must be 'step', 'epoch' or None, got {logging_interval!r}"
            )
        self.logging_interval = logging_interval

    def _log(self, trainer: Trainer) -> None:
        optimizer = trainer.optimizer
        if optimizer is None or not trainer.loggers:
            return
        name = f"lr-{type(optimizer).__name__}"
        value = next_learning_rate(optimizer)
        trainer.metrics.callback[name] = value
        send_to_loggers(trainer, {name: value}, step=trainer.progress.batches_that_stepped)

    def on_train_batch_start(
        self, trainer: Trainer, module: TrainModule, batch: Any, batch_idx: int
    ) -> None:
        if self.logging_interval != "epoch" and should_update_logs(trainer):
            self._log(trainer)

    def on_train_epoch_start(self, trainer: Trainer, module: TrainModule) -> None:
        if self.logging_interval != "step":
            self._log(trainer)
