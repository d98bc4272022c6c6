"""The Trainer: Lightning's arguments, loop and hook order, with an ``mx.compile``d step.

``fit`` reads top to bottom. Hook order (as in Lightning 2.6)::

    setup -> [restore ckpt_path] -> on_fit_start -> sanity validation -> on_train_start
    for each epoch:  on_train_epoch_start
        for each batch:  on_train_batch_start -> [on_before_optimizer_step] -> step
                         -> on_train_batch_end -> [validation] (see _validation_due)
        on_train_epoch_end (callbacks, module, then the monitors) -> epoch metrics logged
    on_train_end -> on_fit_end -> teardown

Validation: on_validation_start, on_validation_epoch_start, per batch on_validation_batch_start/
end, on_validation_epoch_end, (metrics logged), on_validation_end.
"""

from __future__ import annotations

import math
import os
import time
import warnings
from collections.abc import Iterable
from dataclasses import fields
from typing import Any

import mlx.core as mx
import mlx.optimizers as optim
import numpy as np

from mlx_audio.data.support import report_slow_blas
from mlx_audio.loggers import Logger

from . import checkpoint, distributed
from ._arguments import TrainerArgs, make_args, val_check_batch
from ._device import device_scope
from ._lifecycle import (
    clipping,
    configure_optimizer,
    default_loggers,
    finalize_loggers,
    hparams,
    interrupt_handler,
    print_summary,
)
from ._loaders import Fetcher, batch_size_of, is_stateful_loader, length_of, limited, seed_and_shard
from ._nonfinite import check_nonfinite, nonfinite_step
from ._progress import Progress
from ._rng import seed_everything, seed_step
from ._status import rank_zero_info
from .callbacks import Callback, ModelCheckpoint, Timer
from .evaluation import evaluate, predict, sanity_check, standalone
from .hooks import CallbackList, with_defaults
from .metrics import LogOptions, MetricStore, Results
from .module import TrainModule
from .step import StepBuilder, StepRunner, compute_dtype

_ARG_NAMES = frozenset(f.name for f in fields(TrainerArgs))


