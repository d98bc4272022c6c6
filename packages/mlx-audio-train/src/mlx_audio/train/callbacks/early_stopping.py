"""EarlyStopping: stop when a monitored metric stops improving (Lightning's semantics)."""

from __future__ import annotations

import math
from typing import Any

from .base import Callback, check_mode, check_number


class EarlyStopping(Callback):
    """Checked after every validation. Stops after ``patience`` checks without an improvement
    of more than ``min_delta``; at once when the metric becomes non-finite (``check_finite``),
    reaches ``stopping_threshold`` or goes past ``divergence_threshold``."""

    def __init__(
        self,
        monitor: str = "val_loss",
        min_delta: float = 0.0,
        patience: int = 3,
        mode: str = "min",
        check_finite: bool = True,
        stopping_threshold: float | None = None,
        divergence_threshold: float | None = None,
        verbose: bool = False,
    ) -> None:
        check_mode("EarlyStopping", mode)
        check_number("EarlyStopping", "min_delta", min_delta, minimum=0)
        check_number("EarlyStopping", "patience", patience, minimum=0, integer=True)
        check_number("EarlyStopping", "stopping_threshold", stopping_threshold, allow_none=True)
        check_number("EarlyStopping", "divergence_threshold", divergence_threshold, allow_none=True)
        if not isinstance(monitor, str) or not monitor:
            raise ValueError(f"EarlyStopping: monitor must be a metric name, got {monitor!r}")
        self.monitor, self.mode, self.patience, self.min_delta = (
            monitor,
            mode,
            patience,
            float(min_delta),
        )
        self.check_finite, self.verbose = check_finite, verbose
        self.stopping_threshold, self.divergence_threshold = (
            stopping_threshold,
            divergence_threshold,
        )
        self.wait_count = 0
        self.best_score = math.inf if mode == "min" else -math.inf
        self.stopped_epoch = 0
        self.reason: str | None = None

    @property
    def state_key(self) -> str:
        return f"EarlyStopping{{monitor={self.monitor}, mode={self.mode}}}"

    def _better(self, current: float, reference: float, delta: float) -> bool:
        return current < reference - delta if self.mode == "min" else current > reference + delta

    def on_validation_end(self, trainer: Any, module: Any) -> None:
        if trainer.sanity_checking or self.monitor not in trainer.callback_metrics:
            return
        current = float(trainer.callback_metrics[self.monitor])
        stop, reason = False, None
        if self.check_finite and not math.isfinite(current):
            stop, reason = True, f"{self.monitor} = {current} is not finite"
        elif self.stopping_threshold is not None and not self._better(
            self.stopping_threshold, current, 0.0
        ):
            stop, reason = (
                True,
                f"{self.monitor} = {current:.6g} reached stopping_threshold {self.stopping_threshold}",
            )
        elif self.divergence_threshold is not None and self._better(
            self.divergence_threshold, current, 0.0
        ):
            stop, reason = (
                True,
                f"{self.monitor} = {current:.6g} diverged past {self.divergence_threshold}",
            )
        elif self._better(current, self.best_score, self.min_delta):
            self.best_score, self.wait_count = current, 0
        else:
            self.wait_count += 1
            if self.wait_count >= self.patience:
                stop, reason = (
                    True,
                    f"{self.monitor} did not improve by more than {self.min_delta} in {self.wait_count} checks (best {self.best_score:.6g})",
                )
        if stop:
            self.stopped_epoch, self.reason = trainer.current_epoch, reason
            trainer.should_stop = True
            if trainer.is_global_zero:
                print(f"EarlyStopping: {reason}; stopping.")

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
