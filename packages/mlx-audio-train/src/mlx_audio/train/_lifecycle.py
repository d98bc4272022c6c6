"""A run's edges: Ctrl-C handling, finalizing the loggers, the summary."""

from __future__ import annotations

import os
import signal
import threading
import warnings
from typing import TYPE_CHECKING, Any

from . import distributed
from ._status import rank_zero_info, rank_zero_warning

if TYPE_CHECKING:
    from mlx.optimizers import Optimizer

    from mlx_audio.loggers import Logger

    from .callbacks import Callback
    from .module import TrainModule
    from .trainer import Trainer


def default_loggers(
    logger: Logger | list[Logger] | tuple[Logger, ...] | bool | None, root: str, enabled: bool
) -> list[Logger]:
    """``logger=None/True``: a CSVLogger under ``root/logs``; ``False`` or ``fast_dev_run``: none."""
    if not enabled or logger is False:
        return []
    if logger is None or logger is True:
        from mlx_audio.loggers import CSVLogger

        return [CSVLogger(root, name="logs")]
    return list(logger) if isinstance(logger, (list, tuple)) else [logger]


class Preempted(SystemExit):
    """SIGTERM (a scheduler's preemption) stopped the run at a step boundary, after a resumable
    checkpoint was written; uncaught, the process exits with status 143 (128 + SIGTERM)."""

    def __init__(self, step: int) -> None:
        super().__init__(128 + signal.SIGTERM)
        self.step = step


class interrupt_handler:  # noqa: N801 (used as a context manager, like a function)
    """First Ctrl-C: a stop request, and the loop stops at the next optimizer-step boundary (a
    clean point for a checkpoint). Second Ctrl-C: KeyboardInterrupt at once. SIGTERM: the same
    stop at the next boundary, then a resumable checkpoint and :class:`Preempted`; a later SIGTERM
    is noted, never fatal, while the Trainer saves. SIGHUP (a foreground run's terminal closed) is
    taken as SIGTERM, unless it is ignored (``nohup``) or has the caller's own handler.

    NOTE [saving under the handler]: ``Trainer.fit`` keeps this handler installed until the
    checkpoint of a stop and the loggers' files are on disk (``on_fit_error``): ``mlx.launch``
    SIGTERMs the other ranks as soon as one exits, and a scheduler may signal twice. In a
    data-parallel run the request is agreed across the ranks (NOTE [agreed stop] in _step.py): a
    SIGTERM to any one rank stops every rank at the same boundary."""

    def __init__(self) -> None:
        self.requested = False
        self.terminated = False
        self.agreed = False  # every rank is stopping at this boundary: collectives still work
        self._previous: dict[int, Any] = {}

    @property
    def level(self) -> int:
        """This rank's request: 0 none, 1 Ctrl-C, 2 SIGTERM (the largest wins across ranks)."""
        return 2 if self.terminated else int(self.requested)

    def _handle(self, signum: int, frame: Any) -> None:
        if signum != signal.SIGINT:  # SIGTERM, or SIGHUP (its terminal closed): a preemption
            again = self.terminated
            self.requested = self.terminated = True
            name = signal.Signals(signum).name
            rank_zero_info(  # logging: never raises on a closed stdout (NOTE [console logging])
                f"\nTrainer: {name} received again; still stopping, exiting once the checkpoint "
                "is on disk."
                if again
                else f"\nTrainer: {name} received; saving a checkpoint after this step, then exiting."
            )
            return
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        rank_zero_info(
            "\nTrainer: Ctrl-C received; stopping after this step (press again to stop at once)."
        )

    def at_boundary(self, agreed: int, step: int) -> None:
        """At an optimizer-step boundary: raise the stop every rank agreed on (``agreed``, from
        the step; this rank's own request when it runs alone)."""
        level = agreed if distributed.world_size() > 1 else self.level
        if level > self.level:  # another rank's request (this one said nothing, or less)
            rank_zero_info(
                f"\nTrainer: {'SIGTERM' if level == 2 else 'Ctrl-C'} reached another rank; every "
                f"rank stops at step {step}"
                + (", saves a checkpoint and exits." if level == 2 else ".")
            )
        if level:
            self.agreed = True
            self.requested = True
            self.terminated = self.terminated or level == 2
            raise Preempted(step) if level == 2 else KeyboardInterrupt()

    def __enter__(self) -> interrupt_handler:
        self.requested = False
        self.terminated = False
        self.agreed = False
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
                if signum == signal.SIGHUP and signal.getsignal(signum) is not signal.SIG_DFL:
                    continue  # ignored (nohup) or the caller's own handler: left alone
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc: Any) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
        self._previous = {}


