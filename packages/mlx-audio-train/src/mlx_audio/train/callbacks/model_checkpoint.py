"""ModelCheckpoint: Lightning's rules for when to save, which k to keep, and ``last``.

When: every ``every_n_train_steps`` optimizer steps (at the batch's end), else after
validation every ``every_n_epochs`` epochs (default 1) -- at the training epoch's end when
validation runs once per epoch or not at all, at the validation's end otherwise. Never twice at
one step, never during the sanity check or ``fast_dev_run``. Which: with ``monitor`` the
``save_top_k`` best (-1 all); without, the newest (``save_top_k`` 1) or all (-1).

Deliberate differences from Lightning (docs/api/training.md): checkpoints are directories (see
mlx_audio.train.checkpoint), ``save_last`` defaults to True (the tutorial resumes from
``./checkpoints/last``), and ``last`` is a symlink to the newest checkpoint -- when that step
kept no top-k checkpoint, to a ``last-epoch=E-step=S`` directory written for it. ``last`` moves
at every save trigger (Lightning moves it at an epoch's end only when a top-k checkpoint was
saved there), so resuming from ``last`` never repeats training.
"""

from __future__ import annotations

import math
import os
import warnings
from typing import TYPE_CHECKING, Any

from .._checkpoint_files import CheckpointNames, logger_ckpt_dir, resolve_ckpt_dir, unique_path
from .._status import rank_zero_info
from ..checkpoint import clean_leftovers, delete_checkpoint, point_last
from .base import MonitorCallback, check_mode, check_number

if TYPE_CHECKING:
    from ..module import TrainModule
    from ..trainer import Trainer


