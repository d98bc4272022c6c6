"""LearningRateMonitor: logs ``lr-<Optimizer>`` as Lightning does, with the rate the next update uses."""

from __future__ import annotations

import warnings
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


def _momentum(optimizer: Optimizer) -> float | None:
    """Lightning's: ``betas[0]`` for the Adam family, else ``momentum``; None: it has neither."""
    betas = getattr(optimizer, "betas", None)
    if betas is not None:
        return float(betas[0])
    momentum = getattr(optimizer, "momentum", None)
    return float(momentum) if momentum is not None else None


class LearningRateMonitor(Callback):
    """``logging_interval="step"``: at the start of each batch on a logging step
    (``log_every_n_steps``), the rate that batch's update uses; ``"epoch"``: at each epoch's
    start; ``None``: both. The key is ``lr-<OptimizerClass>`` (e.g. ``lr-AdamW``), the step
    Lightning's logging step. Silent when the trainer has no logger.

    ``log_momentum=True`` also logs ``lr-<OptimizerClass>-momentum`` (``betas[0]`` for the Adam
    family; 0, with Lightning's warning, for an optimizer without momentum), and
    ``log_weight_decay=True`` ``lr-<OptimizerClass>-weight_decay`` (0 when it has none). As in
    Lightning, ``lrs`` keeps every logged rate by name, ``last_momentum_values`` and
    ``last_weight_decay_values`` the last values (``None`` until logged)."""

    def __init__(
        self,
        logging_interval: str | None = None,
        log_momentum: bool = False,
        log_weight_decay: bool = False,
    ) -> None:
        if logging_interval not in ("step", "epoch", None):
            raise ValueError(
                f"LearningRateMonitor: logging_interval must be 'step', 'epoch' or None, got {logging_interval!r}"
            )
        self.logging_interval = logging_interval
        self.log_momentum = log_momentum
        self.log_weight_decay = log_weight_decay
        self.lrs: dict[str, list[float]] = {}
        self.last_momentum_values: dict[str, float | None] = {}
        self.last_weight_decay_values: dict[str, float | None] = {}

    def on_train_start(self, trainer: Trainer, module: TrainModule) -> None:
        optimizer = trainer.optimizer
        if optimizer is None:
            return
        if self.log_momentum and _momentum(optimizer) is None:
            warnings.warn(
                "You have set log_momentum=True, but some optimizers do not"
                " have momentum. This will log a value 0 for the momentum.",
                RuntimeWarning,
                stacklevel=2,
            )
        name = f"lr-{type(optimizer).__name__}"
        self.lrs = {name: []}
        self.last_momentum_values = {f"{name}-momentum": None}
        self.last_weight_decay_values = {f"{name}-weight_decay": None}

    def _log(self, trainer: Trainer) -> None:
        optimizer = trainer.optimizer
        if optimizer is None or not trainer.loggers:
            return
        name = f"lr-{type(optimizer).__name__}"
        stats = {name: next_learning_rate(optimizer)}
        self.lrs.setdefault(name, []).append(stats[name])
        if self.log_momentum:
            stats[f"{name}-momentum"] = _momentum(optimizer) or 0.0
            self.last_momentum_values[f"{name}-momentum"] = stats[f"{name}-momentum"]
        if self.log_weight_decay:
            stats[f"{name}-weight_decay"] = float(getattr(optimizer, "weight_decay", 0.0))
            self.last_weight_decay_values[f"{name}-weight_decay"] = stats[f"{name}-weight_decay"]
        trainer.metrics.callback.update(stats)
        send_to_loggers(trainer, stats, step=trainer.progress.batches_that_stepped)

    def on_train_batch_start(
        self, trainer: Trainer, module: TrainModule, batch: Any, batch_idx: int
    ) -> None:
        if self.logging_interval != "epoch" and should_update_logs(trainer):
            self._log(trainer)

    def on_train_epoch_start(self, trainer: Trainer, module: TrainModule) -> None:
        if self.logging_interval != "step":
            self._log(trainer)