def on_fit_error(trainer: Trainer, error: BaseException) -> BaseException | None:
    """``fit`` raised ``error``: the callbacks' ``on_exception`` (ModelCheckpoint's save), the
    loggers finalized, and after a stop all ranks agreed on, one last barrier, so that no rank
    exits (and ``mlx.launch`` SIGTERMs the rest) before rank 0, the rank that writes, has its
    files on disk (NOTE [saving under the handler]). Returns a clearer error to raise, or None."""
    stop = isinstance(error, (KeyboardInterrupt, SystemExit))
    agreed = stop and trainer._interrupt.agreed
    trainer.failing = not agreed  # collectives only where every rank is here too
    trainer.hooks.on_exception(error)
    finalize_loggers(trainer.loggers, "interrupted" if stop else "failed")
    if agreed:
        distributed.barrier("rank 0's checkpoint and log files")
    return distributed.explain_lost_peer(error)


def finalize_loggers(loggers: list[Any], status: str) -> None:
    """End every logger's run; say what a logger could not deliver (NOTE [logger delivery] in
    mlx_audio.loggers.delivery). A strict logger's error ends a successful ``fit`` with it."""
    from mlx_audio.loggers import LoggerError

    strict_error: LoggerError | None = None
    for logger in loggers if distributed.global_rank() == 0 else []:  # rank 0 alone logs
        try:
            logger.finalize(status)
        except LoggerError as error:
            strict_error = strict_error or error
            if status != "success":
                rank_zero_warning(f"Trainer: {error}")
        except Exception as error:
            rank_zero_warning(
                f"Trainer: {type(logger).__name__}.finalize({status!r}) failed: {error!r}"
            )
        report = getattr(logger, "undelivered", None)
        if report:
            rank_zero_warning(f"Trainer: {report}")
    if strict_error is not None and status == "success":
        raise strict_error


def print_summary(trainer: Trainer) -> None:
    if not trainer.is_global_zero:
        return
    seconds = trainer.fit_seconds
    rate = (
        f", {trainer.samples_trained / seconds:.1f} samples/s"
        if seconds > 0 and trainer.samples_trained
        else ""
    )
    clock = f"{int(seconds // 3600)}:{int(seconds % 3600 // 60):02d}:{seconds % 60:04.1f}"
    lines = [
        f"Trainer: finished at epoch {trainer.current_epoch}, step {trainer.global_step} "
        f"({clock} h:m:s, {trainer.samples_trained} samples{rate})."
    ]
    callback = trainer.checkpoint_callback
    if callback is not None and callback.dirpath:
        best = (
            f"; best {callback.monitor}={callback.best_model_score:.6g} at {callback.best_model_path}"
            if callback.monitor and callback.best_model_score is not None
            else ""
        )
        last = os.path.realpath(callback.last_model_path) if callback.last_model_path else "none"
        lines.append(f"  checkpoints: {callback.dirpath} (last -> {last}){best}")
    for logger in trainer.loggers:
        lines.append(f"  logs: {type(logger).__name__} at {logger.log_dir}")
    rank_zero_info("\n".join(lines))


def configure_optimizer(model: TrainModule) -> tuple[Optimizer, str | None]:
    """``model.configure_optimizers()`` -> (optimizer, schedule name), checked."""
    import mlx.optimizers as optim

    from .module import NoOptimizer, OptimizerConfig

    config = model.configure_optimizers()
    if config is None:  # Lightning: a fit without an optimizer (its _MockOptimizer)
        if distributed.global_rank() == 0:
            warnings.warn(
                "`LightningModule.configure_optimizers` returned `None`, this fit will run with no"
                " optimizer",
                UserWarning,
                stacklevel=5,
            )
        return NoOptimizer(), None
    if isinstance(config, optim.Optimizer):
        config = OptimizerConfig(config)
    if not isinstance(config, OptimizerConfig):
        raise TypeError(
            f"configure_optimizers() must return an OptimizerConfig or an mlx.optimizers.Optimizer, got {type(config).__name__}"
        )
    return config.optimizer, config.lr_schedule_name


def clipping(
    value: float | None, algorithm: str, callbacks: list[Callback]
) -> tuple[float | None, str]:
    """The one gradient clipping: ``Trainer(gradient_clip_val=...)`` or a ``GradientClipper``."""
    from .callbacks import GradientClipper

    for clipper in (c for c in callbacks if isinstance(c, GradientClipper)):
        if value is not None and (clipper.max_norm != value or clipper.algorithm != algorithm):
            raise ValueError(
                f"GradientClipper(max_norm={clipper.max_norm}) conflicts with Trainer(gradient_clip_val={value}); give one"
            )
        value = clipper.max_norm
        algorithm = clipper.algorithm
    return value, algorithm
