"""The Trainer: Lightning's arguments and attributes, and its entry points ``fit``, ``validate``,
``test`` and ``predict``, with an ``mx.compile``d step. Which module holds which part (arguments,
the fit loop, evaluation, hooks, ``self.log``): docs/contributing.md, "A map of the code"."""

from __future__ import annotations

import math
import os
import time
import warnings
from collections.abc import Iterable
from datetime import timedelta
from typing import Any, TypeVar

import mlx.core as mx
import mlx.optimizers as optim

from mlx_audio.data.support import report_slow_blas
from mlx_audio.loggers import Logger

from . import _lifecycle, checkpoint
from ._arguments import ARG_NAMES, make_args, resolve_loop_limits
from ._data_source import attach, estimated_steps
from ._device import device_scope
from ._evaluation import predict, standalone
from ._fit_loop import run_fit
from ._flags import check_barebones, resolve_flags
from ._hooks import CallbackList, with_defaults
from ._loaders import EpochBatches, check_fit_inputs, close_loaders
from ._metrics import MetricStore, Results
from ._progress import Progress
from ._publish import start_run
from ._rng import seed_everything
from ._runner import StepRunner
from ._views import TrainerViews
from ._watchdog import Watchdog
from .callbacks import Callback, Timer
from .datamodule import DataModule
from .module import TrainModule
from .profiler import Profiler, make_profiler

R = TypeVar("R")


