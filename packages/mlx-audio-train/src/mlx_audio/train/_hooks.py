"""CallbackList: every hook fans out to the callbacks and the module in Lightning's order.

One method per hook (greppable); callbacks run before the module, except at an epoch's end,
where the monitors (ModelCheckpoint, EarlyStopping) run after the module so they can see what
``on_train_epoch_end`` logged. ``ModelCheckpoint`` callbacks always run last, as in Lightning.
While a hook runs, ``trainer.current_hook`` names it (``self.log`` defaults depend on it).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any, NamedTuple

from ._lifecycle import configure_optimizer
from ._status import warning
from .callbacks.base import Callback, MonitorCallback
from .callbacks.finetuning import BaseFinetuning
from .callbacks.model_checkpoint import ModelCheckpoint
from .callbacks.model_summary import ModelSummary
from .callbacks.progress_bar import ProgressBar
from .callbacks.stochastic_weight_avg import StochasticWeightAveraging
from .callbacks.timer import Timer
from .module import TrainModule
from .profiler import PassThroughProfiler, profiled

if TYPE_CHECKING:
    from mlx.optimizers import Optimizer

    from .trainer import Trainer


def with_defaults(
    callbacks: list[Callback] | Callback | None,
    progress_bar: bool | None,
    checkpointing: bool | None,
    summary: bool | None = None,
    max_time: str | timedelta | dict[str, int] | None = None,
) -> list[Callback]:
    """The user's callbacks plus Lightning's defaults: a ProgressBar (unless disabled; then a
    given one is dropped too), a ModelSummary (unless one is given or ``summary`` is False; None
    is True, as Lightning's ``enable_model_summary``), a ModelCheckpoint (unless one is given
    or checkpointing is off) and, for ``max_time``, a ``Timer(max_time, interval="step")`` unless
    one is given (Lightning's rule)."""
    progress_bar = progress_bar is None or bool(progress_bar)  # None: Lightning's default, True
    checkpointing = checkpointing is None or bool(checkpointing)
    given = [callbacks] if isinstance(callbacks, Callback) else list(callbacks or [])
    for callback in given:
        if not isinstance(callback, Callback):
            raise ValueError(
                f"Trainer: callbacks must be Callback instances, got {type(callback).__name__}"
            )
    if not progress_bar:
        given = [c for c in given if not isinstance(c, ProgressBar)]
    elif not any(isinstance(c, ProgressBar) for c in given):
        given.append(ProgressBar())
    if summary is not False and not any(isinstance(c, ModelSummary) for c in given):
        given.append(ModelSummary())
    if checkpointing is False and any(isinstance(c, ModelCheckpoint) for c in given):
        raise ValueError(
            "Trainer was configured with `enable_checkpointing=False` but found `ModelCheckpoint` "
            "in callbacks list."
        )
    if checkpointing and not any(isinstance(c, ModelCheckpoint) for c in given):
        given.append(ModelCheckpoint())
    if max_time is not None and not any(isinstance(c, Timer) for c in given):
        given.append(Timer(duration=max_time, interval="step"))
    return given


def _idx(dataloader_idx: int | None) -> tuple[int, ...]:
    """Lightning passes ``dataloader_idx`` to the batch hooks only with several loaders."""
    return () if dataloader_idx is None else (dataloader_idx,)


class EvalHooks(NamedTuple):
    """One evaluation pass's hooks (CallbackList.eval_hooks): validation's or test's."""

    model_eval: Callable[[], None]
    model_train: Callable[[], None]
    start: Callable[[], None]
    epoch_start: Callable[[], None]
    batch_start: Callable[[Any, int, int | None], None]
    batch_end: Callable[[Any, Any, int, int | None], None]
    epoch_end: Callable[[], None]
    end: Callable[[], None]


def _action(callback: Callback, hook: str) -> Callable[[], str]:
    """A callback hook's profiler name (Lightning's), made only when a profiler records it."""
    return lambda: f"[Callback]{callback.state_key}.{hook}"


def _overrides(owner: Any, hook: str, base: type) -> bool:
    """Whether ``owner`` (a callback or the module) has its own ``hook``: a method of its class
    other than ``base``'s no-op, or one set on the instance."""
    return hook in getattr(owner, "__dict__", ()) or getattr(
        type(owner), hook, None
    ) is not getattr(base, hook, None)


class CallbackList:
    def __init__(self, trainer: Trainer, callbacks: list[Callback]) -> None:
        self.trainer = trainer
        self.callbacks = [c for c in callbacks if not isinstance(c, ModelCheckpoint)] + [
            c for c in callbacks if isinstance(c, ModelCheckpoint)
        ]

    # -- fan-out -------------------------------------------------------------------------------
    def _callbacks(
        self,
        hook: str,
        *args: Any,
        monitors: bool | None = None,
        only: list[Callback] | None = None,
        **kwargs: Any,
    ) -> None:
        trainer = self.trainer
        outer = trainer.current_hook  # a hook may run inside another (a save in a callback)
        try:
            for callback in self.callbacks if only is None else only:
                if monitors is not None and isinstance(callback, MonitorCallback) != monitors:
                    continue
                trainer.current_hook = hook
                with profiled(trainer, _action(callback, hook)):
                    getattr(callback, hook)(trainer, trainer.module, *args, **kwargs)
        finally:
            trainer.current_hook = outer

    def _module(self, hook: str, *args: Any, **kwargs: Any) -> Any:
        module = self.trainer.module
        outer = self.trainer.current_hook
        self.trainer.current_hook = hook
        try:
            method = getattr(module, hook, None)  # None: switched off (Lightning's tests do)
            if method is None:
                return None
            with profiled(self.trainer, lambda: f"[LightningModule]{type(module).__name__}.{hook}"):
                return method(*args, **kwargs)
        finally:
            self.trainer.current_hook = outer

    def _both(self, hook: str, *args: Any, **kwargs: Any) -> Any:
        self._callbacks(hook, *args, **kwargs)
        return self._module(hook, *args, **kwargs)

    # -- one method per hook ---------------------------------------------------------------------
    def call_data_hook(self, owner: Any, hook: str, *args: Any, **kwargs: Any) -> Any:
        """A datamodule's hook, or a module's data hook (``prepare_data``, ``*_dataloader``)."""
        outer = self.trainer.current_hook
        self.trainer.current_hook = hook
        try:
            return getattr(owner, hook)(*args, **kwargs)
        finally:
            self.trainer.current_hook = outer

    def setup(self, stage: str) -> None:
        """``stage``: ``"fit"``, ``"validate"``, ``"test"`` or ``"predict"``, passed by keyword
        (as Lightning calls it); the datamodule's ``setup`` first, then the callbacks' and the
        module's (Lightning)."""
        if self.trainer.datamodule is not None:
            self.call_data_hook(self.trainer.datamodule, "setup", stage=stage)  # as Lightning
        self._both("setup", stage=stage)

    def teardown(self, stage: str) -> None:
        if self.trainer.datamodule is not None:
            self.call_data_hook(self.trainer.datamodule, "teardown", stage=stage)
        self._both("teardown", stage=stage)

    def datamodule_state_dict(self) -> dict[str, Any]:
        assert self.trainer.datamodule is not None
        state: dict[str, Any] = self.call_data_hook(self.trainer.datamodule, "state_dict")
        return state

    def datamodule_load_state_dict(self, state: dict[str, Any]) -> None:
        assert self.trainer.datamodule is not None
        self.call_data_hook(self.trainer.datamodule, "load_state_dict", state)

    def configure_optimizers(self) -> tuple[Optimizer, str | None]:
        """The module's optimizer and schedule name, checked (``_lifecycle.configure_optimizer``)."""
        outer = self.trainer.current_hook
        self.trainer.current_hook = "configure_optimizers"  # self.log refuses it (Lightning)
        try:
            assert self.trainer.module is not None
            return configure_optimizer(self.trainer.module)
        finally:
            self.trainer.current_hook = outer

    def optimizer_configured(self) -> None:
        """Not a Lightning hook: the callbacks that change the optimizer itself do it here, once
        it is configured and before its state is restored or the step is compiled
        (``StochasticWeightAveraging``'s learning rate, ``BaseFinetuning``'s groups)."""
        for callback in self.callbacks:
            if isinstance(callback, (StochasticWeightAveraging, BaseFinetuning)):
                callback.install_rate(self.trainer)

    def on_fit_start(self) -> None:
        self._both("on_fit_start")

    def on_fit_end(self) -> None:
        self._both("on_fit_end")

    def on_sanity_check_start(self) -> None:
        self._callbacks("on_sanity_check_start")

    def on_sanity_check_end(self) -> None:
        self._callbacks("on_sanity_check_end")

    def on_train_start(self) -> None:
        self._both("on_train_start")

    def on_train_end(self) -> None:
        self._both("on_train_end")

    def on_train_epoch_start(self) -> None:
        self._both("on_train_epoch_start")

    def on_train_epoch_end(self) -> None:
        self._callbacks("on_train_epoch_end", monitors=False)
        self._module("on_train_epoch_end")
        self._callbacks("on_train_epoch_end", monitors=True)

    def _per_batch(self, hook: str, *args: Any) -> Any:
        """NOTE [hooks nobody overrides]: a per-batch hook (``on_train_batch_start/end``,
        ``on_before_optimizer_step``) runs only on the callbacks and the module that override
        it: the base classes' are no-ops, and calling each of them per batch is most of the
        fit loop's host time on a small model. Under a profiler every hook is called (its
        report names each, as Lightning's)."""
        trainer = self.trainer
        if not isinstance(getattr(trainer, "profiler", None), PassThroughProfiler):
            return self._both(hook, *args)
        callbacks = [c for c in self.callbacks if _overrides(c, hook, Callback)]
        if callbacks:
            self._callbacks(hook, *args, only=callbacks)
        module = trainer.module
        if module is None or not _overrides(module, hook, TrainModule):
            return None
        return self._module(hook, *args)

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> Any:
        """The module's return value: ``-1`` skips the rest of the epoch (Lightning)."""
        return self._per_batch("on_train_batch_start", batch, batch_idx)

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        self._per_batch("on_train_batch_end", outputs, batch, batch_idx)

    def on_before_optimizer_step(self, optimizer: Optimizer) -> None:
        self._per_batch("on_before_optimizer_step", optimizer)

    def on_validation_model_eval(self) -> None:
        """The module's alone, as all ``on_*_model_*`` hooks (Lightning's ModelHooks)."""
        self._module("on_validation_model_eval")

    def on_validation_model_train(self) -> None:
        self._module("on_validation_model_train")

    def on_test_model_eval(self) -> None:
        self._module("on_test_model_eval")

    def on_test_model_train(self) -> None:
        self._module("on_test_model_train")

    def on_predict_model_eval(self) -> None:
        self._module("on_predict_model_eval")

    def on_validation_start(self) -> None:
        self._both("on_validation_start")

    def on_validation_epoch_start(self) -> None:
        self._both("on_validation_epoch_start")

    def on_validation_batch_start(
        self, batch: Any, batch_idx: int, dataloader_idx: int | None = None
    ) -> None:
        self._both("on_validation_batch_start", batch, batch_idx, *_idx(dataloader_idx))

    def on_validation_batch_end(
        self, outputs: Any, batch: Any, batch_idx: int, dataloader_idx: int | None = None
    ) -> None:
        self._both("on_validation_batch_end", outputs, batch, batch_idx, *_idx(dataloader_idx))

    def on_validation_epoch_end(self) -> None:
        self._both("on_validation_epoch_end")

    def on_validation_end(self) -> None:
        self._both("on_validation_end")

    def on_test_start(self) -> None:
        self._both("on_test_start")

    def on_test_epoch_start(self) -> None:
        self._both("on_test_epoch_start")

    def on_test_batch_start(
        self, batch: Any, batch_idx: int, dataloader_idx: int | None = None
    ) -> None:
        self._both("on_test_batch_start", batch, batch_idx, *_idx(dataloader_idx))

    def on_test_batch_end(
        self, outputs: Any, batch: Any, batch_idx: int, dataloader_idx: int | None = None
    ) -> None:
        self._both("on_test_batch_end", outputs, batch, batch_idx, *_idx(dataloader_idx))

    def on_test_epoch_end(self) -> None:
        self._both("on_test_epoch_end")

    def on_test_end(self) -> None:
        self._both("on_test_end")

    def eval_hooks(self, stage: str) -> EvalHooks:
        """The six hooks of a validation (``stage="validation"``) or test pass, in call order."""
        if stage == "validation":
            return EvalHooks(
                self.on_validation_model_eval,
                self.on_validation_model_train,
                self.on_validation_start,
                self.on_validation_epoch_start,
                self.on_validation_batch_start,
                self.on_validation_batch_end,
                self.on_validation_epoch_end,
                self.on_validation_end,
            )
        return EvalHooks(
            self.on_test_model_eval,
            self.on_test_model_train,
            self.on_test_start,
            self.on_test_epoch_start,
            self.on_test_batch_start,
            self.on_test_batch_end,
            self.on_test_epoch_end,
            self.on_test_end,
        )

    def on_predict_start(self) -> None:
        self._both("on_predict_start")

    def on_predict_epoch_start(self) -> None:
        self._both("on_predict_epoch_start")

    def on_predict_epoch_end(self) -> None:
        self._both("on_predict_epoch_end")

    def on_predict_batch_start(
        self, batch: Any, batch_idx: int, dataloader_idx: int | None = None
    ) -> None:
        self._both("on_predict_batch_start", batch, batch_idx, *_idx(dataloader_idx))

    def on_predict_batch_end(
        self, outputs: Any, batch: Any, batch_idx: int, dataloader_idx: int | None = None
    ) -> None:
        self._both("on_predict_batch_end", outputs, batch, batch_idx, *_idx(dataloader_idx))

    def on_predict_end(self) -> None:
        self._both("on_predict_end")

    def on_save_checkpoint(self, state: dict[str, Any]) -> None:
        self._both("on_save_checkpoint", state)

    def on_load_checkpoint_module(self, state: dict[str, Any]) -> None:
        """The module's ``on_load_checkpoint``: first in a restore, before its weights load."""
        self._module("on_load_checkpoint", state)

    def on_load_checkpoint_callbacks(self, state: dict[str, Any]) -> None:
        """The callbacks' ``on_load_checkpoint``, after the module's and the weights, before
        their ``load_state_dict`` (Lightning's ``_restore_modules_and_callbacks``)."""
        self._callbacks("on_load_checkpoint", state)

    def on_exception(self, error: BaseException) -> None:
        module = self.trainer.module
        assert module is not None  # fit sets it before anything can fail
        for callback in self.callbacks:
            try:
                callback.on_exception(self.trainer, module, error)
            except Exception as inner:  # never hide the original error
                warning(f"{type(callback).__name__}.on_exception failed: {inner!r}")
