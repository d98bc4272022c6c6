"""Timer: stop training after a wall-clock budget (resumable: elapsed time is checkpointed)."""

from __future__ import annotations

import re
import time
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from .._status import rank_zero_info
from .base import Callback

if TYPE_CHECKING:
    from ..module import TrainModule
    from ..trainer import Trainer


def parse_duration(duration: str | timedelta | dict[str, Any] | float | None) -> float | None:
    """``"DD:HH:MM:SS"``, a timedelta, ``{"hours": 2}`` or seconds -> seconds (None: no limit)."""
    if duration is None:
        return None
    if isinstance(duration, timedelta):
        return duration.total_seconds()
    if isinstance(duration, dict):
        return timedelta(**duration).total_seconds()
    if isinstance(duration, (int, float)) and not isinstance(duration, bool):
        return float(duration)
    if isinstance(duration, str):
        match = re.fullmatch(r"(\d+):(\d\d):(\d\d):(\d\d)", duration.strip())
        if match:
            days, hours, minutes, seconds = (int(g) for g in match.groups())
            return timedelta(
                days=days, hours=hours, minutes=minutes, seconds=seconds
            ).total_seconds()
    raise ValueError(
        f"`Timer(duration={duration!r})` is not a valid duration. Expected a string in the format"
        " DD:HH:MM:SS (or a timedelta, a dict of timedelta fields, seconds)."
    )


_STAGES = ("train", "sanity_check", "validate", "test", "predict")


class Timer(Callback):
    """Sets ``trainer.should_stop`` once training has run for ``duration`` (checked when fitting
    starts and after each step, or each epoch with ``interval="epoch"``), as Lightning's Timer;
    ``None`` only measures. ``time_elapsed(stage)`` / ``time_remaining(stage)`` /
    ``start_time(stage)`` / ``end_time(stage)`` for ``"train"``, ``"validate"`` and ``"test"``;
    the training time survives resume."""

    def __init__(
        self,
        duration: str | timedelta | dict[str, Any] | float | None = None,
        interval: str = "step",
        verbose: bool = True,
    ) -> None:
        self.duration = parse_duration(duration)
        if self.duration is not None and self.duration < 0:
            raise ValueError(f"Timer: duration must not be negative, got {duration!r}")
        if interval not in ("step", "epoch"):
            raise ValueError(
                f"Unsupported parameter value `Timer(interval={interval})`. Possible choices are:"
                " step, epoch"
            )
        self.interval = interval
        self.verbose = verbose
        self._offset = 0.0
        self._start: dict[str, float | None] = dict.fromkeys(_STAGES)
        self._end: dict[str, float | None] = dict.fromkeys(_STAGES)

    def start_time(self, stage: str = "train") -> float | None:
        return self._start[stage]

    def end_time(self, stage: str = "train") -> float | None:
        return self._end[stage]

    def time_elapsed(self, stage: str = "train") -> float:
        start, end = self._start[stage], self._end[stage]
        offset = self._offset if stage == "train" else 0.0
        if start is None:
            return offset
        return (end if end is not None else time.monotonic()) - start + offset

    def time_remaining(self, stage: str = "train") -> float | None:
        return self.duration - self.time_elapsed(stage) if self.duration is not None else None

    def _begin(self, stage: str) -> None:
        self._start[stage] = time.monotonic()
        self._end[stage] = None

    def _finish(self, stage: str) -> None:
        self._end[stage] = time.monotonic()

    def on_fit_start(self, trainer: Trainer, module: TrainModule) -> None:
        self._check(trainer)

    def on_train_start(self, trainer: Trainer, module: TrainModule) -> None:
        self._begin("train")

    def on_train_end(self, trainer: Trainer, module: TrainModule) -> None:
        self._finish("train")

    def on_validation_start(self, trainer: Trainer, module: TrainModule) -> None:
        self._begin("validate")

    def on_validation_end(self, trainer: Trainer, module: TrainModule) -> None:
        self._finish("validate")

    def on_test_start(self, trainer: Trainer, module: TrainModule) -> None:
        self._begin("test")

    def on_test_end(self, trainer: Trainer, module: TrainModule) -> None:
        self._finish("test")

    def on_exception(self, trainer: Trainer, module: TrainModule, exception: BaseException) -> None:
        if self._start["train"] is not None and self._end["train"] is None:
            self._finish("train")

    def _check(self, trainer: Trainer) -> None:
        if self.duration is None or self.time_elapsed() < self.duration:
            return
        if self.verbose and not trainer.should_stop:
            elapsed = timedelta(seconds=int(self.time_elapsed()))
            rank_zero_info(
                f"Time limit reached. Elapsed time is {elapsed}. Signaling Trainer to stop."
            )
        trainer.should_stop = True

    def on_train_batch_end(
        self, trainer: Trainer, module: TrainModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if self.interval == "step":
            self._check(trainer)

    def on_train_epoch_end(self, trainer: Trainer, module: TrainModule) -> None:
        if self.interval == "epoch":
            self._check(trainer)

    def state_dict(self) -> dict[str, Any]:
        return {"time_elapsed": self.time_elapsed()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._offset = float(state.get("time_elapsed", 0.0))
        self._start["train"] = self._end["train"] = None
