"""ModelCheckpoint: keep the best k checkpoints by a metric, and ``last`` -> the newest."""

from __future__ import annotations

import math
import os
import re
import shutil
from typing import Any

from ..checkpoint import point_last
from .base import Callback, check_mode, check_number

_FIELD = re.compile(r"\{([A-Za-z_][\w/.]*)(:[^}]*)?\}")


class ModelCheckpoint(Callback):
    """Saves checkpoint directories under ``dirpath`` (default ``default_root_dir/checkpoints``).

    ``filename`` is a template such as ``"{epoch:02d}-{val_loss:.3f}"`` (metric names are
    inserted: ``epoch=03-val_loss=0.412``). With ``monitor`` the ``save_top_k`` best are kept
    (-1 keeps all); without it, the newest ``save_top_k``. ``save_last`` (default True, unlike
    Lightning: the tutorial resumes from ``./checkpoints/last``) keeps a ``last`` symlink to the
    newest checkpoint. Saves every ``every_n_train_steps`` optimizer steps, or at the end of
    every ``every_n_epochs``-th epoch (after its validation). Pruning and ``last`` touch only
    checkpoints this callback wrote; a name already on disk from another run gets a ``-vN``
    suffix instead of being overwritten. ``save_on_exception`` writes one more checkpoint when
    training stops on an exception or Ctrl-C.
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
        save_on_exception: bool = False,
        auto_insert_metric_name: bool = True,
        verbose: bool = False,
    ) -> None:
        check_mode("ModelCheckpoint", mode)
        check_number("ModelCheckpoint", "save_top_k", save_top_k, minimum=-1, integer=True)
        check_number(
            "ModelCheckpoint",
            "every_n_train_steps",
            every_n_train_steps,
            minimum=1,
            allow_none=True,
            integer=True,
        )
        check_number(
            "ModelCheckpoint",
            "every_n_epochs",
            every_n_epochs,
            minimum=1,
            allow_none=True,
            integer=True,
        )
        if every_n_train_steps is not None and every_n_epochs is not None:
            raise ValueError(
                "ModelCheckpoint: every_n_train_steps and every_n_epochs are mutually exclusive"
            )
        if monitor is not None and (not isinstance(monitor, str) or not monitor):
            raise ValueError(
                f"ModelCheckpoint: monitor must be a metric name or None, got {monitor!r}"
            )
        self.dirpath = os.fspath(dirpath) if dirpath is not None else None
        self.filename, self.monitor, self.mode = filename, monitor, mode
        self.save_top_k, self.save_last = save_top_k, save_last
        self.every_n_train_steps, self.every_n_epochs = (
            every_n_train_steps,
            every_n_epochs or (None if every_n_train_steps else 1),
        )
        self.save_on_exception, self.auto_insert_metric_name, self.verbose = (
            save_on_exception,
            auto_insert_metric_name,
            verbose,
        )
        self.best_k_models: dict[str, float] = {}
        self.best_model_path = ""
        self.best_model_score: float | None = None
        self.last_model_path = ""
        self.written: list[str] = []
        self._last_saved: tuple[int, bool] = (-1, False)

    @property
    def state_key(self) -> str:
        return (
            f"ModelCheckpoint{{monitor={self.monitor}, mode={self.mode}, dirpath={self.dirpath}}}"
        )

    # -- hooks -------------------------------------------------------------------------------
    def setup(self, trainer: Any, module: Any, stage: str) -> None:
        if self.dirpath is None:
            self.dirpath = os.path.join(trainer.default_root_dir, "checkpoints")

    def on_train_batch_end(
        self, trainer: Any, module: Any, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        n = self.every_n_train_steps
        if n and trainer.did_update and trainer.global_step % n == 0:
            self.save(trainer)

    def on_validation_end(self, trainer: Any, module: Any) -> None:
        if (
            self.every_n_train_steps is None
            and not trainer.sanity_checking
            and not trainer.at_epoch_end
            and self.monitor is not None
        ):
            self.save(trainer)

    def on_train_epoch_end(self, trainer: Any, module: Any) -> None:
        if self.every_n_epochs and (trainer.current_epoch + 1) % self.every_n_epochs == 0:
            self.save(trainer)
        elif (
            self.every_n_train_steps
            and trainer.at_epoch_end
            and trainer.global_step % self.every_n_train_steps == 0
        ):
            self.save(
                trainer
            )  # this step ended the epoch (or was a short group's update): record it

    def on_exception(self, trainer: Any, module: Any, exception: BaseException) -> None:
        if self.save_on_exception and trainer.optimizer is not None:
            kind = "interrupted" if isinstance(exception, KeyboardInterrupt) else "exception"
            path = self._unique(
                os.path.join(
                    self.dirpath, f"{kind}-epoch={trainer.current_epoch}-step={trainer.global_step}"
                )
            )
            trainer.save_checkpoint(path)
            self.written.append(path)
            if self.save_last and isinstance(exception, KeyboardInterrupt):  # a clean step boundary
                self.last_model_path = path
                point_last(self.dirpath, path)

    # -- saving ------------------------------------------------------------------------------
    def format_name(self, trainer: Any) -> str:
        template = self.filename or "{epoch}-{step}"
        values = {
            **{k: float(v) for k, v in trainer.callback_metrics.items()},
            "epoch": trainer.current_epoch,
            "step": trainer.global_step,
        }

        def field(match: re.Match) -> str:
            key, spec = match.group(1), match.group(2) or ""
            value = values.get(key, math.nan)
            text = format(value, spec[1:]) if spec else str(value)
            return f"{key.replace('/', '_')}={text}" if self.auto_insert_metric_name else text

        return _FIELD.sub(field, template)

    def _unique(self, path: str) -> str:
        candidate, n = path, 0
        while os.path.lexists(candidate):
            n += 1
            candidate = f"{path}-v{n}"
        return candidate

    def _score(self, trainer: Any) -> float | None:
        if self.monitor is None:
            return float(trainer.global_step)
        value = trainer.callback_metrics.get(self.monitor)
        return None if value is None else float(value)

    def _better(self, a: float, b: float) -> bool:
        if math.isnan(b):
            return not math.isnan(a)
        return a < b if (self.mode == "min" and self.monitor is not None) else a > b

    def _worst(self) -> str:
        return self._worst_or_best(best=False)

    def save(self, trainer: Any) -> None:
        """Save now if this step has not been saved yet; then update ``last`` and prune."""
        position = (
            trainer.global_step,
            trainer.at_epoch_end,
        )  # an epoch's end supersedes its last step
        if position == self._last_saved or not trainer.is_global_zero or trainer.optimizer is None:
            return
        self._last_saved = position
        score = self._score(trainer)
        k = self.save_top_k
        keep = (
            score is not None
            and k != 0
            and (
                k == -1
                or len(self.best_k_models) < k
                or self._better(score, self.best_k_models[self._worst()])
            )
        )
        if not keep and not self.save_last:
            return
        path = self._unique(os.path.join(self.dirpath, self.format_name(trainer)))
        if keep:  # recorded before writing, so the checkpoint's own state already lists it
            self.best_k_models[path] = score
            if k != -1 and len(self.best_k_models) > k:
                del self.best_k_models[self._worst()]
            best = self._worst_or_best(best=True)
            self.best_model_path, self.best_model_score = best, self.best_k_models[best]
        if self.save_last:
            self.last_model_path = path
        self.written.append(path)
        trainer.save_checkpoint(path)
        if self.save_last:
            point_last(self.dirpath, path)
        if self.verbose:
            print(
                f"ModelCheckpoint: saved {path}"
                + (f" ({self.monitor}={score:.6g})" if self.monitor and score is not None else "")
            )
        self._prune()

    def _worst_or_best(self, best: bool) -> str:
        items = list(self.best_k_models.items())
        chosen = items[0]
        for path, score in items[1:]:
            if self._better(score, chosen[1]) == best:
                chosen = (path, score)
        return chosen[0]

    def _prune(self) -> None:
        """Delete checkpoints this callback wrote that are neither top-k nor ``last``."""
        keep = set(self.best_k_models) | {self.last_model_path}
        if self.save_top_k == -1:
            return
        for path in list(self.written):
            if path not in keep and not path.rsplit("/", 1)[-1].startswith(
                ("interrupted-", "exception-")
            ):
                shutil.rmtree(path, ignore_errors=True)
                self.written.remove(path)

    def state_dict(self) -> dict[str, Any]:
        return {
            "dirpath": self.dirpath,
            "best_k_models": self.best_k_models,
            "best_model_path": self.best_model_path,
            "best_model_score": self.best_model_score,
            "last_model_path": self.last_model_path,
            "written": self.written,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best_k_models = {p: float(s) for p, s in state.get("best_k_models", {}).items()}
        self.best_model_path = state.get("best_model_path", "")
        self.best_model_score = state.get("best_model_score")
        self.last_model_path = state.get("last_model_path", "")
        self.written = [p for p in state.get("written", []) if os.path.isdir(p)]