class ModelCheckpoint(CheckpointNames, MonitorCallback):
    """Saves checkpoint directories under ``dirpath``; by default, as in Lightning, the first
    logger's ``save_dir/name/version_N/checkpoints``, without loggers ``default_root_dir/checkpoints``.

    ``filename`` is a template such as ``"{epoch:02d}-{val_loss:.3f}"`` (metric names are
    inserted: ``epoch=03-val_loss=0.412``); a name already on disk gets ``-v1``, ``-v2``.
    ``save_on_exception`` writes one more checkpoint when training stops on an exception or
    Ctrl-C (then ``last`` points at it when it stopped at a step boundary).
    """

    def __init__(
        self,
        dirpath: str | None = None,
        filename: str | None = None,
        monitor: str | None = None,
        mode: str = "min",
        save_top_k: int = 1,
        save_last: bool = True,
        every_n_train_steps: int | None = None,
        every_n_epochs: int | None = None,
        save_on_train_epoch_end: bool | None = None,
        save_on_exception: bool = False,
        auto_insert_metric_name: bool = True,
        verbose: bool = False,
    ) -> None:
        check_mode("ModelCheckpoint", mode)
        check_number("ModelCheckpoint", "save_top_k", save_top_k, minimum=-1, integer=True)
        for name, value in (
            ("every_n_train_steps", every_n_train_steps),
            ("every_n_epochs", every_n_epochs),
        ):
            check_number("ModelCheckpoint", name, value, minimum=0, allow_none=True, integer=True)
        if every_n_train_steps is None and every_n_epochs is None:
            every_n_train_steps = 0
            every_n_epochs = 1
        if (every_n_train_steps or 0) >= 1 and (every_n_epochs or 0) >= 1:
            raise ValueError(
                "ModelCheckpoint: every_n_train_steps and every_n_epochs are mutually exclusive"
            )
        if monitor is not None and (not isinstance(monitor, str) or not monitor):
            raise ValueError(
                f"ModelCheckpoint: monitor must be a metric name or None, got {monitor!r}"
            )
        if monitor is None and save_top_k not in (-1, 0, 1):
            raise ValueError(
                f"ModelCheckpoint(save_top_k={save_top_k}, monitor=None) is not a valid configuration: "
                "without a monitor there is no quantity to rank; use save_top_k 1 (newest) or -1 (all)"
            )
        self.dirpath = (
            os.path.realpath(os.path.expanduser(os.fspath(dirpath)))
            if dirpath
            else dirpath  # None: resolved in setup; "": the working directory, as in Lightning
        )
        self._given_dirpath = self.dirpath  # the state key's (stable across logger versions)
        self._logger_root: tuple[str, str] | None = (
            None  # dirpath=None: the logger's save_dir, name
        )
        self.filename = filename
        self.monitor = monitor
        self.mode = mode
        self.save_top_k = save_top_k
        self.save_last = save_last
        self.every_n_train_steps = every_n_train_steps or 0
        self.every_n_epochs = every_n_epochs or 0
        self.save_on_train_epoch_end = save_on_train_epoch_end
        self.save_on_exception = save_on_exception
        self.auto_insert_metric_name = auto_insert_metric_name
        self.verbose = verbose
        self.best_k_models: dict[str, float] = {}
        self.kth_best_model_path = ""
        self.kth_value = self.worst
        self.best_model_path = ""
        self.best_model_score: float | None = None
        self.last_model_path = ""  # dirpath/last once it exists (Lightning's last.ckpt)
        self.current_score: float | None = None  # the monitored value at the last top-k check
        self._last_target = ""  # the checkpoint `last` links to
        self._last_global_step_saved = 0  # nothing to save before the first step
        self._defer_to_validation = False
        self._own_last: list[str] = []  # last-only directories this callback wrote
        self._written_now = ""  # the checkpoint written last in this fit
        self._writes = True
        self._doomed: list[str] = []  # superseded checkpoints, deleted once `last` moved on
        self._resumed_from: str | None = None

    @property
    def state_key(self) -> str:
        return (
            f"ModelCheckpoint{{monitor={self.monitor}, mode={self.mode}, "
            f"dirpath={self._given_dirpath}}}"
        )

    # -- when ------------------------------------------------------------------------------------
    def setup(self, trainer: Trainer, module: TrainModule, stage: str) -> None:
        self._written_now = ""
        self._doomed = []
        self._resumed_from = trainer.ckpt_path
        if self.dirpath is None:  # NOTE [default checkpoint directory]
            under = logger_ckpt_dir(trainer)
            self._logger_root = (under[0], under[1]) if under else None
            self.dirpath = resolve_ckpt_dir(trainer)
        self._writes = trainer.is_global_zero  # data-parallel: rank 0 alone touches the files
        if self._writes and stage == "fit":  # validate/test/predict touch no files (Lightning)
            clean_leftovers(self.dirpath)  # crashed runs' half-written or half-deleted ones

    def _skip(self, trainer: Trainer) -> bool:
        return (
            bool(trainer.fast_dev_run)
            or trainer.state_fn != "fit"
            or trainer.sanity_checking
            or self._last_global_step_saved == trainer.global_step
        )

    def _on_epoch_end_only(self, trainer: Trainer) -> bool:
        """Lightning's ``_should_save_on_train_epoch_end``."""
        if self.save_on_train_epoch_end is not None:
            return self.save_on_train_epoch_end
        if trainer.val_check_time_interval is not None:  # time-based: at validation's end
            return False
        if trainer.check_val_every_n_epoch != 1:
            return False
        if not sum(trainer.num_val_batches):
            return True
        return trainer.val_check_interval == 1.0

    def on_train_batch_end(
        self, trainer: Trainer, module: TrainModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        n = self.every_n_train_steps
        if n < 1 or trainer.global_step % n != 0:
            return
        metrics = self._candidates(trainer)
        if self.monitor is not None and self.monitored_value(metrics) is None:
            self._defer_to_validation = True
            return
        if (
            self.monitor is not None
            and not self._on_epoch_end_only(trainer)
            and trainer.is_last_batch
        ):
            if trainer.enable_validation and trainer.validates_this_epoch():
                self._defer_to_validation = True
                return
        if not self._skip(trainer):
            self._save_topk(trainer, metrics)
            self._save_last(trainer, metrics)
            self._flush()

    def on_train_epoch_end(self, trainer: Trainer, module: TrainModule) -> None:
        if not self._skip(trainer) and self._on_epoch_end_only(trainer):
            self._epoch_save(trainer)

    def on_validation_end(self, trainer: Trainer, module: TrainModule) -> None:
        if self._skip(trainer) or self._on_epoch_end_only(trainer):
            return
        if self._defer_to_validation:
            metrics = self._candidates(trainer)
            self._save_topk(trainer, metrics)
            self._save_last(trainer, metrics)
            self._flush()
            self._defer_to_validation = False
            return
        self._epoch_save(trainer)

    def _epoch_save(self, trainer: Trainer) -> None:
        metrics = self._candidates(trainer)
        if self.every_n_epochs >= 1 and (trainer.current_epoch + 1) % self.every_n_epochs == 0:
            self._save_topk(trainer, metrics)
        self._save_last(trainer, metrics)  # always (Lightning: only after a top-k save)
        self._flush()

    def on_train_end(self, trainer: Trainer, module: TrainModule) -> None:
        if (
            self.save_last
            and not self._written_now
            and not trainer.fast_dev_run
            and trainer.global_step
        ):
            self._save_last(trainer, self._candidates(trainer))
            self._flush()

    def on_exception(self, trainer: Trainer, module: TrainModule, exception: BaseException) -> None:
        preempted = isinstance(exception, SystemExit)  # SIGTERM: always save, resumable
        if (
            not (self.save_on_exception or preempted)
            or trainer.optimizer is None
            or trainer.fast_dev_run
        ):
            return
        if trainer.sanity_checking:
            return
        if self._last_global_step_saved == trainer.global_step:
            if preempted and self._written_now:  # this step is on disk already: point `last` at it
                self._point_last(self._written_now)
            return
        kind = {
            True: "preempted",
            False: "interrupted" if isinstance(exception, KeyboardInterrupt) else "exception",
        }[preempted]
        path = unique_path(
            os.path.join(
                self._dir, f"{kind}-epoch={trainer.current_epoch}-step={trainer.global_step}"
            )
        )
        self._write(trainer, path)
        if (self.save_last or preempted) and isinstance(
            exception, (KeyboardInterrupt, SystemExit)
        ):  # a clean step boundary
            self._point_last(path)

    # -- which -----------------------------------------------------------------------------------
    @property
    def _dir(self) -> str:
        assert self.dirpath is not None, "ModelCheckpoint.dirpath is set in setup()"
        return self.dirpath

    def _candidates(self, trainer: Trainer) -> dict[str, float]:
        metrics = dict(trainer.callback_metrics)
        metrics["epoch"] = int(metrics["epoch"]) if "epoch" in metrics else trainer.current_epoch
        metrics["step"] = int(metrics["step"]) if "step" in metrics else trainer.global_step
        return metrics

    def _save_topk(self, trainer: Trainer, metrics: dict[str, float]) -> None:
        if self.save_top_k == 0:
            return
        if self.monitor is None:  # the same name again replaces the previous one (Lightning)
            previous = self.best_model_path
            path = unique_path(os.path.join(self._dir, self.format_name(metrics)), previous)
            self.best_model_path = path
            if path == previous and self._writes:
                delete_checkpoint(previous)
            self._write(trainer, path)
            if self.save_top_k == 1 and previous and previous != path:
                self._remove(previous)
            return
        current = self.monitored_value(metrics)
        if current is None:
            message = (
                f"ModelCheckpoint(monitor={self.monitor!r}) could not find the monitored key in the "
                f"logged metrics: {sorted(metrics)}. HINT: is it logged (a val_ metric needs val_dataloaders)?"
            )
            if trainer.validation_has_run:
                raise ValueError(message)
            trainer.warn_once(message)
            return
        if (
            self.save_top_k == -1
            or len(self.best_k_models) < self.save_top_k
            or self.is_better(current, self.kth_value)
        ):
            self._update_best_and_save(trainer, current, metrics)
        elif self.verbose:
            rank_zero_info(
                f"ModelCheckpoint: {self.monitor}={current:.6g} was not in the top {self.save_top_k}"
            )

    def _update_best_and_save(
        self, trainer: Trainer, current: float, metrics: dict[str, float]
    ) -> None:
        k = len(self.best_k_models) + 1 if self.save_top_k == -1 else self.save_top_k
        removed = None
        if len(self.best_k_models) == k and k > 0:
            removed = self.kth_best_model_path
            self.best_k_models.pop(removed)
        if math.isnan(current):
            current = self.worst  # NaN ranks last (Lightning)
        self.current_score = current
        path = unique_path(os.path.join(self._dir, self.format_name(metrics)), removed)
        self.best_k_models[path] = current
        if len(self.best_k_models) == k:
            pick_worst = max if self.mode == "min" else min
            self.kth_best_model_path = pick_worst(
                self.best_k_models, key=self.best_k_models.__getitem__
            )
            self.kth_value = self.best_k_models[self.kth_best_model_path]
        pick_best = min if self.mode == "min" else max
        self.best_model_path = pick_best(self.best_k_models, key=self.best_k_models.__getitem__)
        self.best_model_score = self.best_k_models[self.best_model_path]
        if self.verbose:
            rank_zero_info(f"ModelCheckpoint: {self.monitor}={current:.6g}, saving {path}")
        if removed is not None and removed == path:  # the same name again: replace it
            if self._writes:
                delete_checkpoint(removed)
            removed = None
        self._write(trainer, path)
        if removed is not None:
            self._remove(removed)

    def _save_last(self, trainer: Trainer, metrics: dict[str, float]) -> None:
        if not self.save_last:
            return
        previous = self._last_target
        on_disk = os.path.isdir(self._written_now) or not self._writes
        just_saved = self._last_global_step_saved == trainer.global_step and on_disk
        if just_saved:  # `last` links to the checkpoint written at this step
            target = self._written_now
        else:  # no top-k checkpoint at this step: write one for `last` alone
            target = unique_path(
                os.path.join(self._dir, f"last-epoch={metrics['epoch']}-step={metrics['step']}")
            )
            self._write(trainer, target)
            self._own_last.append(target)
        self._point_last(target)
        if previous in self._own_last and previous != target:
            self._own_last.remove(previous)
            self._remove(previous)

    # -- on disk ---------------------------------------------------------------------------------
    def _write(self, trainer: Trainer, path: str) -> None:
        trainer.save_checkpoint(path)
        self._last_global_step_saved = trainer.global_step
        self._written_now = path

    def _point_last(self, target: str) -> None:
        self._last_target = target
        self.last_model_path = os.path.join(self._dir, "last")
        if self._writes:
            point_last(self._dir, target)

    def _remove(self, path: str) -> None:
        """Delete ``path`` once ``last`` has moved on (after this save; see :meth:`_flush`)."""
        self._doomed.append(path)

    def _flush(self) -> None:
        """Delete superseded checkpoints: only in ``dirpath``, never the one resumed from or the
        one ``last`` points at."""
        for path in self._doomed if self._writes else []:
            if os.path.dirname(os.path.abspath(path)) != os.path.abspath(self._dir):
                continue
            if self._resumed_from and os.path.realpath(self._resumed_from) == os.path.realpath(
                path
            ):
                continue
            if os.path.realpath(os.path.join(self._dir, "last")) == os.path.realpath(path):
                continue
            delete_checkpoint(path)
        self._doomed = []

    def state_dict(self) -> dict[str, Any]:
        return {
            "monitor": self.monitor,
            "dirpath": self.dirpath,
            "best_k_models": self.best_k_models,
            "kth_best_model_path": self.kth_best_model_path,
            "kth_value": self.kth_value,
            "best_model_path": self.best_model_path,
            "best_model_score": self.best_model_score,
            "last_model_path": self.last_model_path,
            "last_target": self._last_target,
            "current_score": self.current_score,
            "own_last": self._own_last,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("dirpath", self.dirpath) != self.dirpath:  # Lightning: starts fresh
            warnings.warn(
                f"The dirpath has changed from {state.get('dirpath')!r} to {self.dirpath!r}, therefore"
                " `best_model_score`, `kth_best_model_path`, `kth_value`, `last_model_path` and"
                " `best_k_models` won't be reloaded. Only `best_model_path` will be reloaded.",
                stacklevel=2,
            )
            self.best_model_path = state.get("best_model_path", "")
            return
        self.best_k_models = {p: float(s) for p, s in state.get("best_k_models", {}).items()}
        self.kth_best_model_path = state.get("kth_best_model_path", "")
        self.kth_value = float(state.get("kth_value", self.kth_value))
        self.best_model_path = state.get("best_model_path", "")
        self.best_model_score = state.get("best_model_score")
        self.current_score = state.get("current_score")
        self.last_model_path = state.get("last_model_path", "")
        self._last_target = state.get("last_target", self.last_model_path)  # older: the target
        if self._last_target:
            self.last_model_path = os.path.join(os.path.dirname(self._last_target), "last")
        self._own_last = [p for p in state.get("own_last", []) if os.path.isdir(p)]
