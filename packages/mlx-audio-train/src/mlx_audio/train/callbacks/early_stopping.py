"""EarlyStopping: stop when a monitored metric stops improving (Lightning's semantics)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from .._status import rank_zero_info
from .base import MonitorCallback, check_mode, check_number

if TYPE_CHECKING:
    from ..module import TrainModule
    from ..trainer import Trainer


class EarlyStopping(MonitorCallback):
    """Checked after each validation -- or at each training epoch's end when validation runs once
    per epoch (``check_on_train_epoch_end``, decided at setup as in Lightning). Stops after
    ``patience`` checks without an improvement of more than ``min_delta``; at once when the
    metric becomes non-finite (``check_finite``), reaches ``stopping_threshold`` or goes past
    ``divergence_threshold``. A missing metric raises with ``strict`` (the default)."""

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
        self.reason: str | None = None

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
            self._check(trainer)

    def on_validation_end(self, trainer: Trainer, module: TrainModule) -> None:
        if not self.check_on_train_epoch_end and not self._skip(trainer):
            self._check(trainer)

    def _check(self, trainer: Trainer) -> None:
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
        stop = False
        reason = None
        if self.check_finite and not math.isfinite(current):
            stop = True
            reason = f"{self.monitor} = {current} is not finite"
        elif self.stopping_threshold is not None and self.is_better(
            current, self.stopping_threshold
        ):
            stop = True
            reason = f"{self.monitor} = {current:.6g} reached stopping_threshold {self.stopping_threshold}"
        elif self.divergence_threshold is not None and self.is_better(
            -current, -self.divergence_threshold
        ):
            stop = True
            reason = f"{self.monitor} = {current:.6g} diverged past {self.divergence_threshold}"
        elif self.is_improvement(current, self.best_score):
            self.best_score = current
            self.wait_count = 0
        else:
            self.wait_count += 1
            if self.wait_count >= self.patience:
                stop = True
                reason = (
                    f"{self.monitor} did not improve by more than {self.min_delta} in "
                    f"{self.wait_count} checks (best {self.best_score:.6g})"
                )
        trainer.should_stop = trainer.should_stop or stop
        if stop:
            self.stopped_epoch = trainer.current_epoch
            self.reason = reason
            if trainer.is_global_zero:
                rank_zero_info(f"EarlyStopping: {reason}; stopping.")

    def state_dict(self) -> dict[str, Any]:
        return {
            "wait_count": self.wait_count,
            "best_score": self.best_score,
            "stopped_epoch": self.stopped_epoch,
            "patience": self.patience,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.wait_count = int(state["wait_count"])
        self.best_score = float(state["best_score"])
        self.stopped_epoch = int(state.get("stopped_epoch", 0))
