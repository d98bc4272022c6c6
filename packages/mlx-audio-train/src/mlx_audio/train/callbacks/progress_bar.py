"""ProgressBar: one live line on a terminal, plain periodic lines otherwise (logs, CI)."""

from __future__ import annotations

import sys
import time
from typing import Any

from .base import Callback, check_number


def _format(metrics: dict[str, float]) -> str:
    return " ".join(f"{k}={v:.4g}" for k, v in metrics.items())


def _shown(trainer: Any) -> dict[str, float]:
    metrics = trainer.progress_bar_metrics
    return {k.removeprefix("train_"): v for k, v in metrics.items() if not k.startswith("val_")}


class ProgressBar(Callback):
    """Epoch, step, loss, metrics and it/s every ``refresh_rate`` batches.

    On a TTY the line is redrawn in place; when stdout is not a terminal a plain line is
    printed instead, so logs stay readable.
    """

    def __init__(self, refresh_rate: int = 10, stream: Any = None) -> None:
        check_number("ProgressBar", "refresh_rate", refresh_rate, minimum=1, integer=True)
        self.refresh_rate = refresh_rate
        self.stream = stream
        self._last_time = 0.0
        self._last_batches = 0
        self._seen = 0

    @property
    def out(self) -> Any:
        return self.stream if self.stream is not None else sys.stdout

    @property
    def live(self) -> bool:
        isatty = getattr(self.out, "isatty", None)
        return bool(isatty and isatty())

    def on_train_epoch_start(self, trainer: Any, module: Any) -> None:
        self._last_time = time.perf_counter()
        self._last_batches = 0
        self._seen = 0

    def on_train_batch_end(
        self, trainer: Any, module: Any, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        self._seen += 1
        if not trainer.is_global_zero or self._seen % self.refresh_rate:
            return
        now = time.perf_counter()
        rate = (self._seen - self._last_batches) / max(now - self._last_time, 1e-9)
        self._last_time = now
        self._last_batches = self._seen
        total = trainer.num_training_batches
        position = f"{batch_idx + 1}/{total}" if isinstance(total, int) else f"{batch_idx + 1}"
        lr = (
            f" lr={trainer.optimizer.learning_rate.item():.3g}"
            if trainer.optimizer is not None and "learning_rate" in trainer.optimizer.state
            else ""
        )
        schedule = f" ({trainer.lr_schedule_name})" if lr and trainer.lr_schedule_name else ""
        line = f"epoch {trainer.current_epoch} [{position}] step {trainer.global_step} {_format(_shown(trainer))}{lr}{schedule} {rate:.1f} it/s"
        if self.live:
            self.out.write("\r\033[K" + line)
        else:
            self.out.write(line + "\n")
        self.out.flush()

    def _end_line(self) -> None:
        if self.live:
            self.out.write("\n")
            self.out.flush()

    def on_train_epoch_end(self, trainer: Any, module: Any) -> None:
        if trainer.is_global_zero:
            self._end_line()
            val = {k: v for k, v in trainer.callback_metrics.items() if k.startswith("val_")}
            if val:
                self.out.write(f"epoch {trainer.current_epoch} validation: {_format(val)}\n")
                self.out.flush()