class Trainer(TrainerViews):
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
        val_check_interval: int | float | str | timedelta | dict[str, int] | None = None,
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
        collective_timeout: float = 1800.0,
        accelerator: str = "auto",
        devices: int | str | list[int] = "auto",
        deterministic: bool | str | None = None,
        benchmark: bool | None = None,
        inference_mode: bool = True,
        max_time: str | timedelta | dict[str, int] | None = None,
        limit_predict_batches: int | float | None = None,
        overfit_batches: int | float = 0.0,
        reload_dataloaders_every_n_epochs: int = 0,
        strategy: str = "auto",
        num_nodes: int = 1,
        sync_batchnorm: bool = False,
        barebones: bool = False,
        profiler: Profiler | str | None = None,
        detect_anomaly: bool = False,
    ) -> None:
        """Lightning's ``Trainer`` arguments, with Lightning 2.6's defaults and meaning in MLX.

        Every argument is checked here (a ``ValueError`` naming it and what is valid); Lightning's
        ``None`` defaults resolve as there. Arguments that exist only here: ``seed``,
        ``compile``, ``on_nonfinite_loss``, ``collective_timeout``.

        Args:
            max_epochs: Stop after this many epochs. ``-1`` trains without an epoch limit;
                ``None`` resolves when ``fit`` runs, as in Lightning: 1000 with its warning, or
                ``-1`` when ``max_steps`` or a ``Timer`` limits the run.
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
                weights, frozen ones included, while the weights and optimizer state stay
                float32; arrays the step replaces, such as batch-norm statistics, never cast),
                ``"bf16-true"`` or ``"16-true"`` (the model itself cast). Lightning's aliases
                are taken: ``32`` and ``"32"``, ``"bf16"`` (bf16-mixed, with Lightning's
                warning); ``"16-mixed"`` (``16``, ``"16"``) becomes ``"bf16-mixed"`` with a
                warning, as Lightning does on the CPU (fp16 needs a loss scaler), and
                ``"64-true"`` is an error (MLX has no float64 on the GPU).
                ``trainer.precision`` is the full name.
            val_check_interval: How often to validate within a training epoch: a float is a
                fraction of the epoch (the default 1.0: at its end; it needs a train loader with
                a length), an int is a number of training batches, which may exceed an epoch only
                with ``check_val_every_n_epoch=None``. A time (``"DD:HH:MM:SS"``, a
                ``timedelta`` or a dict of its arguments) validates after the first batch that
                ends that long after training started or the last validation ended (Lightning
                2.6's time-based interval).
            check_val_every_n_epoch: Validate after every this many training epochs (default 1).
                ``None`` validates by training batches alone, across epochs; then
                ``val_check_interval`` must be an int.
            limit_train_batches: How much of the training loader each epoch uses: an int is a
                number of batches, a float in (0, 1] a fraction (default 1.0); per process in a
                data-parallel run. 0 (or 0.0) turns training off.
            limit_val_batches: How much of the validation loader each validation uses (int:
                batches, float: fraction, default 1.0); 0 turns validation off.
            limit_test_batches: How much of the test loader ``test`` uses (int: batches, float:
                fraction, default 1.0); 0 turns it off (``test`` then returns ``[]``).
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
            collective_timeout: In a data-parallel run, the seconds a process waits for the
                others (a step's collectives, rank 0's checkpoint) before it ends, naming the
                step and the rank it waited for: a stopped or hung rank ends the job instead of
                hanging it (default 1800: 30 minutes, Lightning's DDP timeout).
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
            limit_predict_batches: How much of the loader ``predict`` uses (int: batches, float:
                fraction, default 1.0); 0 predicts nothing (``predict`` returns None).
            overfit_batches: Train and validate on only this many (int) or this share (float)
                of the batches, the same ones every epoch: a shuffling ``DataLoader`` is rebuilt
                in order, with Lightning's warning (default 0.0: off).
            reload_dataloaders_every_n_epochs: Take new loaders from the datamodule's or the
                module's ``*_dataloader()`` every this many epochs (default 0: never).
            strategy: How the processes train together. ``"auto"`` or ``"ddp"``: data-parallel
                over what ``mlx.launch`` started; ``"single_device"``: one process; others
                (``"ddp_spawn"``, ``"fsdp"``) are a ``ValueError``.
            num_nodes: The machines the ``mlx.launch`` job spans (default 1, ``devices="auto"``).
            sync_batchnorm: Normalize each ``nn.BatchNorm`` by the global batch's statistics,
                summed across the processes (default ``False``: each its own share).
            barebones: Lightning's speed mode: no checkpoints, loggers, ``self.log``, progress
                bar, model summary or sanity check (asking for one is a ``ValueError``).
            profiler: Time the hooks and loop actions and report at the end: ``"simple"``,
                ``"advanced"`` (``cProfile``) or a profiler object (``mlx_audio.train``).
            detect_anomaly: Name where a non-finite step started (its batch re-run eagerly):
                the first module with a non-finite output, the non-finite gradients.
        """
        if check_barebones(locals()):  # Lightning's barebones: checked, then these are off
            logger = enable_checkpointing = enable_progress_bar = enable_model_summary = False
            num_sanity_val_steps, log_every_n_steps = 0, None
        given = with_defaults(
            callbacks, enable_progress_bar, enable_checkpointing, enable_model_summary, max_time
        )
        root = os.fspath(default_root_dir) if default_root_dir is not None else os.getcwd()
        kwargs = {k: v for k, v in locals().items() if k in ARG_NAMES}
        self.args = resolve_flags(
            make_args(
                {**kwargs, "default_root_dir": root}, any(isinstance(c, Timer) for c in given)
            ),
            kwargs,
        )
        self.profiler = make_profiler(profiler)
        if seed is not None:  # before the model is built, so its initial weights are reproducible
            seed_everything(seed)
        self.hooks = CallbackList(self, given)
        self.callbacks = self.hooks.callbacks
        self.loggers = _lifecycle.default_loggers(logger, root, self.args.enable_logging)
        self.progress = Progress()
        self.metrics = MetricStore()
        self.module: TrainModule | None = None
        self.datamodule: DataModule | None = None  # fit/validate/test/predict(datamodule=...)
        self.optimizer: optim.Optimizer | None = None
        self.lr_schedule_name: str | None = None
        self.state_fn: str | None = None  # "fit", "validation", "test" or "predict"
        self.current_hook: str | None = None  # the hook running now (self.log's defaults)
        self.sanity_checking = False
        self.validation_has_run = False
        self.samples_trained = 0  # by this fit's calls, all ranks together (summary's samples/s)
        self.fit_seconds = 0.0
        self.eval_batches_total: float = math.inf  # batches of the running eval/predict pass
        self.is_last_batch = False
        self.update_pending = False
        self.ckpt_path: str | None = None
        self.rng_base = 0
        self.num_training_batches: float = math.inf
        self.num_val_batches: list[float] = []  # per validation loader (Lightning)
        self.num_test_batches: list[float] = []
        self.num_predict_batches: list[float] = []
        self._interrupted = False
        self.last_val_time = 0.0  # NOTE [time-based validation]
        self.val_check_batch: float = math.inf
        self.summarize = True  # the line that ends fit
        self.last_reload: int | None = None  # the epoch fit's loaders were last loaded
        self.given_loaders: tuple[Any, Any] = (None, None)  # fit's train/val arguments
        self.runner: StepRunner | None = None  # fit's compiled step (built in run_fit)
        self.skipped_batches = 0  # non-finite batches skipped (on_nonfinite_loss="skip")
        self.failing = False  # an exception is unwinding fit (no collectives from here on)
        self._estimated_max_steps: int | None = None
        self._batches: EpochBatches | None = None  # the running epoch's batches
        self._train_loader: Iterable[Any] | None = None  # after seeding and sharding
        self._val_loaders: list[Any] = []  # after seeding and sharding
        self._train_results = Results()
        self._eval_results: Results | None = None
        self.eval_log_steps: dict[int, int] = {}  # eval batches logged per loader (their step)
        self.last_loss: mx.array | None = None  # the last training step's loss (progress bar)
        self._interrupt = _lifecycle.interrupt_handler()
        self._warned: set[str] = set()

    @property
    def max_steps(self) -> int | None:
        """max_steps, or in fit ``max_epochs x updates per epoch`` (Lightning:
        estimated_stepping_batches: it asks for the train loader if fit has not yet)."""
        return self.args.max_steps if self.args.max_steps is not None else estimated_steps(self)

    estimated_stepping_batches = max_steps

    def warn_once(self, message: str) -> None:
        if message not in self._warned:
            self._warned.add(message)
            warnings.warn(message, stacklevel=3)

    def loader_state(self) -> dict[str, Any] | None:
        return self._batches.loader_state() if self._batches is not None else None

    def save_checkpoint(self, path: str) -> str:
        """Write a complete checkpoint directory at ``path`` (see mlx_audio.train.checkpoint)."""
        return checkpoint.capture(self, path)

    # -- fit -------------------------------------------------------------------------------------------
    def fit(
        self,
        model: TrainModule,
        train_dataloaders: Iterable[Any] | DataModule | None = None,
        val_dataloaders: Iterable[Any] | None = None,
        datamodule: DataModule | None = None,
        ckpt_path: str | None = None,
    ) -> None:
        """Train ``model``; ``ckpt_path`` resumes (a checkpoint directory, a ``last`` link,
        ``"last"`` or ``"best"``). Resuming a finished run does no training. The loaders come
        from the arguments, else ``datamodule``, else the module's ``*_dataloader()`` methods;
        several validation loaders in a list or dict are validated in turn."""
        model, _, (train_dataloaders, val_dataloaders) = attach(
            self, model, datamodule, (train_dataloaders, val_dataloaders), "fit"
        )
        check_fit_inputs(self, model, train_dataloaders, val_dataloaders)
        self._interrupted = False
        self.args = resolve_loop_limits(self.args, self.callbacks)
        start_run(self, model, "fit")
        self.profile_start("fit")
        if mx.default_device() == mx.cpu:
            report_slow_blas("mlx_audio.train")  # once, through logging, with the fix
        started = time.perf_counter()
        with self._interrupt, Watchdog(self):  # NOTE [saving under the handler]
            try:
                with device_scope(self.accelerator):
                    ran = run_fit(self, model, train_dataloaders, val_dataloaders, ckpt_path)
            except BaseException as error:
                self._interrupted = True
                clearer = _lifecycle.on_fit_error(self, error)
                if clearer is not None:
                    raise clearer from error
                raise
            finally:
                self.fit_seconds += time.perf_counter() - started
                close_loaders(self, train_dataloaders)
            self.failing = False
            _lifecycle.finalize_loggers(self.loggers, "success")
        self.profiler.describe()
        if ran and self.summarize:  # the tuner's searches do not (tuner.py)
            _lifecycle.print_summary(self)

    def profile_start(self, stage: str) -> None:  # Lightning's __setup_profiler
        rank = self.global_rank if self.world_size > 1 else None
        self.profiler.setup(stage, rank, self.log_dir or self.default_root_dir)

    def profile_end(self, result: R) -> R:
        self.profiler.describe()
        return result

    def validates_this_epoch(self) -> bool:
        """Whether this epoch validates at all (``check_val_every_n_epoch``)."""
        n = self.check_val_every_n_epoch
        return self.enable_validation and (n is None or (self.current_epoch + 1) % n == 0)

    # -- evaluation (_evaluation.py) ------------------------------------------------------------
    def validate(
        self,
        model: TrainModule | None = None,
        dataloaders: Any = None,
        ckpt_path: str | None = None,
        verbose: bool = True,
        datamodule: DataModule | None = None,
    ) -> list[dict[str, float]]:
        """Validation metrics (means over the whole set, weighted by batch size), one dict per
        loader (empty when ``limit_val_batches`` is 0). ``verbose`` is accepted (no table is
        printed); the loaders come as in ``fit``."""
        model, _, (dataloaders,) = attach(self, model, datamodule, (dataloaders,), "validate")
        self.profile_start("validate")
        return self.profile_end(standalone(self, model, dataloaders, "validation", ckpt_path))

    def test(
        self,
        model: TrainModule | None = None,
        dataloaders: Any = None,
        ckpt_path: str | None = None,
        verbose: bool = True,
        datamodule: DataModule | None = None,
    ) -> list[dict[str, float]]:
        """Test metrics (``test_step``), one dict per loader (empty when
        ``limit_test_batches`` is 0)."""
        model, _, (dataloaders,) = attach(self, model, datamodule, (dataloaders,), "test")
        self.profile_start("test")
        return self.profile_end(standalone(self, model, dataloaders, "test", ckpt_path))

    def predict(
        self,
        model: TrainModule | None = None,
        dataloaders: Any = None,
        datamodule: DataModule | None = None,
        ckpt_path: str | None = None,
        return_predictions: bool | None = None,
    ) -> list[Any] | None:
        """``predict_step`` on every batch (eval mode), returned as a list (a list per loader
        with several); ``None`` with ``return_predictions=False`` (``None``, the default, is
        ``True``)."""
        model, _, (dataloaders,) = attach(self, model, datamodule, (dataloaders,), "predict")
        self.profile_start("predict")
        return self.profile_end(
            predict(self, model, dataloaders, ckpt_path, return_predictions is not False)
        )