class Trainer:
    """Fits a :class:`TrainModule` on any iterable of batches. See docs/api/training.md."""

    def __init__(
        self,
        max_epochs: int | None = None,
        max_steps: int = -1,
        min_epochs: int | None = None,
        min_steps: int | None = None,
        accumulate_grad_batches: int = 1,
        gradient_clip_val: float | None = None,
        gradient_clip_algorithm: str | None = None,
        precision: str | int | None = None,
        val_check_interval: int | float | None = None,
        check_val_every_n_epoch: int | None = 1,
        limit_train_batches: int | float | None = None,
        limit_val_batches: int | float | None = None,
        limit_test_batches: int | float | None = None,
        num_sanity_val_steps: int | None = None,
        fast_dev_run: bool | int = False,
        log_every_n_steps: int | None = None,
        callbacks: list[Callback] | Callback | None = None,
        logger: Logger | list[Logger] | bool | None = None,
        enable_progress_bar: bool | None = None,
        enable_checkpointing: bool | None = None,
        enable_model_summary: bool | None = None,
        default_root_dir: str | None = None,
        seed: int | None = None,
        compile: bool = True,
        on_nonfinite_loss: str = "raise",
        use_distributed_sampler: bool = True,
        accelerator: str = "auto",
        devices: int | str | list[int] = "auto",
        deterministic: bool | str | None = None,
        benchmark: bool | None = None,
        inference_mode: bool = True,
        max_time: str | dict | Any | None = None,
    ) -> None:
        """Lightning's ``Trainer`` arguments, with Lightning 2.6's defaults and meaning in MLX.

        Every argument is checked here (a ``ValueError`` naming it and what is valid); Lightning's
        ``None`` defaults resolve as there. Arguments that exist only here: ``seed``,
        ``compile``, ``on_nonfinite_loss``.

        Args:
            max_epochs: Stop after this many epochs. With neither ``max_epochs`` nor
                ``max_steps`` set it becomes 1000, with Lightning's warning; ``-1`` trains
                without an epoch limit.
            max_steps: Stop after this many optimizer steps (updates, not batches: with
                ``accumulate_grad_batches`` one step takes several batches); ``-1`` (the
                default) means no limit. When it is not set, ``trainer.max_steps`` is
                ``max_epochs`` times the updates per epoch inside ``fit`` (Lightning's
                ``estimated_stepping_batches``), so ``configure_optimizers`` can size a schedule.
            min_epochs: Train at least this many epochs, even when a callback asks to stop
                earlier. ``None``: no minimum (1 when ``min_steps`` is given, as in Lightning).
            min_steps: Train at least this many optimizer steps, even when a callback asks to
                stop earlier. ``None``: no minimum.
            accumulate_grad_batches: Accumulate gradients over this many batches before each
                optimizer step. They are averaged over the batches actually accumulated, and a
                shorter group at the end of an epoch still steps.
            gradient_clip_val: Clip the gradients at this value before each optimizer step (once,
                after accumulation and averaging across ranks). ``None`` (the default) does not
                clip; a ``GradientClipper`` callback is the other way to ask, and the two must
                agree.
            gradient_clip_algorithm: How ``gradient_clip_val`` clips: ``"norm"`` (the global
                norm, the default for ``None``) or ``"value"`` (each element).
            precision: The numeric precision of training: ``"32-true"`` (the default for
                ``None``), ``"bf16-mixed"`` (compute in bfloat16 on bfloat16 copies of the
                trainable weights while the weights and optimizer state stay float32),
                ``"bf16-true"`` or ``"16-true"`` (the model itself cast). Lightning's aliases
                are taken: ``32`` and ``"32"``, ``"bf16"`` (bf16-mixed, with Lightning's
                warning); ``"16-mixed"`` (``16``, ``"16"``) becomes ``"bf16-mixed"`` with a
                warning, as Lightning does on the CPU (fp16 needs a loss scaler), and
                ``"64-true"`` is an error (MLX has no float64 on the GPU).
                ``trainer.precision`` is the full name.
            val_check_interval: How often to validate within a training epoch: a float is a
                fraction of the epoch (the default 1.0: at its end; it needs a train loader with
                a length), an int is a number of training batches, which may exceed an epoch only
                with ``check_val_every_n_epoch=None``. Lightning's time-based intervals
                (``"DD:HH:MM:SS"``) are not taken.
            check_val_every_n_epoch: Validate after every this many training epochs (default 1).
                ``None`` validates by training batches alone, across epochs; then
                ``val_check_interval`` must be an int.
            limit_train_batches: How much of the training loader each epoch uses: an int is a
                number of batches, a float in (0, 1] a fraction (default 1.0); per process in a
                data-parallel run.
            limit_val_batches: How much of the validation loader each validation uses (int:
                batches, float: fraction, default 1.0); 0 turns validation off.
            limit_test_batches: How much of the test loader ``test`` uses (int: batches, float:
                fraction, default 1.0).
            num_sanity_val_steps: Validation batches run before training starts, to find bugs in
                ``validation_step`` early; nothing they compute is logged. ``None`` means 2 (the
                default), ``-1`` all of them, 0 none.
            fast_dev_run: A smoke test: ``True`` (or an int n) runs 1 (n) batches of training,
                validation and test in one epoch, without sanity check, loggers or checkpoints.
            log_every_n_steps: Send the values logged per step to the loggers every this many
                optimizer steps (``None``: 50, the default).
            callbacks: A callback or a list of them, called in order (each ``ModelCheckpoint``
                after the others, as Lightning does). The default ones are added unless you give
                your own: a progress bar, a ``ModelSummary`` and a ``ModelCheckpoint`` (see the
                ``enable_*`` arguments) and, for ``max_time``, a ``Timer``.
            logger: A logger or a list of loggers (``mlx_audio.loggers``). ``None`` or ``True``
                (the default) writes a ``CSVLogger`` under ``default_root_dir/logs`` (Lightning
                prefers TensorBoard when it is installed); ``False`` logs nothing.
            enable_progress_bar: Show the progress bar (tqdm's bars on a terminal, plain lines in
                logs): a ``ProgressBar`` is added unless you gave one. ``False`` removes every bar,
                yours too; ``None`` is ``True``.
            enable_checkpointing: Add a ``ModelCheckpoint`` when you gave none (``None`` is
                ``True``). Unlike Lightning's, it keeps a ``last`` link
                (``default_root_dir/checkpoints/last``) that ``ckpt_path="last"`` resumes from.
            enable_model_summary: Print a ``ModelSummary`` table of the layers and their
                parameter counts when fitting starts (``None`` is ``True``).
            default_root_dir: Where the default logger and checkpoints write; ``None`` is the
                current directory.
            seed: Seed MLX, numpy and ``random`` here (before you build the model, so its initial
                weights are reproducible) and every ``mlx_audio.data`` DataLoader that has no
                seed of its own; ``None`` seeds nothing. Lightning has ``seed_everything`` for this.
            compile: Run the training step as one ``mx.compile``d graph (the default); ``False``
                runs it eagerly, slower and easier to debug.
            on_nonfinite_loss: What a batch whose loss or gradients are NaN or infinite does; its
                update is never applied. ``"raise"`` (the default) stops with a
                ``FloatingPointError`` naming the step, epoch and batch; ``"skip"`` goes on,
                reporting the first three skips and then every power of ten.
            use_distributed_sampler: In a data-parallel run, give each process its own share of
                every ``mlx_audio.data`` DataLoader (as Lightning's ``DistributedSampler``);
                ``False`` leaves the loaders as you made them.
            accelerator: The device that ``fit``, ``validate``, ``test`` and ``predict`` run on:
                ``"auto"`` (MLX's default device: the GPU where there is one), ``"cpu"`` or
                ``"gpu"`` (``"cuda"`` and ``"mps"`` also name the kind of GPU). One MLX cannot use
                here is an error listing those it can; MLX's global default device is left as it
                is. There are no Accelerator objects.
            devices: How many devices, which in MLX means processes, one device each, started by
                ``mlx.launch``: ``"auto"`` or ``-1`` take what was launched; an int, ``"N"``,
                ``"0,1"`` or a list of indices must count 1 or the launched processes.
            deterministic: Accepted and checked as Lightning does (``None``, a bool or
                ``"warn"``); no effect, MLX has no torch deterministic-algorithms switch.
            benchmark: Accepted and checked as Lightning does (``None`` or a bool); no effect, MLX
                has no cuDNN autotuning switch.
            inference_mode: Accepted and checked as Lightning does (a bool); no effect: evaluation
                computes no gradients either way.
            max_time: Stop training after this much time: ``"DD:HH:MM:SS"``, a
                ``datetime.timedelta`` or a dict of its arguments (``{"hours": 2}``). It adds a
                ``Timer`` checked after every step, unless you gave one.
        """
        given = with_defaults(
            callbacks, enable_progress_bar, enable_checkpointing, enable_model_summary, max_time
        )
        root = os.fspath(default_root_dir) if default_root_dir is not None else os.getcwd()
        kwargs = {k: v for k, v in locals().items() if k in _ARG_NAMES}
        self.args = make_args(
            {**kwargs, "default_root_dir": root}, any(isinstance(c, Timer) for c in given)
        )
        if seed is not None:  # before the model is built, so its initial weights are reproducible
            seed_everything(seed)
        self.hooks = CallbackList(self, given)
        self.callbacks = self.hooks.callbacks
        self.loggers = default_loggers(logger, root, self.args.enable_logging)
        self.progress = Progress()
        self.metrics = MetricStore()
        self.module: TrainModule | None = None
        self.optimizer: optim.Optimizer | None = None
        self.lr_schedule_name: str | None = None
        self.state_fn: str | None = None
        self.current_hook: str | None = None
        self.sanity_checking = False
        self.validation_has_run = False
        self.samples_trained = (
            0  # by this fit's calls, all ranks together (the summary's samples/s)
        )
        self.fit_seconds = 0.0
        self.eval_batches_total: float = (
            math.inf
        )  # batches of the running validation/test/predict pass
        self.is_last_batch = False
        self.update_pending = False
        self.ckpt_path: str | None = None
        self.rng_base = 0
        self.num_training_batches: float = math.inf
        self.num_val_batches: float = 0
        self.val_check_batch: float = math.inf
        self._estimated_max_steps: int | None = None
        self._fetcher: Fetcher | None = None
        self._train_loader: Any = None
        self._train_results = Results()
        self._eval_results: Results | None = None
        self._interrupt = interrupt_handler()
        self._warned: set[str] = set()
        self.skipped_batches = 0  # non-finite batches skipped (on_nonfinite_loss="skip")
        self.failing = False  # an exception is unwinding fit (no collectives from here on)

    def __getattr__(self, name: str) -> Any:  # the arguments: trainer.max_epochs, .precision, ...
        if name in _ARG_NAMES:
            return getattr(self.__dict__["args"], name)
        raise AttributeError(f"'Trainer' object has no attribute {name!r}")

    # -- what callbacks and modules read -------------------------------------------------------------
    current_epoch = property(lambda self: self.progress.current_epoch)
    global_step = property(lambda self: self.progress.global_step)
    logger = property(lambda self: self.loggers[0] if self.loggers else None)
    log_dir = property(lambda self: self.logger.log_dir if self.logger is not None else None)
    checkpoint_callback = property(
        lambda self: next((c for c in self.callbacks if isinstance(c, ModelCheckpoint)), None)
    )
    callback_metrics = property(lambda self: self.metrics.floats(self.metrics.callback))
    logged_metrics = property(lambda self: self.metrics.floats(self.metrics.logged))
    progress_bar_metrics = property(lambda self: self.metrics.floats(self.metrics.progress_bar))

    should_stop = property(
        lambda self: self.progress.should_stop,
        lambda self, v: setattr(self.progress, "should_stop", bool(v)),
    )

    @property
    def max_steps(self) -> int | None:
        """max_steps, or in fit ``max_epochs x updates per epoch`` (Lightning: estimated_stepping_batches)."""
        return self.args.max_steps if self.args.max_steps is not None else self._estimated_max_steps

    estimated_stepping_batches = max_steps

    world_size = property(lambda self: distributed.world_size())  # data-parallel: distributed.py
    global_rank = property(lambda self: distributed.global_rank())
    is_global_zero = property(lambda self: distributed.global_rank() == 0)

    enable_validation = property(lambda self: self.num_val_batches > 0)

    def warn_once(self, message: str) -> None:
        if message not in self._warned:
            self._warned.add(message)
            warnings.warn(message, stacklevel=3)

    def loader_state(self) -> dict | None:
        return self._fetcher.loader_state() if self._fetcher is not None else None

    def save_checkpoint(self, path: str) -> str:
        """Write a complete checkpoint directory at ``path`` (see mlx_audio.train.checkpoint)."""
        return checkpoint.capture(self, path)

    # -- logging ---------------------------------------------------------------------------------------
    def log_from_hook(self, name: str, value: Any, options: LogOptions) -> None:
        """``self.log`` from a hook (not a step): into the running loop's results."""
        results = self._eval_results if self._eval_results is not None else self._train_results
        results.add({name: value}, {name: options}, 1)
        if self._eval_results is None and options.on_step:  # eval values are published at its end
            self.metrics.update(*results.step_metrics())

    def send_to_loggers(self, metrics: dict[str, Any], step: int) -> None:
        if not self.is_global_zero:
            return
        values = {
            **self.metrics.floats(metrics),
            **{k: v for k, v in metrics.items() if type(v) is int},
        }
        for logger in self.loggers:
            logger.log_metrics(values, step=step)

    def log_metrics(
        self, metrics: dict[str, Any], step: int | None = None, epoch_end: bool = False
    ) -> None:
        """Send metrics to every logger as Lightning does: without a ``step``, ``epoch`` is added
        and the step is the number of updates so far (at an epoch's end: the last update's)."""
        if not metrics:
            return
        self.metrics.logged.update(metrics)
        if step is None:
            metrics = {**metrics, "epoch": self.current_epoch}
            step = self.progress.batches_that_stepped - (1 if epoch_end else 0)
        self.send_to_loggers(metrics, step)

    def should_update_logs(self) -> bool:
        return (
            self.progress.batches_that_stepped + 1
        ) % self.log_every_n_steps == 0 or self.should_stop

    # -- fit -------------------------------------------------------------------------------------------
    def fit(
        self,
        model: TrainModule,
        train_dataloaders: Iterable[Any],
        val_dataloaders: Iterable[Any] | None = None,
        ckpt_path: str | None = None,
    ) -> None:
        """Train ``model``; ``ckpt_path`` resumes (a checkpoint directory, a ``last`` link,
        ``"last"`` or ``"best"``). Resuming a finished run does no training."""
        if not isinstance(model, TrainModule):
            raise TypeError(f"Trainer.fit needs a TrainModule, got {type(model).__name__}")
        if train_dataloaders is None or not hasattr(train_dataloaders, "__iter__"):
            raise TypeError(
                f"train_dataloaders must be an iterable of batches, got {type(train_dataloaders).__name__}"
            )
        self.module = model
        model.trainer = self
        self.state_fn = "fit"
        if mx.default_device() == mx.cpu:
            report_slow_blas("mlx_audio.train")  # once, through logging, with the fix
        started = time.perf_counter()
        try:
            with self._interrupt, device_scope(self.accelerator):
                ran = self._fit(model, train_dataloaders, val_dataloaders, ckpt_path)
        except BaseException as error:
            self.failing = True
            self.hooks.on_exception(error)
            finalize_loggers(
                self.loggers,
                "interrupted" if isinstance(error, (KeyboardInterrupt, SystemExit)) else "failed",
            )
            clearer = distributed.explain_lost_peer(error)
            if clearer is not None:
                raise clearer from error
            raise
        finally:
            self.fit_seconds += time.perf_counter() - started
            for loader in {
                id(x): x for x in (train_dataloaders, self._train_loader)
            }.values():  # a shard too
                if hasattr(loader, "close") and is_stateful_loader(loader):
                    loader.close()
            self._fetcher = None
        self.failing = False
        finalize_loggers(self.loggers, "success")
        if ran:
            print_summary(self)

    def _fit(
        self, model: TrainModule, train_loader: Any, val_loader: Any, ckpt_path: str | None
    ) -> bool:
        self.rng_base = (
            self.seed
            if self.seed is not None
            else distributed.broadcast_int(int(np.random.randint(0, 2**31 - 1)))
        )
        train_loader, val_loader = seed_and_shard(self, train_loader, val_loader)
        self._train_loader = train_loader
        self._val_loader = val_loader
        self.num_training_batches = distributed.smallest(
            limited(length_of(train_loader), self.limit_train_batches)
        )
        self.num_val_batches = (
            distributed.smallest(limited(length_of(val_loader), self.limit_val_batches))
            if val_loader is not None
            else 0
        )
        self.val_check_batch = val_check_batch(
            self.args, self.num_training_batches, self.num_val_batches
        )
        per_epoch = (
            math.ceil(self.num_training_batches / self.accumulate_grad_batches)
            if math.isfinite(self.num_training_batches)
            else None
        )
        self._estimated_max_steps = (
            self.max_epochs * per_epoch
            if self.max_epochs is not None and per_epoch is not None
            else None
        )
        if self.precision.endswith("-true") and self.precision != "32-true":
            model.set_dtype(compute_dtype(self.precision))
        self.optimizer, self.lr_schedule_name = configure_optimizer(model)
        self.ckpt_path = (
            checkpoint.resolve_ckpt_path(self, ckpt_path) if ckpt_path is not None else None
        )
        self.hooks.setup("fit")
        resumed = checkpoint.restore(self, ckpt_path) if ckpt_path is not None else None
        model.update(distributed.broadcast(model.parameters()))  # data-parallel: rank 0's weights
        assert self.optimizer is not None
        clip_val, clip_algorithm = clipping(
            self.gradient_clip_val, self.gradient_clip_algorithm, self.callbacks
        )
        builder = StepBuilder(
            model,
            self.optimizer,
            self.accumulate_grad_batches,
            clip_val,
            clip_algorithm,
            self.precision,
            self.compile,
            strict_nonfinite=self.on_nonfinite_loss == "raise",
        )
        self.runner = StepRunner(builder, self.accumulate_grad_batches)
        if resumed is not None:
            checkpoint.restore_accumulator(self.runner, resumed["_dir"], resumed, model)
        for logger in self.loggers if self.is_global_zero else []:
            logger.log_hyperparams(hparams(self))
        self.hooks.on_fit_start()
        progress = self.progress
        mid_epoch = (
            resumed is not None and not progress.epoch_finished and progress.batch_in_epoch > 0
        )
        if self.enable_validation and self.num_sanity_val_steps > 0 and not mid_epoch:
            sanity_check(self)
        mid_epoch = progress.settle_resume(mid_epoch, self.num_training_batches)
        if self._fit_done():
            if self.num_training_batches == 0:
                rank_zero_info(
                    "Trainer: no training batches (an empty train loader or limit_train_batches=0); nothing to train."
                )
            elif resumed is not None:
                rank_zero_info(
                    f"Trainer: the run in {resumed['_dir']} already finished (epoch {self.current_epoch}, step {self.global_step}); nothing to do."
                )
            ran = False
        else:
            model.train()
            self.hooks.on_train_start()
            while not self._fit_done():
                self._run_epoch(resumed if mid_epoch else None)
                mid_epoch = False
            check_nonfinite(self)
            self.hooks.on_train_end()
            ran = True
        self.hooks.on_fit_end()
        self.hooks.teardown("fit")
        return ran

    def _run_epoch(self, resumed: dict | None) -> None:
        progress = self.progress
        self._fetcher = Fetcher(
            self._train_loader,
            self.num_training_batches,
            progress.batch_in_epoch,
            (resumed or {}).get("loader"),
            progress.current_epoch,
        )
        self.is_last_batch = False
        if resumed is None:
            progress.epoch_finished = False
            self.hooks.on_train_epoch_start()
        while not self._epoch_done():
            fetched = self._fetcher.next()
            if fetched is None:
                break
            batch, self.is_last_batch = fetched
            batch_idx = progress.batch_in_epoch
            progress.batch_in_epoch += 1
            progress.total_batches += 1
            self._train_results.step = {}
            if self.hooks.on_train_batch_start(batch, batch_idx) == -1:
                self.is_last_batch = True  # Lightning: -1 skips the rest of the epoch
                break
            self._train_batch(batch, batch_idx)
            if self._validation_due():
                self._validate()
            if self.update_pending:
                progress.batches_that_stepped += 1
                self.update_pending = False
                if self._interrupt.requested:
                    raise self._interrupt.stop(self.global_step)
        progress.epoch_finished = (
            True  # a checkpoint written from here on resumes at the next epoch
        )
        check_nonfinite(self)
        self.hooks.on_train_epoch_end()
        progress.should_stop = distributed.any_rank(
            progress.should_stop
        )  # every rank stops together
        self._train_results.sync(distributed.reduce_totals)
        log, callback, bar = self._train_results.epoch_metrics()
        self.metrics.update(log, callback, bar)
        self.log_metrics(log, epoch_end=True)
        self._train_results = Results()
        progress.current_epoch += 1
        progress.batch_in_epoch = 0
        progress.epoch_finished = False

    def _train_batch(self, batch: Any, batch_idx: int) -> None:
        assert self.optimizer is not None and self.module is not None
        update = not self._should_accumulate()
        if update:
            self.hooks.on_before_optimizer_step(self.optimizer)
        seed_step(self.rng_base, self.global_step, self.runner.micro)
        loss, metrics, logged, updated, finite = self.runner.run(
            batch, batch_idx, update, (self.global_step, self.current_epoch, batch_idx)
        )
        self.progress.global_step += int(updated)
        if not finite:
            nonfinite_step(self, batch_idx, float(loss.item()))
        self.update_pending = update
        values = {"train_loss": loss, **{f"train_{k}": v for k, v in metrics.items()}, **logged}
        options = {k: LogOptions(on_step=True, on_epoch=False, prog_bar=True) for k in values}
        options.update(self.module._log_options)
        samples = batch_size_of(batch)
        self.samples_trained += samples * self.runner.builder.world
        self._train_results.add(values, options, samples)
        self.metrics.update(*self._train_results.step_metrics())
        self.hooks.on_train_batch_end({"loss": loss, **metrics}, batch, batch_idx)
        self.metrics.update(*self._train_results.step_metrics())
        if update and self.should_update_logs():
            check_nonfinite(self)  # the device's flags are read here, not at every step
            self.log_metrics(self._train_results.step_metrics()[0])

    # -- when things happen (Lightning's rules) ----------------------------------------------------------
    def _can_stop_early(self) -> bool:
        return self.current_epoch >= self.min_epochs and self.global_step >= self.min_steps

    def _fit_done(self) -> bool:
        if self.num_training_batches == 0:
            return True
        if self.args.max_steps is not None and self.global_step >= self.args.max_steps:
            return True
        if self.max_epochs is not None and self.current_epoch >= self.max_epochs:
            return True
        return self.should_stop and self._can_stop_early()

    def _epoch_done(self) -> bool:
        steps_done = self.args.max_steps is not None and self.global_step >= self.args.max_steps
        if (
            steps_done
            or self.progress.batch_in_epoch >= self.num_training_batches
            or self.is_last_batch
        ):
            return True
        return self.should_stop and self._can_stop_early()

    def _should_accumulate(self) -> bool:
        ready = self.progress.batch_in_epoch
        final = ready >= self.num_training_batches or self.is_last_batch
        return ready % self.accumulate_grad_batches != 0 and not final

    def validation_due(self) -> bool:
        """Whether this epoch validates at all (``check_val_every_n_epoch``)."""
        n = self.check_val_every_n_epoch
        return self.enable_validation and (n is None or (self.current_epoch + 1) % n == 0)

    def _validation_due(self) -> bool:
        if not self.validation_due():
            return False
        if math.isinf(self.val_check_batch):
            return self.is_last_batch or (self.should_stop and self._can_stop_early())
        if self.should_stop and self._can_stop_early():
            return True
        count = (
            self.progress.total_batches
            if self.check_val_every_n_epoch is None
            else self.progress.batch_in_epoch
        )
        return count % self.val_check_batch == 0

    # -- evaluation (evaluation.py) ---------------------------------------------------------------------
    def _validate(self) -> None:
        check_nonfinite(self)
        evaluate(self, self._val_loader, "validation", self.num_val_batches)
        self.validation_has_run = True
        self.progress.should_stop = distributed.any_rank(self.progress.should_stop)

    def validate(
        self, model: TrainModule, dataloaders: Iterable[Any], ckpt_path: str | None = None
    ) -> list[dict[str, float]]:
        """Validation metrics (means over the whole set, weighted by batch size), in a list."""
        return [standalone(self, model, dataloaders, "validation", ckpt_path)]

    def test(
        self, model: TrainModule, dataloaders: Iterable[Any], ckpt_path: str | None = None
    ) -> list[dict[str, float]]:
        """Test metrics (``test_step``), in a list."""
        return [standalone(self, model, dataloaders, "test", ckpt_path)]

    def predict(
        self, model: TrainModule, dataloaders: Iterable[Any], ckpt_path: str | None = None
    ) -> list[Any]:
        """``predict_step`` on every batch (eval mode), returned as a list."""
        return predict(self, model, dataloaders, ckpt_path)
