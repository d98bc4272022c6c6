"""Weight averaging (Lightning 2.6's ``WeightAveraging`` and ``EMAWeightAveraging``).

An averaged copy of the model's weights is updated after optimizer steps (and, if asked, after
epochs), swapped in for validation, saved in checkpoints and left in the model when ``fit`` ends.

NOTE [averaged weights in checkpoints]: as in Lightning, a checkpoint written during ``fit``
holds the *averaged* weights as its model weights (``model.safetensors``: what
``load_checkpoint``, ``test`` and ``predict`` read) and the raw weights beside them
(``current_model.safetensors``, Lightning's ``current_model_state``); ``n_averaged`` (Lightning's
``averaging_state``) is in the JSON. A resume puts the raw weights back in the model and the
averaged ones in the callback, so a resumed run averages on bit-identically. The hook in
``checkpoint.capture`` is Lightning's: ``on_save_checkpoint`` sees the weights under
``checkpoint["state_dict"]`` and may replace them and add ``checkpoint["current_model_state"]``.

NOTE [averaging outside the step]: the update is one compiled function over the flat list of
weights, called from ``on_train_batch_end`` after the compiled train step: the decision
(``should_update``) is on the host from counters it already has, the arithmetic is queued lazily
and evaluated asynchronously, so no step waits on the device for it.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import mlx.core as mx
from mlx.utils import tree_unflatten

from .._status import rank_zero_info
from .._tree import flatten
from .base import Callback

if TYPE_CHECKING:
    from ..module import TrainModule
    from ..trainer import Trainer

AvgFn = Callable[[mx.array, mx.array, mx.array], mx.array]


def swa_avg_fn(averaged: mx.array, current: mx.array, num_averaged: mx.array) -> mx.array:
    """The equal-weight running mean (torch's SWA default): ``lerp(averaged, current, 1/(n+1))``."""
    return averaged + (current - averaged) * (1.0 / (num_averaged + 1)).astype(averaged.dtype)


def ema_avg_fn(decay: float = 0.999) -> AvgFn:
    """torch's ``get_ema_avg_fn``: ``decay * averaged + (1 - decay) * current``."""
    if not 0.0 <= decay <= 1.0:
        raise ValueError(
            f"Invalid decay value {decay} provided. Please provide a value in [0,1] range."
        )

    def ema(averaged: mx.array, current: mx.array, num_averaged: mx.array) -> mx.array:
        return decay * averaged + (1 - decay) * current

    return ema


class WeightAveraging(Callback):
    """Keeps an average of the model's weights (Lightning's ``WeightAveraging``).

    ``avg_fn(averaged, current, num_averaged) -> new`` combines one weight (default: the equal
    running mean, SWA); the first update copies the weights. ``use_buffers`` (default True)
    averages the non-trainable arrays too (e.g. BatchNorm's running statistics); with False they
    are copied from the model at each update. Override :meth:`should_update` to choose when to
    update (default: after every optimizer step). ``device`` is accepted for Lightning's signature
    and ignored (MLX has one memory).
    """

    def __init__(
        self,
        device: str | None = None,
        use_buffers: bool = True,
        avg_fn: AvgFn | None = None,
    ) -> None:
        if avg_fn is not None and not callable(avg_fn):
            raise ValueError(f"{type(self).__name__}: avg_fn must be callable, got {avg_fn!r}")
        self._device = device
        self._use_buffers = bool(use_buffers)
        self._avg_fn: AvgFn = avg_fn or swa_avg_fn
        self._average: dict[str, mx.array] | None = None  # flat name -> averaged array
        self._averaged_names: frozenset[str] = frozenset()
        self.n_averaged = 0
        self._latest_update_step = 0
        self._latest_update_epoch = -1
        self._compiled: Callable[..., list[mx.array]] | None = None

    # -- Lightning's API -------------------------------------------------------------------------
    def should_update(self, step_idx: int | None = None, epoch_idx: int | None = None) -> bool:
        """Whether to update after optimizer step ``step_idx`` or epoch ``epoch_idx`` (0-based;
        one of them is given). Default: after every step."""
        return step_idx is not None

    @property
    def average_weights(self) -> dict[str, mx.array] | None:
        """The averaged weights (flat names, as ``model.safetensors``), None outside ``fit``."""
        return None if self._average is None else dict(self._average)

    def setup(self, trainer: Trainer, module: TrainModule, stage: str) -> None:
        if stage != "fit":
            return
        self._average = dict(flatten(module.parameters()))
        trainable = {k for k, _ in flatten(module.trainable_parameters())}
        self._averaged_names = frozenset(
            k
            for k, v in self._average.items()
            if mx.issubdtype(v.dtype, mx.floating) and (self._use_buffers or k in trainable)
        )
        self.n_averaged = 0
        self._compiled = None

    def on_train_batch_end(
        self, trainer: Trainer, module: TrainModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        step_idx = trainer.global_step - 1  # the optimizer step just taken, 0-based
        if trainer.global_step > self._latest_update_step and self.should_update(step_idx=step_idx):
            self.update_parameters(module)
            self._latest_update_step = trainer.global_step

    def on_train_epoch_end(self, trainer: Trainer, module: TrainModule) -> None:
        epoch = trainer.current_epoch
        if epoch > self._latest_update_epoch and self.should_update(epoch_idx=epoch):
            self.update_parameters(module)
            self._latest_update_epoch = epoch

    def on_train_end(self, trainer: Trainer, module: TrainModule) -> None:
        if self._average is not None:
            module.update(tree_unflatten(list(self._average.items())))

    def on_validation_epoch_start(self, trainer: Trainer, module: TrainModule) -> None:
        if self._average is not None:
            self._swap(module)

    def on_validation_epoch_end(self, trainer: Trainer, module: TrainModule) -> None:
        if self._average is not None:
            self._swap(module)

    def state_dict(self) -> dict[str, Any]:
        return {"latest_update_step": self._latest_update_step}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        step = state["latest_update_step"]
        if not isinstance(step, int) or isinstance(step, bool):
            raise ValueError(f"latest_update_step must be an int, got {step!r}")
        self._latest_update_step = step

    def on_save_checkpoint(
        self, trainer: Trainer, module: TrainModule, checkpoint: dict[str, Any]
    ) -> None:
        if self._average is None:
            rank_zero_info(
                "You're using the WeightAveraging callback, but saving a checkpoint outside the "
                "'fit' stage. The state of the WeightAveraging callback won't be saved in the "
                "checkpoint. If training has finished, the average model parameters will be saved "
                "to the state_dict in the checkpoint."
            )
            return
        checkpoint["current_model_state"] = checkpoint["state_dict"]
        checkpoint["state_dict"] = dict(self._average)
        checkpoint["averaging_state"] = {"n_averaged": self.n_averaged}

    def on_load_checkpoint(
        self, trainer: Trainer, module: TrainModule, checkpoint: dict[str, Any]
    ) -> None:
        if self._average is None:
            warnings.warn(
                "You're using the WeightAveraging callback, but loading a checkpoint outside the "
                "'fit' stage. The WeightAveraging state cannot be restored. If you're using the "
                "checkpoint for prediction or testing, you can ignore this warning. To disable the "
                "warning, remove the WeightAveraging callback.",
                UserWarning,
                stacklevel=2,
            )
        elif "current_model_state" in checkpoint and "averaging_state" in checkpoint:
            rank_zero_info(
                "Found current_model_state in the checkpoint. This will be used to initialize the model."
            )
            n = checkpoint["averaging_state"].get("n_averaged")
            if not isinstance(n, int) or isinstance(n, bool) or n < 0:
                raise ValueError(f"averaging_state.n_averaged must be an int >= 0, got {n!r}")
            self._average = {k: checkpoint["state_dict"][k] for k in self._average}
            self.n_averaged = n
            module.update(tree_unflatten(list(checkpoint["current_model_state"].items())))
        else:
            warnings.warn(
                "The checkpoint was not created with WeightAveraging. Both the current and the "
                "average model will be initialized with state_dict.",
                UserWarning,
                stacklevel=2,
            )
            self._average = {
                k: checkpoint["state_dict"].get(k, v) for k, v in self._average.items()
            }

    # -- the averaging ---------------------------------------------------------------------------
    def update_parameters(self, module: TrainModule) -> None:
        """Fold the module's current weights into the average (torch's
        ``AveragedModel.update_parameters``): the first update copies them."""
        assert self._average is not None, "update_parameters runs inside fit"
        current = dict(flatten(module.parameters()))
        names = [k for k in self._average if k in self._averaged_names]
        if self.n_averaged == 0:
            new = {k: current[k] for k in self._average}
        else:
            if self._compiled is None:
                self._compiled = mx.compile(self._average_lists)
            averaged = self._compiled(
                [self._average[k] for k in names],
                [current[k] for k in names],
                mx.array(self.n_averaged),
            )
            new = {k: current[k] for k in self._average}  # the arrays not averaged: copied
            new.update(zip(names, averaged))
        self._average = new
        self.n_averaged += 1
        mx.async_eval(list(new.values()))  # NOTE [averaging outside the step]

    def _average_lists(
        self, averaged: list[mx.array], current: list[mx.array], n: mx.array
    ) -> list[mx.array]:
        return [self._avg_fn(a, c, n).astype(a.dtype) for a, c in zip(averaged, current)]

    def _swap(self, module: TrainModule) -> None:
        assert self._average is not None
        current = dict(flatten(module.parameters()))
        module.update(tree_unflatten(list(self._average.items())))
        self._average = {k: current[k] for k in self._average}


class EMAWeightAveraging(WeightAveraging):
    """Exponential moving average of the weights (Lightning's ``EMAWeightAveraging``):
    ``averaged = decay * averaged + (1 - decay) * current`` after every ``update_every_n_steps``-th
    optimizer step from ``update_starting_at_step`` on, or after every epoch from
    ``update_starting_at_epoch`` on when that is given."""

    def __init__(
        self,
        device: str | None = None,
        use_buffers: bool = True,
        decay: float = 0.999,
        update_every_n_steps: int = 1,
        update_starting_at_step: int | None = None,
        update_starting_at_epoch: int | None = None,
    ) -> None:
        super().__init__(device=device, use_buffers=use_buffers, avg_fn=ema_avg_fn(decay))
        self.decay = decay
        self.update_every_n_steps = update_every_n_steps
        self.update_starting_at_step = update_starting_at_step
        self.update_starting_at_epoch = update_starting_at_epoch

    def should_update(self, step_idx: int | None = None, epoch_idx: int | None = None) -> bool:
        if step_idx is not None:
            starts = (
                self.update_starting_at_step is None or step_idx >= self.update_starting_at_step
            )
            every = self.update_every_n_steps > 0 and step_idx % self.update_every_n_steps == 0
            if starts and every:
                return True
        if epoch_idx is not None:
            start = self.update_starting_at_epoch
            if start is not None and epoch_idx >= start:
                return True
        return False
