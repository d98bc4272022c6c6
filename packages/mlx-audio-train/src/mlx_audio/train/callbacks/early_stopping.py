"""EarlyStopping: stop when a monitored metric stops improving (Lightning's semantics)."""

from __future__ import annotations

import math
from enum import Enum
from typing import TYPE_CHECKING, Any

from .._status import rank_zero_info
from .base import MonitorCallback, check_mode, check_number

if TYPE_CHECKING:
    from ..module import TrainModule
    from ..trainer import Trainer


class EarlyStoppingReason(Enum):
    """Why :class:`EarlyStopping` stopped training (Lightning's enum, same values)."""

    NOT_STOPPED = 0
    STOPPING_THRESHOLD = 1
    DIVERGENCE_THRESHOLD = 2
    PATIENCE_EXHAUSTED = 3
    NON_FINITE_METRIC = 4


_ORDER = {"min": "<", "max": ">"}


class EarlyStopping(MonitorCallback):
    """Checked after each validation -- or at each training epoch's end when validation runs once
    per epoch (``check_on_train_epoch_end``, decided at setup as in Lightning). Stops after
    ``patience`` checks without an improvement of more than ``min_delta``; at once when the
    metric becomes non-finite (``check_finite``), reaches ``stopping_threshold`` or goes past
    ``divergence_threshold``. A missing metric raises with ``strict`` (the default).
    ``stopping_reason`` (an :class:`EarlyStoppingReason`) and ``stopping_reason_message`` say
    why it stopped (``NOT_STOPPED`` / ``None`` while it has not); both are checkpointed."""

    def __init__(
        self,
        monitor: str = "val_loss",
        min_delta: float = 0.0,
        patience: int = 3,
        mode: str = "min",
        strict: bool = True,
        check_finite: bool = True,
        stopping_threshold: float | None = None,
        divergence_threshold: float | None = None,
        check_on_train_epoch_end: bool | None = None,
        verbose: bool = False,
    ) -> None:
        check_mode("EarlyStopping", mode)
        check_number("EarlyStopping", "min_delta", min_delta, minimum=0)
        check_number("EarlyStopping", "patience", patience, minimum=0, integer=True)
        check_number("EarlyStopping", "stopping_threshold", stopping_threshold, allow_none=True)
        check_number("EarlyStopping", "divergence_threshold", divergence_threshold, allow_none=True)
        if not isinstance(monitor, str) or not monitor:
            raise ValueError(f"EarlyStopping: monitor must be a metric name, got {monitor!r}")
        self.monitor = monitor
        self.mode = mode
        self.patience = patience
        self.min_delta = float(min_delta)
        self.strict = strict
        self.check_finite = check_finite
        self.verbose = verbose
        self.stopping_threshold = stopping_threshold
        self.divergence_threshold = divergence_threshold
        self.check_on_train_epoch_end = check_on_train_epoch_end
        self.wait_count = 0
        self.best_score = self.worst
        self.stopped_epoch = 0
        self.stopping_reason = EarlyStoppingReason.NOT_STOPPED
        self.stopping_reason_message: str | None = None

    @property
    def state_key(self) -> str:
        return f"EarlyStopping{{monitor={self.monitor}, mode={self.mode}}}"

    def setup(self, trainer: Trainer, module: TrainModule, stage: str) -> None:
        if self.check_on_train_epoch_end is None:
            self.check_on_train_epoch_end = (
                trainer.val_check_interval == 1.0 and trainer.check_val_every_n_epoch == 1
            )

    def _skip(self, trainer: Trainer) -> bool:
        return trainer.state_fn != "fit" or trainer.sanity_checking

    def on_train_epoch_end(self, trainer: Trainer, module: TrainModule) -> None:
        if self.check_on_train_epoch_end and not self._skip(trainer):
            self._run_early_stopping_check(trainer)

    def on_validation_end(self, trainer: Trainer, module: TrainModule) -> None:
        if not self.check_on_train_epoch_end and not self._skip(trainer):
            self._run_early_stopping_check(trainer)

    def _run_early_stopping_check(self, trainer: Trainer) -> None:
        metrics = trainer.callback_metrics
        if trainer.fast_dev_run:
            return
        value = self.monitored_value(metrics)
        if value is None:
            if self.strict:
                raise RuntimeError(
                    f"EarlyStopping conditioned on metric {self.monitor!r}, which is not available; "
                    f"logged metrics: {sorted(metrics)} (a val_ metric needs val_dataloaders)"
                )
            return
        current = float(value)
        stop, reason = self._evaluate_stopping_criteria(current)
        trainer.should_stop = trainer.should_stop or stop
        if stop:
            self.stopped_epoch = trainer.current_epoch
            self.stopping_reason_message = reason
        if reason and self.verbose and trainer.is_global_zero:
            rank_zero_info(reason)
        elif stop and trainer.is_global_zero:
            rank_zero_info(f"EarlyStopping: {reason}")

    def _evaluate_stopping_criteria(self, current: float) -> tuple[bool, str | None]:
        """Lightning's criteria, in its order, with its messages (``stopping_reason`` set)."""
        monitor, order = self.monitor, _ORDER[self.mode]
        if self.check_finite and not math.isfinite(current):
            self.stopping_reason = EarlyStoppingReason.NON_FINITE_METRIC
            return True, (
                f"Monitored metric {monitor} = {current} is not finite."
                f" Previous best value was {self.best_score:.3f}. Signaling Trainer to stop."
            )
        if self.stopping_threshold is not None and self.is_better(current, self.stopping_threshold):
            self.stopping_reason = EarlyStoppingReason.STOPPING_THRESHOLD
            return True, (
                f"Stopping threshold reached: {monitor} = {current} {order} "
                f"{self.stopping_threshold}. Signaling Trainer to stop."
            )
        if self.divergence_threshold is not None and self.is_better(
            -current, -self.divergence_threshold
        ):
            self.stopping_reason = EarlyStoppingReason.DIVERGENCE_THRESHOLD
            return True, (
                f"Divergence threshold reached: {monitor} = {current} {order} "
                f"{self.divergence_threshold}. Signaling Trainer to stop."
            )
        if self.is_improvement(current, self.best_score):
            if math.isfinite(self.best_score):
                message = (
                    f"Metric {monitor} improved by {abs(self.best_score - current):.3f} >="
                    f" min_delta = {abs(self.min_delta)}. New best score: {current:.3f}"
                )
            else:
                message = f"Metric {monitor} improved. New best score: {current:.3f}"
            self.best_score = current
            self.wait_count = 0
            return False, message
        self.wait_count += 1
        if self.wait_count < self.patience:
            return False, None
        self.stopping_reason = EarlyStoppingReason.PATIENCE_EXHAUSTED
        return True, (
            f"Monitored metric {monitor} did not improve in the last {self.wait_count} records."
            f" Best score: {self.best_score:.3f}. Signaling Trainer to stop."
        )

    def state_dict(self) -> dict[str, Any]:
        return {
            "wait_count": self.wait_count,
            "best_score": self.best_score,
            "stopped_epoch": self.stopped_epoch,
            "patience": self.patience,
            "stopping_reason": self.stopping_reason.value,
            "stopping_reason_message": self.stopping_reason_message,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.wait_count = int(state["wait_count"])
        self.best_score = float(state["best_score"])
        self.stopped_epoch = int(state.get("stopped_epoch", 0))
        self.stopping_reason = EarlyStoppingReason(
            state.get("stopping_reason", EarlyStoppingReason.NOT_STOPPED.value)
        )
        self.stopping_reason_message = state.get("stopping_reason_message")
