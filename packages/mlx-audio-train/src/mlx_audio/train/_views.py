"""What callbacks and modules read from the Trainer (Lightning's read-only trainer properties):
progress, loggers, callbacks found by type, the live metric views and the data-parallel world.
:class:`~mlx_audio.train.Trainer` inherits them; the state they read is set in its ``__init__``."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from . import distributed
from ._arguments import Argument
from .callbacks import Callback, EarlyStopping, ModelCheckpoint, ProgressBar

if TYPE_CHECKING:
    from mlx.optimizers import Optimizer

    from mlx_audio.loggers import Logger

    from ._arguments import TrainerArgs
    from ._metrics import MetricStore, Results
    from ._progress import Progress
    from .module import TrainModule


class TrainerViews:
    """Read-only views over the Trainer's state (Lightning's trainer properties)."""

    progress: Progress
    metrics: MetricStore
    callbacks: list[Callback]
    loggers: list[Logger]
    module: TrainModule | None
    optimizer: Optimizer | None
    args: TrainerArgs
    num_val_batches: list[float]
    num_test_batches: list[float]
    _interrupted: bool
    _train_results: Results
    _eval_results: Results | None

    # -- the arguments, resolved (_arguments.py; Trainer.args) ---------------------------------------------------
    min_epochs = Argument[int]()
    min_steps = Argument[int]()
    max_epochs = Argument[int | None]()  # as given; None resolves in fit (Lightning's)
    accumulate_grad_batches = Argument[int]()
    gradient_clip_val = Argument[float | None]()
    gradient_clip_algorithm = Argument[str]()
    precision = Argument[str]()
    val_check_interval = Argument[int | float | str | timedelta | dict[str, int]]()
    val_check_time_interval = Argument[float | None]()
    check_val_every_n_epoch = Argument[int | None]()
    limit_train_batches = Argument[int | float]()
    limit_val_batches = Argument[int | float]()
    limit_test_batches = Argument[int | float]()
    num_sanity_val_steps = Argument[float]()
    fast_dev_run = Argument[int]()
    log_every_n_steps = Argument[int]()
    enable_progress_bar = Argument[bool]()
    enable_checkpointing = Argument[bool]()
    enable_logging = Argument[bool]()
    default_root_dir = Argument[str]()
    seed = Argument[int | None]()
    compile = Argument[bool]()
    on_nonfinite_loss = Argument[str]()
    use_distributed_sampler = Argument[bool]()
    collective_timeout = Argument[float]()
    accelerator = Argument[str]()
    devices = Argument[int | str | list[int]]()
    deterministic = Argument[bool | str | None]()
    benchmark = Argument[bool | None]()
    inference_mode = Argument[bool]()
    overfit_batches = Argument[int | float]()
    limit_predict_batches = Argument[int | float]()
    reload_dataloaders_every_n_epochs = Argument[int]()
    num_nodes = Argument[int]()
    strategy = Argument[str]()
    sync_batchnorm = Argument[bool]()
    barebones = Argument[bool]()
    detect_anomaly = Argument[bool]()

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

    # -- callbacks found by type (Lightning: the first one, and all of them) ----------------------
    @property
    def checkpoint_callback(self) -> ModelCheckpoint | None:
        return next(iter(self.checkpoint_callbacks), None)

    @property
    def checkpoint_callbacks(self) -> list[ModelCheckpoint]:
        return [c for c in self.callbacks if isinstance(c, ModelCheckpoint)]

    @property
    def early_stopping_callback(self) -> EarlyStopping | None:
        return next(iter(self.early_stopping_callbacks), None)

    @property
    def early_stopping_callbacks(self) -> list[EarlyStopping]:
        return [c for c in self.callbacks if isinstance(c, EarlyStopping)]

    @property
    def progress_bar_callback(self) -> ProgressBar | None:
        return next((c for c in self.callbacks if isinstance(c, ProgressBar)), None)

    # -- the module and the run's state -----------------------------------------------------------
    @property
    def lightning_module(self) -> TrainModule | None:
        """The module of the running (or last) ``fit``/``validate``/``test``/``predict``."""
        return self.module

    @property
    def model(self) -> TrainModule | None:
        """Lightning's ``trainer.model`` (there the module maybe wrapped for DDP): the module;
        data-parallel here wraps nothing."""
        return self.module

    @property
    def optimizers(self) -> list[Optimizer]:
        """Lightning's list of optimizers: the one ``configure_optimizers`` returned."""
        return [self.optimizer] if self.optimizer is not None else []

    @property
    def epoch_limit(self) -> int | None:
        """``max_epochs`` for the loops: None for no limit (``-1``; ``None`` before ``fit``
        resolves it)."""
        epochs = self.args.max_epochs
        return None if epochs is None or epochs == -1 else epochs

    @property
    def interrupted(self) -> bool:
        """Whether the last ``fit`` ended on an exception, Ctrl-C or SIGTERM (Lightning's
        ``TrainerStatus.INTERRUPTED``)."""
        return self._interrupted

    @property
    def num_sanity_val_batches(self) -> list[float]:
        """Batches the sanity check runs per validation loader (Lightning's)."""
        steps = self.num_sanity_val_steps
        return [min(steps, n) for n in self.num_val_batches]

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
