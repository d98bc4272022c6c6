"""What callbacks and modules read from the Trainer (Lightning's read-only trainer properties):
progress, loggers, callbacks found by type, the live metric views and the data-parallel world.
:class:`~mlx_audio.train.Trainer` inherits them; the state they read is set in its ``__init__``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import distributed
from .callbacks import Callback, ModelCheckpoint

if TYPE_CHECKING:
    from mlx_audio.loggers import Logger

    from ._metrics import MetricStore, Results
    from ._progress import Progress


class TrainerViews:
    """Read-only views over the Trainer's state (Lightning's trainer properties)."""

    progress: Progress
    metrics: MetricStore
    callbacks: list[Callback]
    loggers: list[Logger]
    num_val_batches: list[float]
    _train_results: Results
    _eval_results: Results | None

    def active_results(self) -> Results:
        """The running loop's results: a validation/test pass's, else the train loop's."""
        return self._eval_results if self._eval_results is not None else self._train_results

    @property
    def current_epoch(self) -> int:
        return self.progress.current_epoch

    @property
    def global_step(self) -> int:
        return self.progress.global_step

    @property
    def should_stop(self) -> bool:
        return self.progress.should_stop

    @should_stop.setter
    def should_stop(self, value: bool) -> None:
        self.progress.should_stop = bool(value)

    @property
    def logger(self) -> Logger | None:
        return self.loggers[0] if self.loggers else None

    @property
    def log_dir(self) -> str | None:
        return self.logger.log_dir if self.logger is not None else None

    @property
    def checkpoint_callback(self) -> ModelCheckpoint | None:
        return next((c for c in self.callbacks if isinstance(c, ModelCheckpoint)), None)

    @property
    def callback_metrics(self) -> dict[str, float]:
        """What callbacks monitor: live (NOTE [live metric views]), as in Lightning."""
        return self.metrics.read("callback", self.active_results())

    @property
    def logged_metrics(self) -> dict[str, float]:
        return self.metrics.read("logged", self.active_results())

    @property
    def progress_bar_metrics(self) -> dict[str, float]:
        return self.metrics.read("progress_bar", self.active_results())

    @property
    def world_size(self) -> int:  # data-parallel: distributed.py
        return distributed.world_size()

    @property
    def global_rank(self) -> int:
        return distributed.global_rank()

    @property
    def is_global_zero(self) -> bool:
        return distributed.global_rank() == 0

    @property
    def enable_validation(self) -> bool:
        return sum(self.num_val_batches) > 0
