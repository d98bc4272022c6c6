"""Stochastic Weight Averaging (Lightning 2.6's ``StochasticWeightAveraging``).

From epoch ``swa_epoch_start`` on, the weights are averaged at the start of every epoch (so the
average holds the weights each epoch began with) and the learning rate follows torch's
``SWALR``: from the rate in use when averaging starts to ``swa_lrs`` over ``annealing_epochs``
epochs (``"cos"`` or ``"linear"``), one change per epoch. When training ends after its last
epoch, the model gets the average.

NOTE [SWA's learning rate]: the compiled step reads the optimizer's schedule while it is traced,
so the rate cannot be swapped by replacing the schedule later. Instead ``setup`` wraps the
schedule (or the constant rate) once, before the first step is traced, to read a
``swa_lr`` entry of the optimizer's state: negative means "the schedule's rate", else the rate
itself. The entry is captured state (changed between epochs without a retrace) and is saved
and restored with the optimizer's state, so a resumed run uses the same rates.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import mlx.core as mx
import mlx.nn as nn
from mlx.utils import tree_unflatten

from .._tree import flatten
from .base import Callback
from .weight_averaging import swa_avg_fn

if TYPE_CHECKING:
    from ..module import TrainModule
    from ..trainer import Trainer

_OFF = -1.0  # NOTE [SWA's learning rate]: the schedule's own rate


class StochasticWeightAveraging(Callback):
    """Lightning's ``StochasticWeightAveraging(swa_lrs, swa_epoch_start=0.8,
    annealing_epochs=10, annealing_strategy="cos", avg_fn=None, device=...)``.

    ``swa_epoch_start``: an int (the 1-based epoch averaging starts at) or a fraction of
    ``max_epochs``. ``swa_lrs``: the rate to anneal to (a float, or a list of one: MLX
    optimizers have one parameter group). ``device`` is accepted and ignored (one memory).
    Differences: a model with BatchNorm has its running statistics averaged like the weights
    (Lightning resets them and recomputes them in one extra epoch).
    """

    def __init__(
        self,
        swa_lrs: float | list[float],
        swa_epoch_start: int | float = 0.8,
        annealing_epochs: int = 10,
        annealing_strategy: str = "cos",
        avg_fn: Callable[[mx.array, mx.array, mx.array], mx.array] | None = None,
        device: str | None = "cpu",
    ) -> None:
        message = "swa_epoch_start should be a >0 integer or a float between 0 and 1."
        if isinstance(swa_epoch_start, bool) or not isinstance(swa_epoch_start, (int, float)):
            raise ValueError(message)
        if isinstance(swa_epoch_start, int) and swa_epoch_start < 1:
            raise ValueError(message)
        if isinstance(swa_epoch_start, float) and not 0 <= swa_epoch_start <= 1:
            raise ValueError(message)
        wrong_float = isinstance(swa_lrs, float) and swa_lrs <= 0
        wrong_list = isinstance(swa_lrs, list) and not all(
            isinstance(lr, float) and lr > 0 for lr in swa_lrs
        )
        if not isinstance(swa_lrs, (float, list)) or wrong_float or wrong_list:
            raise ValueError("The `swa_lrs` should a positive float, or a list of positive floats")
        if isinstance(swa_lrs, list) and len(swa_lrs) != 1:
            raise ValueError(
                f"swa_lrs: an MLX optimizer has one parameter group, so one rate; got {swa_lrs}"
            )
        if annealing_strategy not in ("cos", "linear"):
            raise ValueError(
                f"annealing_strategy must be 'cos' or 'linear', instead got {annealing_strategy!r}"
            )
        if not isinstance(annealing_epochs, int) or annealing_epochs < 0:
            raise ValueError(f"annealing_epochs must be an int >= 0, got {annealing_epochs!r}")
        if avg_fn is not None and not callable(avg_fn):
            raise ValueError("The `avg_fn` should be callable.")
        self._swa_epoch_start = swa_epoch_start
        self._swa_lr = float(swa_lrs[0] if isinstance(swa_lrs, list) else swa_lrs)
        self._annealing_epochs = annealing_epochs
        self._annealing_strategy = annealing_strategy
        self._avg_fn = avg_fn or swa_avg_fn
        self._device = device
        self._average: dict[str, mx.array] | None = None
        self.n_averaged = 0
        self._latest_update_epoch = -1
        self._initialized = False
        self._scheduler: dict[str, float] | None = None  # {"step": k, "base_lr": rate at start}
        self._max_epochs = -1
        self._optimizer: Any = None

    @property
    def swa_start(self) -> int:
        assert isinstance(self._swa_epoch_start, int)
        return max(self._swa_epoch_start - 1, 0)  # 0-based

    @property
    def swa_end(self) -> float:
        return math.inf if self._max_epochs == -1 else self._max_epochs - 1

    # -- hooks -----------------------------------------------------------------------------------
    def setup(self, trainer: Trainer, module: TrainModule, stage: str) -> None:
        if stage != "fit":
            return
        self._average = dict(flatten(module.parameters()))

    def on_fit_start(self, trainer: Trainer, module: TrainModule) -> None:
        max_epochs = trainer.max_epochs if trainer.max_epochs is not None else -1
        if isinstance(self._swa_epoch_start, float):
            if max_epochs == -1:
                raise ValueError(
                    "SWA with `swa_epoch_start` as a float is not supported when `max_epochs=-1`. "
                    "Please provide `swa_epoch_start` as an integer."
                )
            self._swa_epoch_start = int(max_epochs * self._swa_epoch_start)
        self._max_epochs = max_epochs
        if any(isinstance(m, nn.BatchNorm) for _, m in module.named_modules()):
            warnings.warn(
                "StochasticWeightAveraging: the BatchNorm running statistics are averaged like "
                "the weights (Lightning recomputes them in one extra epoch)",
                UserWarning,
                stacklevel=2,
            )

    def on_train_epoch_start(self, trainer: Trainer, module: TrainModule) -> None:
        epoch = trainer.current_epoch
        within = self.swa_start <= epoch <= self.swa_end
        if not self._initialized and within:
            self._initialized = True
            if self._scheduler is None:
                if epoch != self.swa_start:
                    warnings.warn(
                        "SWA is initializing after swa_start without any checkpoint data. "
                        "This may be caused by loading a checkpoint from an older version of "
                        "PyTorch Lightning.",
                        UserWarning,
                        stacklevel=2,
                    )
                base = float(self._optimizer.learning_rate.item())  # once: the rate in use
                self._scheduler = {"step": 0, "base_lr": base}
            self._set_rate()
        if within and epoch > self._latest_update_epoch:
            self._update(module)
            self._latest_update_epoch = epoch

    def on_train_epoch_end(self, trainer: Trainer, module: TrainModule) -> None:
        if self._scheduler is not None:  # SWALR steps once per epoch, at its end
            self._scheduler["step"] += 1
            self._set_rate()

    def on_train_end(self, trainer: Trainer, module: TrainModule) -> None:
        if self._average is None:
            return
        if trainer.current_epoch - 1 == self.swa_end or self._max_epochs == -1:
            module.update(tree_unflatten(list(self._average.items())))

    # -- state -------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "n_averaged": self.n_averaged,
            "latest_update_epoch": self._latest_update_epoch,
            "scheduler_state": None if self._scheduler is None else dict(self._scheduler),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.n_averaged = int(state["n_averaged"])
        self._latest_update_epoch = int(state["latest_update_epoch"])
        scheduler = state["scheduler_state"]
        self._scheduler = None if scheduler is None else dict(scheduler)

    def on_save_checkpoint(
        self, trainer: Trainer, module: TrainModule, checkpoint: dict[str, Any]
    ) -> None:
        if self._average is not None:  # average_model.safetensors (checkpoint.py)
            checkpoint["average_model_state"] = dict(self._average)

    def on_load_checkpoint(
        self, trainer: Trainer, module: TrainModule, checkpoint: dict[str, Any]
    ) -> None:
        saved = checkpoint.get("average_model_state")
        if self._average is not None and saved is not None:
            self._average = {k: saved.get(k, v) for k, v in self._average.items()}

    # -- the averaging and the rate ------------------------------------------------------------
    def _update(self, module: TrainModule) -> None:
        assert self._average is not None
        current = dict(flatten(module.parameters()))
        if self.n_averaged == 0:
            self._average = {k: current[k] for k in self._average}
        else:
            n = mx.array(self.n_averaged)
            self._average = {
                k: self._avg_fn(a, current[k], n).astype(a.dtype)
                if mx.issubdtype(a.dtype, mx.floating)
                else current[k]
                for k, a in self._average.items()
            }
        self.n_averaged += 1
        mx.eval(list(self._average.values()))

    def install_rate(self, trainer: Trainer) -> None:
        """NOTE [SWA's learning rate]. Called by the Trainer once the optimizer is configured,
        before its state is restored from a checkpoint and before the step is compiled (``setup``
        runs before ``configure_optimizers``, as in Lightning)."""
        optimizer = trainer.optimizer
        assert optimizer is not None, "called after configure_optimizers"
        self._optimizer = optimizer
        if "swa_lr" in optimizer.state:  # a second fit with the same optimizer
            optimizer.state["swa_lr"] = mx.array(_OFF)
            return
        schedule = optimizer._schedulers.get("learning_rate")
        constant = float(optimizer.state["learning_rate"].item())  # a constant of the trace

        def rate(step: mx.array) -> mx.array:
            own = schedule(step) if schedule is not None else mx.array(constant, mx.float32)
            swa = optimizer.state["swa_lr"]
            return mx.where(swa < 0, own, swa.astype(own.dtype))

        optimizer.state["swa_lr"] = mx.array(_OFF)
        optimizer._schedulers["learning_rate"] = rate

    def _set_rate(self) -> None:
        """torch's ``SWALR`` after ``step`` epoch ends: ``swa * a + base * (1 - a)``, ``a`` the
        annealing function of ``min(1, step / annealing_epochs)``."""
        assert self._scheduler is not None
        step = int(self._scheduler["step"])
        if self._annealing_epochs == 0:
            step = max(1, step)
        t = max(0.0, min(1.0, step / max(1, self._annealing_epochs)))
        alpha = (1 - math.cos(math.pi * t)) / 2 if self._annealing_strategy == "cos" else t
        rate = self._swa_lr * alpha + self._scheduler["base_lr"] * (1 - alpha)
        self._optimizer.state["swa_lr"] = mx.array(rate, dtype=mx.float32)
