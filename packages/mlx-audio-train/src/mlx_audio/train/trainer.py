"""The Trainer: Lightning's arguments and loop, with an ``mx.compile``d step and exact resume.

Read ``_fit`` top to bottom: set up, (resume), sanity validation, then epochs of compiled
steps with validation, logging and checkpoints at step and epoch boundaries.
"""

from __future__ import annotations

import math
import os
import signal
import threading
from collections.abc import Iterable
from typing import Any

from mlx_audio.loggers import CSVLogger, Logger

import mlx.core as mx
import mlx.optimizers as optim
import numpy as np
from mlx.utils import tree_flatten, tree_map, tree_unflatten

from . import checkpoint as ckpt
from ._support import (
    MeanTracker,
    batch_size_of,
    epoch_iterator,
    is_stateful_loader,
    iter_limited,
    length_of,
    limited,
    rng_state,
    seed_everything,
    seed_step,
    set_rng_state,
    versions,
)
from .callbacks import Callback, GradientClipper, ModelCheckpoint, ProgressBar
from .callbacks.base import check_number
from .module import OptimizerConfig, TrainModule
from .step import StepBuilder, TraceGuard, make_eval_fn

PRECISIONS = ("32", "bf16-mixed", "bf16")


class Trainer:
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
        for name, value, minimum in (
            ("max_epochs", max_epochs, 1),
            ("max_steps", max_steps, 1),
            ("min_epochs", min_epochs, 0),
            ("min_steps", min_steps, 0),
            ("accumulate_grad_batches", accumulate_grad_batches, 1),
            ("check_val_every_n_epoch", check_val_every_n_epoch, 1),
            ("num_sanity_val_steps", num_sanity_val_steps, 0),
            ("log_every_n_steps", log_every_n_steps, 1),
            ("seed", seed, 0),
        ):
            required = name in (
                "accumulate_grad_batches",
                "num_sanity_val_steps",
                "log_every_n_steps",
            )
            check_number(
                "Trainer", name, value, minimum=minimum, integer=True, allow_none=not required
            )
        for name, value in (
            ("limit_train_batches", limit_train_batches),
            ("limit_val_batches", limit_val_batches),
            ("limit_test_batches", limit_test_batches),
            ("val_check_interval", val_check_interval),
        ):
            minimum = 1 if name == "val_check_interval" else 0
            check_number(
                "Trainer",
                name,
                value,
                minimum=minimum,
                integer=True,
                fraction=True,
                allow_none=True,
            )
        check_number("Trainer", "gradient_clip_val", gradient_clip_val, minimum=0, allow_none=True)
        runs = int(fast_dev_run) if isinstance(fast_dev_run, bool) else fast_dev_run
        check_number("Trainer", "fast_dev_run", runs, minimum=0, integer=True)
        if gradient_clip_algorithm not in ("norm", "value"):
            raise ValueError(
                f"Trainer: gradient_clip_algorithm must be 'norm' or 'value', got {gradient_clip_algorithm!r}"
            )
        if str(precision) not in PRECISIONS:
            raise ValueError(f"Trainer: precision must be one of {PRECISIONS}, got {precision!r}")
        if on_nonfinite_loss not in ("raise", "skip"):
            raise ValueError(
                f"Trainer: on_nonfinite_loss must be 'raise' or 'skip', got {on_nonfinite_loss!r}"
            )
        if fast_dev_run:
            n = int(fast_dev_run)
            max_epochs, max_steps, limit_train_batches, limit_val_batches, num_sanity_val_steps = (
                1,
                n,
                n,
                n,
                0,
            )
            logger, enable_checkpointing = False, False
        if max_epochs is None and max_steps is None:
            raise ValueError(
                "Trainer: set max_epochs or max_steps (or both); training would never end otherwise"
            )
        self.max_epochs, self._max_steps = max_epochs, max_steps
        self.min_epochs, self.min_steps = min_epochs or 0, min_steps or 0
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
        self.limit_train_batches, self.limit_val_batches, self.limit_test_batches = (
            limit_train_batches,
            limit_val_batches,
            limit_test_batches,
        )
        self.num_sanity_val_steps, self.fast_dev_run, self.log_every_n_steps = (
            num_sanity_val_steps,
            fast_dev_run,
            log_every_n_steps,
        )
        self.enable_checkpointing, self.compile, self.on_nonfinite_loss = (
            enable_checkpointing,
            compile,
            on_nonfinite_loss,
        )
        self.default_root_dir = (
            os.fspath(default_root_dir) if default_root_dir is not None else os.getcwd()
        )
        self.seed = seed
        if (
            seed is not None
        ):  # before the model is built, so its initial weights are reproducible too
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
        if enable_checkpointing and not any(isinstance(c, ModelCheckpoint) for c in self.callbacks):
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
        total, micro = self._builder.zeros, 0
        tracker = MeanTracker()
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
                tracker = MeanTracker()
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
            mx.eval(self._builder_state())
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
        mx.eval(self._builder_state(), loss, metrics, total)
        if self.did_update:
            self.global_step += 1
        if self.on_nonfinite_loss == "raise" and not math.isfinite(loss.item()):
            raise FloatingPointError(
                f"loss is {loss.item()} at step {self.global_step} (epoch {self.current_epoch}, batch {batch_idx}); "
                "lower the learning rate, clip gradients, or use Trainer(on_nonfinite_loss='skip')"
            )
        return loss, metrics, total, micro

    def _builder_state(self) -> list:
        return [self.module.state, self.optimizer.state, mx.random.state]

    def _after_update(self, tracker: MeanTracker) -> None:
        values = {f"train_{k}": v for k, v in tracker.means().items()}
        self.progress_metrics = {k.removeprefix("train_"): v for k, v in values.items()}
        self.callback_metrics.update(values)
        if self.global_step % self.log_every_n_steps == 0 or self.global_step == 1:
            self.log_metrics({**values, "epoch": self.current_epoch})
        if not self._monitors_checked and self._val_names is not None:
            self._check_monitors()

    # -- validation, test, predict -------------------------------------------------------------
    def _evaluate(
        self, loader: Iterable[Any], stage: str, limit: int | float | None
    ) -> dict[str, float]:
        module = self.module
        assert module is not None
        count = limited(length_of(loader), limit)
        was_training = module.training
        module.eval()
        self._call("on_validation_start" if stage == "val" else "on_test_start")
        step = make_eval_fn(module, stage, self.precision, self.compile)
        tracker = MeanTracker()
        for batch_idx, batch in enumerate(iter_limited(loader, count)):
            with TraceGuard(module, None, self.compile and batch_idx == 0):
                loss, metrics = step(batch, mx.array(batch_idx))
                tracker.add({"loss": loss, **metrics}, batch_size_of(batch))
        module.train(was_training)
        results = {f"{stage}_{k}": v for k, v in tracker.means().items()}
        if stage == "val":
            self._val_names = set(results)
        if not self.sanity_checking and results:
            self.log_metrics(
                {**results, "epoch": self.current_epoch} if self.optimizer is not None else results
            )
        if self.sanity_checking:
            self._check_monitors(sanity=True)
        self._call("on_validation_end" if stage == "val" else "on_test_end")
        return results

    def validate(
        self, model: TrainModule, dataloaders: Iterable[Any], ckpt_path: str | None = None
    ) -> list[dict[str, float]]:
        return [self._standalone(model, dataloaders, "val", ckpt_path, self.limit_val_batches)]

    def test(
        self, model: TrainModule, dataloaders: Iterable[Any], ckpt_path: str | None = None
    ) -> list[dict[str, float]]:
        return [self._standalone(model, dataloaders, "test", ckpt_path, self.limit_test_batches)]

    def _standalone(
        self,
        model: TrainModule,
        loader: Iterable[Any],
        stage: str,
        ckpt_path: str | None,
        limit: Any,
    ) -> dict[str, float]:
        self.module, model.trainer = model, self
        if ckpt_path is not None:
            model.load_checkpoint(self._resolve_ckpt(ckpt_path))
        return self._evaluate(loader, stage, limit)

    def predict(
        self, model: TrainModule, dataloaders: Iterable[Any], ckpt_path: str | None = None
    ) -> list[Any]:
        """``predict_step`` on every batch (eval mode), returned as a list."""
        self.module, model.trainer = model, self
        if ckpt_path is not None:
            model.load_checkpoint(self._resolve_ckpt(ckpt_path))
        was_training = model.training
        model.eval()
        self._call("on_predict_start")
        outputs = []
        for batch_idx, batch in enumerate(dataloaders):
            output = model.predict_step(batch, mx.array(batch_idx))
            mx.eval(output)
            outputs.append(output)
        self._call("on_predict_end")
        model.train(was_training)
        return outputs

    # -- checkpoints ---------------------------------------------------------------------------
    def save_checkpoint(self, path: str) -> str:
        """Write a complete checkpoint directory at ``path`` (see mlx_audio.train.checkpoint)."""
        module, optimizer = self.module, self.optimizer
        assert module is not None and optimizer is not None, "save_checkpoint needs a running fit"
        loader = self._train_loader
        state: dict[str, Any] = {
            "epoch": self.current_epoch,
            "global_step": self.global_step,
            "batch_in_epoch": self._batch_in_epoch,
            "epoch_finished": self._epoch_finished,
            "should_stop": bool(self.should_stop),
            "rng": rng_state(),
            "rng_base": self._rng_base,
            "loader": loader.state_dict()
            if is_stateful_loader(loader) and not self._epoch_finished
            else None,
            "callbacks": {c.state_key: c.state_dict() for c in self.callbacks},
            "callback_metrics": dict(self.callback_metrics),
            "versions": versions(),
        }
        self._call("on_save_checkpoint", state)
        weights = dict(tree_flatten(module.parameters()))
        return ckpt.save_checkpoint(path, weights, dict(tree_flatten(optimizer.state)), state)

    def _resolve_ckpt(self, ckpt_path: str) -> str:
        if ckpt_path in ("last", "best"):
            callback = self.checkpoint_callback
            if ckpt_path == "best":
                if callback is None or not callback.best_model_path:
                    raise ValueError(
                        'ckpt_path="best" needs a ModelCheckpoint that has saved a best checkpoint'
                    )
                return callback.best_model_path
            dirpath = (
                callback.dirpath
                if callback is not None and callback.dirpath
                else os.path.join(self.default_root_dir, "checkpoints")
            )
            return os.path.join(dirpath, "last")
        return ckpt_path

    def _restore(self, ckpt_path: str, module: TrainModule) -> dict | None:
        path = self._resolve_ckpt(ckpt_path)
        if ckpt_path == "last" and not os.path.lexists(path):
            print(f"Trainer: no checkpoint at {path} yet; starting from scratch.")
            return None
        directory, state = ckpt.read_state(path)
        weights_file = os.path.join(directory, ckpt.MODEL_FILE)
        ckpt.check_against(
            weights_file,
            ckpt.load_arrays(weights_file),
            dict(tree_flatten(module.parameters())),
            "model",
        )
        module.load_checkpoint(directory)
        optimizer_file = os.path.join(directory, ckpt.OPTIMIZER_FILE)
        loaded = ckpt.load_arrays(optimizer_file)
        self.optimizer.init(module.trainable_parameters())
        ckpt.check_against(
            optimizer_file, loaded, dict(tree_flatten(self.optimizer.state)), "optimizer"
        )
        self.optimizer.state = tree_unflatten(list(loaded.items()))
        self.current_epoch, self.global_step = int(state["epoch"]), int(state["global_step"])
        self.callback_metrics = {k: float(v) for k, v in state.get("callback_metrics", {}).items()}
        set_rng_state(state["rng"])
        self._rng_base = int(state["rng_base"])
        for callback in self.callbacks:
            if callback.state_key in state.get("callbacks", {}):
                callback.load_state_dict(state["callbacks"][callback.state_key])
        self._call("on_load_checkpoint", state)
        if state["epoch_finished"]:
            self.current_epoch += 1
            return {
                **state,
                "batch_in_epoch": 0,
                "loader": None,
                "_dir": directory,
                "_finished_epoch": True,
            }
        return {**state, "_dir": directory}

    def _finished(self, resume: dict) -> bool:
        return (
            bool(resume.get("should_stop"))
            or self._step_limit_reached()
            or (self.max_epochs is not None and self.current_epoch >= self.max_epochs)
        )

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

    def _hparams(self) -> dict[str, Any]:
        names = ("max_epochs", "accumulate_grad_batches", "gradient_clip_val", "precision", "seed")
        return {
            "trainer": {n: getattr(self, n) for n in names} | {"max_steps": self.max_steps},
            "optimizer": type(self.optimizer).__name__,
            "lr_schedule": self.lr_schedule_name,
        }

    def _finalize_loggers(self, status: str) -> None:
        for logger in self.loggers:
            try:
                logger.finalize(status)
            except Exception as error:
                print(f"Trainer: {type(logger).__name__}.finalize({status!r}) failed: {error!r}")

    def _print_summary(self) -> None:
        if not self.is_global_zero:
            return
        lines = [f"Trainer: finished at epoch {self.current_epoch}, step {self.global_step}."]
        callback = self.checkpoint_callback
        if callback is not None and callback.dirpath:
            best = (
                f"; best {callback.monitor}={callback.best_model_score:.6g} at {callback.best_model_path}"
                if callback.monitor and callback.best_model_score is not None
                else ""
            )
            lines.append(
                f"  checkpoints: {callback.dirpath} (last -> {callback.last_model_path or 'none'}){best}"
            )
        for logger in self.loggers:
            lines.append(f"  logs: {type(logger).__name__} at {logger.log_dir}")
        print("\n".join(lines))

    # -- Ctrl-C ---------------------------------------------------------------------------------
    def _install_interrupt_handler(self) -> Any:
        """First Ctrl-C: stop at the next optimizer-step boundary. Second: stop now."""
        if threading.current_thread() is not threading.main_thread():
            return None
        self._interrupted = False

        def handler(signum: int, frame: Any) -> None:
            if self._interrupted:
                raise KeyboardInterrupt
            self._interrupted = True
            print(
                "\nTrainer: Ctrl-C received; stopping after this step (press again to stop at once)."
            )

        return signal.signal(signal.SIGINT, handler)

    def _restore_interrupt_handler(self, previous: Any) -> None:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
