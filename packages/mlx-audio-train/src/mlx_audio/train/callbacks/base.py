"""The callback protocol (Lightning's): no-op hooks the Trainer calls with (trainer, module, ...)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlx.optimizers import Optimizer

    from ..module import TrainModule
    from ..trainer import Trainer


class Callback:
    """Override the hooks you need. Stateful callbacks implement ``state_dict`` /
    ``load_state_dict``; their state is saved in checkpoints under ``state_key``."""

    @property
    def state_key(self) -> str:
        return type(self).__qualname__

    def setup(self, trainer: Trainer, module: TrainModule, stage: str) -> None: ...
    def teardown(self, trainer: Trainer, module: TrainModule, stage: str) -> None: ...
    def on_fit_start(self, trainer: Trainer, module: TrainModule) -> None: ...
    def on_fit_end(self, trainer: Trainer, module: TrainModule) -> None: ...
    def on_sanity_check_start(self, trainer: Trainer, module: TrainModule) -> None: ...
    def on_sanity_check_end(self, trainer: Trainer, module: TrainModule) -> None: ...
    def on_train_start(self, trainer: Trainer, module: TrainModule) -> None: ...
    def on_train_end(self, trainer: Trainer, module: TrainModule) -> None: ...
    def on_train_epoch_start(self, trainer: Trainer, module: TrainModule) -> None: ...
    def on_train_epoch_end(self, trainer: Trainer, module: TrainModule) -> None: ...
    def on_train_batch_start(
        self, trainer: Trainer, module: TrainModule, batch: Any, batch_idx: int
    ) -> None: ...
    def on_train_batch_end(
        self, trainer: Trainer, module: TrainModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None: ...
    def on_before_optimizer_step(
        self, trainer: Trainer, module: TrainModule, optimizer: Optimizer
    ) -> None: ...
    def on_validation_start(self, trainer: Trainer, module: TrainModule) -> None: ...
    def on_validation_end(self, trainer: Trainer, module: TrainModule) -> None: ...
    def on_validation_epoch_start(self, trainer: Trainer, module: TrainModule) -> None: ...
    def on_validation_epoch_end(self, trainer: Trainer, module: TrainModule) -> None: ...
    def on_validation_batch_start(
        self,
        trainer: Trainer,
        module: TrainModule,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None: ...
    def on_validation_batch_end(
        self,
        trainer: Trainer,
        module: TrainModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None: ...
    def on_test_start(self, trainer: Trainer, module: TrainModule) -> None: ...
    def on_test_end(self, trainer: Trainer, module: TrainModule) -> None: ...
    def on_test_epoch_start(self, trainer: Trainer, module: TrainModule) -> None: ...
    def on_test_epoch_end(self, trainer: Trainer, module: TrainModule) -> None: ...
    def on_test_batch_start(
        self,
        trainer: Trainer,
        module: TrainModule,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None: ...
    def on_test_batch_end(
        self,
        trainer: Trainer,
        module: TrainModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None: ...
    def on_predict_start(self, trainer: Trainer, module: TrainModule) -> None: ...
    def on_predict_epoch_start(self, trainer: Trainer, module: TrainModule) -> None: ...
    def on_predict_epoch_end(self, trainer: Trainer, module: TrainModule) -> None: ...
    def on_predict_batch_start(
        self,
        trainer: Trainer,
        module: TrainModule,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None: ...
    def on_predict_batch_end(
        self,
        trainer: Trainer,
        module: TrainModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None: ...
    def on_predict_end(self, trainer: Trainer, module: TrainModule) -> None: ...
    def on_save_checkpoint(
        self, trainer: Trainer, module: TrainModule, checkpoint: dict[str, Any]
    ) -> None: ...
    def on_load_checkpoint(
        self, trainer: Trainer, module: TrainModule, checkpoint: dict[str, Any]
    ) -> None: ...
    def on_exception(
        self, trainer: Trainer, module: TrainModule, exception: BaseException
    ) -> None: ...

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


class MonitorCallback(Callback):
    """Base of callbacks that act on a monitored metric (ModelCheckpoint, EarlyStopping).

    They run after the module's ``on_train_epoch_end`` (so they see what it logged) and share
    reading the monitored value and comparing two values of it (Keras 3's ``MonitorCallback``):
    ``mode`` "min" or "max", improvement by more than ``min_delta``. Each callback keeps its own
    rules on top (Lightning's): what a missing metric does, thresholds, top-k, ties.

    NaN: every comparison with NaN is False, so a NaN is never better nor an improvement, and
    nothing is better than a NaN reference. ``worst`` (+inf for "min", -inf for "max") is the
    reference before any value was seen; ModelCheckpoint also ranks a saved NaN there.
    """

    monitor: str | None = None
    mode: str = "min"
    min_delta: float = 0.0

    @property
    def worst(self) -> float:
        return math.inf if self.mode == "min" else -math.inf

    def monitored_value(self, metrics: Mapping[str, Any]) -> Any:
        """The value of ``monitor`` in ``metrics`` as logged (None when it is not there)."""
        if self.monitor is None or self.monitor not in metrics:
            return None
        return metrics[self.monitor]

    def is_better(self, current: float, reference: float) -> bool:
        """Strictly better under ``mode`` (Lightning's ``monitor_op``: ``<`` or ``>``)."""
        return current < reference if self.mode == "min" else current > reference

    def is_improvement(self, current: float, reference: float) -> bool:
        """Better than ``reference`` by more than ``min_delta``."""
        if self.mode == "min":
            return current + self.min_delta < reference
        return current - self.min_delta > reference


def check_number(
    owner: str,
    name: str,
    value: Any,
    minimum: float | None = None,
    allow_none: bool = False,
    integer: bool = False,
    fraction: bool = False,
) -> None:
    """ValueError naming ``owner: name`` when a numeric argument is wrong; ``fraction`` also
    admits floats in (0, 1] (Lightning's ``limit_*_batches`` style)."""
    if value is None and allow_none:
        return
    if fraction and isinstance(value, float):
        if 0.0 < value <= 1.0:
            return
        raise ValueError(f"{owner}: {name} as a float must be a fraction in (0, 1], got {value!r}")
    kinds = (int,) if integer else (int, float)
    if (
        isinstance(value, bool)
        or not isinstance(value, kinds)
        or (minimum is not None and value < minimum)
    ):
        what = "an int" if integer else "a number"
        bound = f" >= {minimum}" if minimum is not None else ""
        extra = (" or a fraction in (0, 1]" if fraction else "") + (
            " or None" if allow_none else ""
        )
        raise ValueError(f"{owner}: {name} must be {what}{bound}{extra}, got {value!r}")


def check_mode(owner: str, mode: str) -> None:
    if mode not in ("min", "max"):
        raise ValueError(f"{owner}: mode must be 'min' or 'max', got {mode!r}")
