"""RichProgressBar: the same bars and values as :class:`TQDMProgressBar`, drawn with ``rich``
(Lightning's ``RichProgressBar``; ``pip install "mlx-audio-train[rich]"``)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from .progress_bar import TQDMProgressBar

if TYPE_CHECKING:
    from ..module import TrainModule
    from ..trainer import Trainer


class _Task:
    """One rich task with the tqdm methods the progress bar calls."""

    def __init__(self, owner: RichProgressBar, total: float, desc: str, leave: bool) -> None:
        self.owner = owner
        self.leave = leave
        self.n = 0
        self.task = owner.progress.add_task(
            desc, total=total if math.isfinite(total) else None, metrics=""
        )

    def reset(self, total: float | None = None) -> None:
        self.n = 0
        self.owner.progress.reset(self.task, total=total, completed=0)

    def set_description(self, desc: str) -> None:
        self.owner.progress.update(self.task, description=desc)

    def set_postfix_str(self, text: str, refresh: bool = True) -> None:
        speed = self.owner.progress.tasks[self.owner.progress.task_ids.index(self.task)].speed
        rate = f"{speed:.2f} it/s, " if speed else ""
        self.owner.progress.update(self.task, metrics=rate + text, refresh=refresh)

    def update(self, n: int = 1) -> None:
        self.n += n
        self.owner.progress.update(self.task, advance=n)

    def close(self) -> None:
        if not self.leave:
            self.owner.progress.remove_task(self.task)
        self.owner.task_closed()


class RichProgressBar(TQDMProgressBar):
    """Lightning's ``RichProgressBar``: "Epoch N" with a bar, completed/total batches, elapsed
    and remaining time, it/s, and the metrics (samples/s, loss, lr, ...) beside it; validation,
    sanity-check, test and predict bars below. Everything else -- ``refresh_rate``, ``leave``,
    plain lines when stdout is not a terminal, no device sync per batch, the environment
    variable to turn it off -- is :class:`TQDMProgressBar`'s. Needs ``rich``
    (``pip install "mlx-audio-train[rich]"``); a clear ImportError says so when it is missing.
    """

    def __init__(
        self,
        refresh_rate: int = 1,
        leave: bool = False,
        stream: Any = None,
        metrics_interval: float = 1.0,
        plain_interval: float = 15.0,
    ) -> None:
        try:
            import rich  # noqa: F401
        except ImportError:
            raise ImportError(
                'RichProgressBar needs rich: pip install "mlx-audio-train[rich]" (or use the default TQDMProgressBar)'
            ) from None
        super().__init__(refresh_rate, leave, stream, metrics_interval, plain_interval)
        self.progress: Any = None

    def _bar(self, name: str, total: float, desc: str, leave: bool = True) -> Any:
        if self.progress is None:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )
            from rich.table import Column

            console = Console(
                file=self.out, force_jupyter=None if self.mode == "notebook" else False
            )
            self.progress = Progress(
                TextColumn("[progress.description]{task.description}"),
                BarColumn(bar_width=24),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TextColumn("•"),
                TimeRemainingColumn(),
                # the metrics take the width that is left (cut with an ellipsis), never the bar's
                TextColumn(
                    "{task.fields[metrics]}",
                    table_column=Column(ratio=1, no_wrap=True, overflow="ellipsis"),
                ),
                console=console,
                auto_refresh=False,
                expand=True,
            )
            self.progress.start()
        self._close(name)
        bar = _Task(self, total, desc, leave)
        self._bars[name] = bar
        return bar

    def task_closed(self) -> None:
        """Stop the live display when no bar is left (the terminal is the user's again)."""
        if self.progress is not None:
            self.progress.refresh()
            if not self._bars:
                self.progress.stop()
                self.progress = None

    def _write(self, line: str) -> None:
        if self.progress is not None:
            self.progress.console.print(line, markup=False, highlight=False)
        else:
            super()._write(line)

    def on_train_batch_end(
        self, trainer: Trainer, module: TrainModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        super().on_train_batch_end(trainer, module, outputs, batch, batch_idx)
        if self.progress is not None and self._done % max(self.refresh_rate, 1) == 0:
            self.progress.refresh()
