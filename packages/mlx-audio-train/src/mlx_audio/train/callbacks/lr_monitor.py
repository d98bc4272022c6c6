"""LearningRateMonitor: logs the rate each optimizer update actually used, as ``lr``."""

from __future__ import annotations

from typing import Any

from .base import Callback


class LearningRateMonitor(Callback):
    """Logs ``lr`` at step k with the rate update k used (or once per epoch).

    MLX evaluates a schedule at the optimizer's internal step *before* incrementing it, so the
    rate used by update k is what ``optimizer.learning_rate`` holds right after that update;
    recomputing ``schedule(global_step)`` would be off by one. Silent when the trainer has no
    logger.
    """

    def __init__(self, logging_interval: str | None = "step") -> None:
        if logging_interval not in ("step", "epoch", None):
            raise ValueError(
                f"LearningRateMonitor: logging_interval must be 'step', 'epoch' or None, got {logging_interval!r}"
            )
        self.logging_interval = logging_interval or "step"

    def _log(self, trainer: Any) -> None:
        if trainer.optimizer is None or "learning_rate" not in trainer.optimizer.state:
            return
        trainer.log_metrics({"lr": trainer.optimizer.learning_rate.item()})

    def on_train_batch_end(
        self, trainer: Any, module: Any, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if self.logging_interval == "step" and trainer.did_update:
            self._log(trainer)

    def on_train_epoch_end(self, trainer: Any, module: Any) -> None:
        if self.logging_interval == "epoch":
            self._log(trainer)
