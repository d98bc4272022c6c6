"""Timer: stop training after a wall-clock budget (resumable: elapsed time is checkpointed)."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from .base import Callback

if TYPE_CHECKING:
    from ..module import TrainModule
    from ..trainer import Trainer


def parse_duration(duration: str | timedelta | dict[str, Any] | float) -> float:
    """``"DD:HH:MM:SS"``, a timedelta, ``{"hours": 2}`` or seconds -> seconds."""
    if isinstance(duration, timedelta):
        return duration.total_seconds()
    if isinstance(duration, dict):
        return timedelta(**duration).total_seconds()
    if isinstance(duration, (int, float)) and not isinstance(duration, bool):
        return float(duration)
    if isinstance(duration, str):
        parts = duration.split(":")
        if len(parts) == 4 and all(p.strip().isdigit() for p in parts):
            days, hours, minutes, seconds = map(int, parts)
            return timedelta(
                days=days, hours=hours, minutes=minutes, seconds=seconds
            ).total_seconds()
    raise ValueError(
        f"Timer: duration must be 'DD:HH:MM:SS', a timedelta, a dict of timedelta fields or seconds, got {duration!r}"
    )


class Timer(Callback):
    """Sets ``trainer.should_stop`` once training has run for ``duration`` (checked each step)."""

    def __init__(
        self, duration: str | timedelta | dict[str, Any] | float, interval: str = "step"
    ) -> None:
        self.duration = parse_duration(duration)
        if self.duration <= 0:
            raise ValueError(f"Timer: duration must be positive, got {duration!r}")
        if interval not in ("step", "epoch"):
            raise ValueError(f"Timer: interval must be 'step' or 'epoch', got {interval!r}")
        self.interval = interval
        self._offset = 0.0
        self._start: float | None = None

    def time_elapsed(self) -> float:
        return self._offset + (time.monotonic() - self._start if self._start is not None else 0.0)

    def time_remaining(self) -> float:
        return max(self.duration - self.time_elapsed(), 0.0)

    def on_train_start(self, trainer: Trainer, module: TrainModule) -> None:
        self._start = time.monotonic()

    def on_train_end(self, trainer: Trainer, module: TrainModule) -> None:
        self._offset = self.time_elapsed()
        self._start = None  # the clock runs only while training

    def on_exception(self, trainer: Trainer, module: TrainModule, exception: BaseException) -> None:
        self.on_train_end(trainer, module)

    def _check(self, trainer: Trainer) -> None:
        if self.time_elapsed() >= self.duration:
            trainer.should_stop = True

    def on_train_batch_end(
        self, trainer: Trainer, module: TrainModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if self.interval == "step":
            self._check(trainer)

    def on_train_epoch_end(self, trainer: Trainer, module: TrainModule) -> None:
        self._check(trainer)

    def state_dict(self) -> dict[str, Any]:
        return {"time_elapsed": self.time_elapsed()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._offset = float(state.get("time_elapsed", 0.0))
