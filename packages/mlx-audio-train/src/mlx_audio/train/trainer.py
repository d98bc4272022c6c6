"""The Trainer: Lightning's arguments and loop, with an ``mx.compile``d step and exact resume.

Read ``_fit`` top to bottom: set up, (resume), sanity validation, then epochs of compiled
steps with validation, logging and checkpoints at step and epoch boundaries.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable
from typing import Any

from mlx_audio.loggers import CSVLogger, Logger

import mlx.core as mx
import mlx.optimizers as optim
import numpy as np
from mlx.utils import tree_map

from ._arguments import check_arguments
from ._checkpointing import CheckpointMixin
from ._evaluation import EvaluationMixin
from ._lifecycle import LifecycleMixin
from ._support import (
    MeanTracker,
    epoch_iterator,
    is_stateful_loader,
    iter_limited,
    length_of,
    limited,
    seed_everything,
    seed_step,
)
from .callbacks import Callback, GradientClipper, ModelCheckpoint, ProgressBar
from .module import OptimizerConfig, TrainModule
from .step import StepBuilder, TraceGuard


class Trainer(EvaluationMixin, CheckpointMixin, LifecycleMixin):
    """Fits a :class:`TrainModule` on any iterable of batches. See docs/api/training.md."""

    def __init__(
        self,
        max_epochs: int | None = None,
        max_steps: int | None = None,
        min_epochs: int | None = None,
        min_steps: int | None = None,
        accumulate_grad_batches: int = 1,
        gradient_clip_val: float | None = None,
        gradient_clip_algorithm: str = "norm",
        precision: str | int = "32",
        val_check_interval: int | float | None = None,
        check_val_every_n_epoch: int | None = 1,
        limit_train_batches: int | float | None = None,
        limit_val_batches: int | float | None = None,
        limit_test_batches: int | float | None = None,
        num_sanity_val_steps: int = 2,
        fast_dev_run: bool | int = False,
        log_every_n_steps: int = 50,
        callbacks: list[Callback] | Callback | None = None,
        logger: Logger | list[Logger] | bool | None = None,
        enable_progress_bar: bool = True,
        enable_checkpointing: bool = True,
        default_root_dir: str | None = None,
        seed: int | None = None,
        compile: bool = True,
        on_nonfinite_loss: str = "raise",
    ) -> None:
        args = check_arguments({k: v for k, v in locals().items() if k != "self"})
        self.max_epochs, self._max_steps = args["max_epochs"], args["max_steps"]
        self.min_epochs, self.min_steps = args["min_epochs"] or 0, args["min_steps"] or 0
        self.accumulate_grad_batches = accumulate_grad_batches
        self.gradient_clip_val, self.gradient_clip_algorithm = (
            gradient_clip_val,
            gradient_clip_algorithm,
        )
        self.precision = str(precision)
        self.val_check_interval, self.check_val_every_n_epoch = (
            val_check_interval,
            check_val_every_n_epoch,
        )
        self.limit_train_batches, self.limit_val_batches = (
            args["limit_train_batches"],
            args["limit_val_batches"],
        )
        self.limit_test_batches = limit_test_batches
        self.num_sanity_val_steps, self.log_every_n_steps = (
            args["num_sanity_val_steps"],
            log_every_n_steps,
        )
        self.fast_dev_run, self.compile, self.on_nonfinite_loss = (
            fast_dev_run,
            compile,
            on_nonfinite_loss,
        )
        self.enable_checkpointing, logger = args["enable_checkpointing"], args["logger"]
        self.default_root_dir = (
            os.fspath(default_root_dir) if default_root_dir is not None else os.getcwd()
        )
        self.seed = seed
        if seed is not None:  # before the model is built, so its initial weights are reproducible
            seed_everything(seed)
        self.callbacks: list[Callback] = (
            list(callbacks)
            if isinstance(callbacks, (list, tuple))
            else ([callbacks] if callbacks else [])
        )
        for callback in self.callbacks:
            if not isinstance(callback, Callback):
                raise ValueError(
                    f"Trainer: callbacks must be Callback instances, got {type(callback).__name__}"
                )
        if enable_progress_bar and not any(isinstance(c, ProgressBar) for c in self.callbacks):
            self.callbacks.append(ProgressBar())
        if not enable_progress_bar:
            self.callbacks = [c for c in self.callbacks if not isinstance(c, ProgressBar)]
        if self.enable_checkpointing and not any(
            isinstance(c, ModelCheckpoint) for c in self.callbacks
        ):
            self.callbacks.append(ModelCheckpoint())
        if logger is None or logger is True:
            self.loggers: list[Logger] = [CSVLogger(self.default_root_dir, name="logs")]
        elif logger is False:
            self.loggers = []
        else:
            self.loggers = list(logger) if isinstance(logger, (list, tuple)) else [logger]
        # run state
        self.current_epoch = 0
        self.global_step = 0
        self.should_stop = False
        self.sanity_checking = False
        self.at_epoch_end = False
        self.did_update = False
        self.callback_metrics: dict[str, float] = {}
        self.logged_metrics: dict[str, float] = {}
        self.progress_metrics: dict[str, float] = {}
        self.optimizer: optim.Optimizer | None = None
        self.lr_schedule_name: str | None = None
        self.num_training_batches: int | float = math.inf
        self.module: TrainModule | None = None
        self._estimated_max_steps: int | None = None
        self._interrupted = False
        self._batch_in_epoch = 0
        self._epoch_finished = False
        self._train_loader: Any = None
        self._val_names: set[str] | None = None
        self._monitors_checked = False
        self._rng_base = 0

    # -- public properties -------------------------------------------------------------------
    @property
    def max_steps(self) -> int | None:
        """The configured max_steps, or during fit the estimate ``max_epochs x updates/epoch``
        (None when the loader has no length)."""
        return self._max_steps if self._max_steps is not None else self._estimated_max_steps

    @property
    def logger(self) -> Logger | None:
        return self.loggers[0] if self.loggers else None

    @property
    def checkpoint_callback(self) -> ModelCheckpoint | None:
        return next((c for c in self.callbacks if isinstance(c, ModelCheckpoint)), None)

    @property
    def is_global_zero(self) -> bool:
        return not mx.distributed.is_available() or mx.distributed.init().rank() == 0

    @property
    def log_dir(self) -> str | None:
        return self.logger.log_dir if self.logger is not None else None

    # -- hooks -------------------------------------------------------------------------------
    def _call(self, hook: str, *args: Any) -> None:
        module = self.module
        if module is not None and hasattr(module, hook):
            getattr(module, hook)(*args)
        for callback in self.callbacks:
            getattr(callback, hook)(self, module, *args)

    def log_metrics(self, metrics: dict[str, float]) -> None:
        """Send metrics to every logger at the current optimizer step (and to the monitors)."""
        self.callback_metrics.update(metrics)
        self.logged_metrics.update(metrics)
        for logger in self.loggers:
            logger.log_metrics(metrics, step=self.global_step)

    # -- fit ---------------------------------------------------------------------------------
    def fit(
        self,
        model: TrainModule,
        train_dataloaders: Iterable[Any],
        val_dataloaders: Iterable[Any] | None = None,
        ckpt_path: str | None = None,
    ) -> None:
        """Train ``model``; ``ckpt_path`` resumes (a checkpoint directory, a ``last`` link,
        ``"last"`` or ``"best"``). Resuming a finished run returns at once."""
        if not isinstance(model, TrainModule):
            raise TypeError(f"Trainer.fit needs a TrainModule, got {type(model).__name__}")
        if train_dataloaders is None or not hasattr(train_dataloaders, "__iter__"):
            raise TypeError(
                f"train_dataloaders must be an iterable of batches, got {type(train_dataloaders).__name__}"
            )
        self.module, model.trainer = model, self
        previous = self._install_interrupt_handler()
        try:
            ran = self._fit(model, train_dataloaders, val_dataloaders, ckpt_path)
        except BaseException as error:
            status = "interrupted" if isinstance(error, KeyboardInterrupt) else "failed"
            for callback in self.callbacks:
                try:
                    callback.on_exception(self, model, error)
                except Exception as inner:  # never hide the original error
                    print(f"{type(callback).__name__}.on_exception failed: {inner!r}")
            self._finalize_loggers(status)
            raise
        finally:
            self._restore_interrupt_handler(previous)
            if hasattr(train_dataloaders, "close") and is_stateful_loader(train_dataloaders):
                train_dataloaders.close()
        self._finalize_loggers("success")
        if ran:
            self._print_summary()

    def _fit(
        self,
        model: TrainModule,
        train_loader: Iterable[Any],
        val_loader: Iterable[Any] | None,
        ckpt_path: str | None,
    ) -> bool:
        self._train_loader = train_loader
        for loader in (train_loader, val_loader):
            if (
                is_stateful_loader(loader)
                and getattr(loader, "seed", 0) is None
                and self.seed is not None
            ):
                loader.seed = self.seed
        per_epoch = limited(length_of(train_loader), self.limit_train_batches)
        if per_epoch == 0:
            raise ValueError(
                "the train loader is empty (or limit_train_batches is 0): nothing to train on"
            )
        self.num_training_batches = per_epoch if per_epoch is not None else math.inf
        self._estimated_max_steps = None
        if self.max_epochs is not None and per_epoch is not None:
            self._estimated_max_steps = self.max_epochs * -(
                -per_epoch // self.accumulate_grad_batches
            )
        self._configure_clipping()
        self._rng_base = (
            self.seed if self.seed is not None else int(np.random.randint(0, 2**31 - 1))
        )
        if self.precision == "bf16":
            model.set_dtype(mx.bfloat16)
        self._configure_optimizer(model)
        for callback in self.callbacks:
            callback.setup(self, model, "fit")
        resume = self._restore(ckpt_path, model) if ckpt_path is not None else None
        if resume is not None and self._finished(resume):
            print(
                f"Trainer: the run in {resume['_dir']} already finished (epoch {self.current_epoch}, step {self.global_step}); nothing to do."
            )
            return False
        self._builder = StepBuilder(
            model,
            self.optimizer,
            self.accumulate_grad_batches,
            self.gradient_clip_val,
            self.gradient_clip_algorithm,
            self.precision,
            self.compile,
        )
        for logger in self.loggers:
            logger.log_hyperparams(self._hparams())
        self._call("on_fit_start")
        if val_loader is not None and self.num_sanity_val_steps and resume is None:
            self.sanity_checking = True
            self._evaluate(val_loader, "val", self.num_sanity_val_steps)
            self.sanity_checking = False
        model.train()
        self._call("on_train_start")
        while not self._done():
            self._run_epoch(model, train_loader, val_loader, resume)
            resume = None
        self._call("on_train_end")
        self._call("on_fit_end")
        return True

    def _run_epoch(
        self, model: TrainModule, train_loader: Any, val_loader: Any, resume: dict | None
    ) -> None:
        self.at_epoch_end = self._epoch_finished = False
        self._batch_in_epoch = int(resume["batch_in_epoch"]) if resume else 0
        self._call("on_train_epoch_start")
        interval = self._val_interval()
        accumulating = self.accumulate_grad_batches > 1 or self.on_nonfinite_loss == "skip"
        total, micro = (self._builder.zeros if accumulating else None), 0
        tracker = MeanTracker(eager=False)
        batches = epoch_iterator(train_loader, self.current_epoch, resume)
        limit = (
            None
            if self.limit_train_batches is None
            else self.num_training_batches - self._batch_in_epoch
        )
        stopped_early = False
        for batch in iter_limited(
            batches, None if limit is None or math.isinf(limit) else int(limit)
        ):
            batch_idx = self._batch_in_epoch
            self._call("on_train_batch_start", batch, batch_idx)
            micro += 1
            loss, metrics, total, micro = self._train_step(batch, batch_idx, total, micro)
            tracker.add({"loss": loss, **metrics})
            self._batch_in_epoch += 1
            if self.did_update:
                self._after_update(tracker)
                tracker = MeanTracker(eager=False)
            self._call("on_train_batch_end", {"loss": loss, **metrics}, batch, batch_idx)
            if (
                val_loader is not None
                and interval
                and self._batch_in_epoch % interval == 0
                and self._val_due()
            ):
                self._evaluate(val_loader, "val", self.limit_val_batches)
            if micro == 0 and (
                self._interrupted
                or self._step_limit_reached()
                or (self.should_stop and self._min_reached())
            ):
                stopped_early = True  # at an optimizer-step boundary, before the epoch's end
                break
        if micro:  # a short accumulation group at the end of the epoch still steps
            self._builder.apply(total, mx.array(micro))
            mx.eval(self._builder.state)
            self.global_step += 1
            self.did_update = True
            self._after_update(tracker)
        if self._interrupted:
            raise KeyboardInterrupt
        self.at_epoch_end = self._epoch_finished = not stopped_early
        if (
            val_loader is not None
            and not stopped_early
            and self._val_due()
            and not (interval and self._batch_in_epoch % interval == 0)
        ):
            self._evaluate(val_loader, "val", self.limit_val_batches)
        self.log_metrics({"epoch": self.current_epoch})
        self._call("on_train_epoch_end")
        if not stopped_early:
            self.current_epoch += 1
            self._batch_in_epoch = 0

    def _train_step(self, batch: Any, batch_idx: int, total: Any, micro: int) -> tuple:
        builder, index = self._builder, mx.array(batch_idx)
        with TraceGuard(self.module, self.optimizer, builder.note_shapes(batch)):
            return self._run_step(builder, batch, batch_idx, index, total, micro)

    def _run_step(
        self,
        builder: StepBuilder,
        batch: Any,
        batch_idx: int,
        index: mx.array,
        total: Any,
        micro: int,
    ) -> tuple:
        seed_step(self._rng_base, self.global_step, micro)
        acc = self.accumulate_grad_batches
        self.did_update = False
        if self.on_nonfinite_loss == "skip":
            loss, metrics, grads = builder.grads(batch, index)
            mx.eval(loss, grads)
            if math.isfinite(loss.item()):
                total = tree_map(mx.add, total, grads)
            else:
                print(
                    f"Trainer: skipping batch {batch_idx} of epoch {self.current_epoch}: loss is {loss.item()}"
                )
                micro -= 1
            if micro == acc:
                builder.apply(total, mx.array(micro))
                total, micro, self.did_update = builder.zeros, 0, True
        elif acc == 1:
            loss, metrics = builder.fused(batch, index)
            micro, self.did_update = 0, True
        else:
            update = micro == acc
            loss, metrics, total = builder.accumulating(
                batch, index, total, mx.array(micro), update
            )
            if update:
                total, micro, self.did_update = builder.zeros, 0, True
        mx.eval(self._builder.state, loss, metrics, *([total] if total is not None else []))
        if self.did_update:
            self.global_step += 1
        if self.on_nonfinite_loss == "raise" and not math.isfinite(loss.item()):
            raise FloatingPointError(
                f"loss is {loss.item()} at step {self.global_step} (epoch {self.current_epoch}, batch {batch_idx}); "
                "lower the learning rate, clip gradients, or use Trainer(on_nonfinite_loss='skip')"
            )
        return loss, metrics, total, micro

    def _after_update(self, tracker: MeanTracker) -> None:
        values = {f"train_{k}": v for k, v in tracker.means().items()}
        self.progress_metrics = {k.removeprefix("train_"): v for k, v in values.items()}
        self.callback_metrics.update(values)
        if self.global_step % self.log_every_n_steps == 0 or self.global_step == 1:
            self.log_metrics({**values, "epoch": self.current_epoch})
        if not self._monitors_checked and self._val_names is not None:
            self._check_monitors()

    # -- small decisions ------------------------------------------------------------------------
    def _done(self) -> bool:
        if self._step_limit_reached() or (
            self.max_epochs is not None and self.current_epoch >= self.max_epochs
        ):
            return True
        return self.should_stop and self._min_reached()

    def _min_reached(self) -> bool:
        return self.current_epoch >= self.min_epochs and self.global_step >= self.min_steps

    def _step_limit_reached(self) -> bool:
        return self._max_steps is not None and self.global_step >= self._max_steps

    def _val_due(self) -> bool:
        n = self.check_val_every_n_epoch
        return n is None or (self.current_epoch + 1) % n == 0

    def _val_interval(self) -> int | None:
        interval = self.val_check_interval
        if isinstance(interval, float):
            per_epoch = self.num_training_batches
            return (
                None
                if interval == 1.0 or math.isinf(per_epoch)
                else max(1, int(per_epoch * interval))
            )
        return interval

    def _configure_optimizer(self, model: TrainModule) -> None:
        config = model.configure_optimizers()
        if isinstance(config, optim.Optimizer):
            config = OptimizerConfig(config)
        if not isinstance(config, OptimizerConfig):
            raise TypeError(
                f"configure_optimizers() must return an OptimizerConfig or an mlx.optimizers.Optimizer, got {type(config).__name__}"
            )
        self.optimizer, self.lr_schedule_name = config.optimizer, config.lr_schedule_name

    def _configure_clipping(self) -> None:
        clippers = [c for c in self.callbacks if isinstance(c, GradientClipper)]
        for clipper in clippers:
            if self.gradient_clip_val is not None and (
                clipper.max_norm != self.gradient_clip_val
                or clipper.algorithm != self.gradient_clip_algorithm
            ):
                raise ValueError(
                    f"GradientClipper(max_norm={clipper.max_norm}) conflicts with Trainer(gradient_clip_val={self.gradient_clip_val}); give one"
                )
            self.gradient_clip_val, self.gradient_clip_algorithm = (
                clipper.max_norm,
                clipper.algorithm,
            )

    def _check_monitors(self, sanity: bool = False) -> None:
        known = set(self.callback_metrics) | (self._val_names or set()) | {"epoch", "step", "lr"}
        train_known = any(k.startswith("train_") for k in known)
        for callback in self.callbacks:
            monitor = getattr(callback, "monitor", None)
            if (
                monitor is None
                or monitor in known
                or (monitor.startswith("train_") and not train_known)
            ):
                continue
            if sanity and not monitor.startswith("val_"):
                continue
            raise ValueError(
                f"{type(callback).__name__}(monitor={monitor!r}) names a metric that is never logged; logged metrics: {sorted(known - {'step'})}"
            )
        self._monitors_checked = not sanity
