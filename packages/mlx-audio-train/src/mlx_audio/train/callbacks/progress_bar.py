"""The progress bar: tqdm bars on a terminal or in a notebook, plain periodic lines elsewhere.

NOTE [no device sync in the bar]: counting batches is plain Python; the values shown (loss,
metrics, learning rate) are read from the device at most once every ``metrics_interval``
seconds, at a batch boundary, and the learning rate of a schedule is computed on a stream of
its own, so the bar never waits for the step that is running (benchmarks/trainer_overhead.py).
"""

from __future__ import annotations

import math
import os
import sys
import time
from typing import TYPE_CHECKING, Any

from .base import Callback, check_number

if TYPE_CHECKING:
    from ..module import TrainModule
    from ..trainer import Trainer


ENV_DISABLE = "MLX_AUDIO_PROGRESS_BAR"  # "0": no bar (as Trainer(enable_progress_bar=False))


def _format(metrics: dict[str, float]) -> str:
    return " ".join(f"{k}={v:.4g}" for k, v in metrics.items())


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


def _in_notebook() -> bool:
    shell = getattr(sys.modules.get("IPython"), "get_ipython", lambda: None)()
    return type(shell).__name__ == "ZMQInteractiveShell"


class _LearningRate:
    """The optimizer's learning rate as a Python float without waiting for the device."""

    def __init__(self) -> None:
        self._stream: Any = None

    def __call__(self, trainer: Trainer, synced: bool) -> float | None:
        import mlx.core as mx

        optimizer = trainer.optimizer
        if optimizer is None or "learning_rate" not in optimizer.state:
            return None
        schedule = getattr(optimizer, "_schedulers", {}).get("learning_rate")
        if schedule is None:
            return float(optimizer.learning_rate.item()) if synced else None
        if self._stream is None:
            self._stream = mx.new_stream(mx.cpu)
        with mx.stream(self._stream):  # independent of the training stream: no wait
            value = schedule(mx.array(trainer.global_step))
            mx.eval(value)
        return float(value.item())


class TQDMProgressBar(Callback):
    """Lightning's default progress bar (``TQDMProgressBar``), built on tqdm.

    - On a terminal: a bar per training epoch ("Epoch N") with percentage, elapsed/remaining
      time, it/s, samples/s, the progress-bar metrics and the learning rate; a "Validation"
      bar below it while validation runs, a "Sanity Checking" bar before training, and bars
      for ``validate``/``test``/``predict``. In a Jupyter notebook the same as widgets.
    - When stdout is not a terminal (logs, CI): no control characters; one plain line every
      ``plain_interval`` seconds and at each epoch's end.
    - ``refresh_rate``: redraw every N batches (0 disables the bar); ``leave``: keep each
      epoch's finished bar on screen. ``Trainer(enable_progress_bar=False)`` or the
      environment variable ``MLX_AUDIO_PROGRESS_BAR=0`` turn it off (``TQDM_DISABLE=1`` too).
    - Values come from the device at most once per ``metrics_interval`` seconds (NOTE [no
      device sync in the bar]).
    """

    def __init__(
        self,
        refresh_rate: int = 1,
        leave: bool = False,
        stream: Any = None,
        metrics_interval: float = 1.0,
        plain_interval: float = 15.0,
    ) -> None:
        check_number("TQDMProgressBar", "refresh_rate", refresh_rate, minimum=0, integer=True)
        check_number("TQDMProgressBar", "metrics_interval", metrics_interval, minimum=0)
        check_number("TQDMProgressBar", "plain_interval", plain_interval, minimum=0)
        self.refresh_rate = refresh_rate
        self.leave = leave
        self.stream = stream
        self.metrics_interval = metrics_interval
        self.plain_interval = plain_interval
        self._lr = _LearningRate()
        self._bars: dict[str, Any] = {}
        self._postfix: dict[str, str] = {}
        self._metrics_at = -math.inf
        self._line_at = 0.0
        self._started = 0.0
        self._done = 0
        self._samples_before = 0  # trainer.samples_trained when the epoch started
        self._samples = 0
        self._epoch_mode = "off"  # ``mode`` at the epoch's start: not re-read at every batch
        self._eval_done = 0

    # -- where it draws -----------------------------------------------------------------------
    @property
    def out(self) -> Any:
        return self.stream if self.stream is not None else sys.stdout

    @property
    def enabled(self) -> bool:
        return self.refresh_rate > 0 and os.environ.get(ENV_DISABLE, "1") != "0"

    @property
    def mode(self) -> str:
        """``"tty"``, ``"notebook"``, ``"plain"`` or ``"off"``."""
        if not self.enabled:
            return "off"
        if self.stream is None and _in_notebook():
            return "notebook"
        isatty = getattr(self.out, "isatty", None)
        return "tty" if isatty is not None and isatty() else "plain"

    def _bar(self, name: str, total: float, desc: str, leave: bool = True) -> Any:
        if self.mode == "notebook":
            from tqdm.notebook import tqdm
        else:
            from tqdm import tqdm
        self._close(name)
        bar = tqdm(
            total=total if math.isfinite(total) else None,
            desc=desc,
            leave=leave,
            file=self.out if self.mode == "tty" else None,
            position=1 if name == "eval" else 0,
            dynamic_ncols=True,
            smoothing=0,
            unit="it",
            mininterval=0.1,
        )
        self._bars[name] = bar
        return bar

    def _close(self, name: str) -> None:
        bar = self._bars.pop(name, None)
        if bar is not None:
            bar.close()

    # -- values ---------------------------------------------------------------------------------
    def _read(self, trainer: Trainer, force: bool = False) -> dict[str, str]:
        """The values to show; from the device only every ``metrics_interval`` s (or ``force``)."""
        now = time.perf_counter()
        synced = force or now - self._metrics_at >= self.metrics_interval
        if synced:
            self._metrics_at = now
            shown = {
                k.removeprefix("train_"): v
                for k, v in trainer.progress_bar_metrics.items()
                if not k.startswith("val_")
            }
            loss = trainer.last_loss  # the step's loss, also when nothing logs it
            if "loss" not in shown and loss is not None and trainer.state_fn == "fit":
                shown = {"loss": float(loss.item()), **shown}  # type: ignore[arg-type]
            self._postfix = {k: f"{v:.4g}" for k, v in shown.items()}
            version = getattr(trainer.logger, "version", None) if trainer.loggers else None
            if version is not None:
                self._postfix = {"v_num": str(version), **self._postfix}
        lr = self._lr(trainer, synced)
        if lr is not None:
            self._postfix["lr"] = f"{lr:.3g}"
        return self._postfix

    def _samples_per_second(self) -> str:
        return f"{self._samples / max(time.perf_counter() - self._started, 1e-9):.1f} samples/s"

    def _rates(self) -> str:
        elapsed = max(time.perf_counter() - self._started, 1e-9)
        return f"{self._done / elapsed:.2f} it/s, {self._samples_per_second()}"

    # -- training -------------------------------------------------------------------------------
    def on_train_start(self, trainer: Trainer, module: TrainModule) -> None:
        if trainer.is_global_zero and self.mode in ("tty", "notebook") and not self.leave:
            self._bar(
                "train", math.inf, "Epoch"
            )  # one bar, reset every epoch (Lightning's leave=False)
        if trainer.progress.batch_in_epoch:  # resumed mid-epoch: no on_train_epoch_start comes
            self.on_train_epoch_start(trainer, module)

    def on_train_epoch_start(self, trainer: Trainer, module: TrainModule) -> None:
        self._started = time.perf_counter()
        self._line_at = self._started
        self._done = 0
        self._samples_before = trainer.samples_trained
        self._samples = 0
        self._epoch_mode = self.mode
        if not trainer.is_global_zero or self._epoch_mode not in ("tty", "notebook"):
            return
        bar = (
            self._bar("train", math.inf, "Epoch")
            if self.leave or "train" not in self._bars
            else self._bars["train"]
        )
        total = trainer.num_training_batches
        bar.reset(total=total if math.isfinite(total) else None)
        bar.set_description(f"Epoch {trainer.current_epoch}")
        if trainer.progress.batch_in_epoch:  # resumed in the middle of the epoch
            bar.update(trainer.progress.batch_in_epoch)

    def on_train_batch_end(
        self, trainer: Trainer, module: TrainModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        self._done += 1
        self._samples = (
            trainer.samples_trained - self._samples_before
        )  # counted by the loop already
        if (
            not trainer.is_global_zero
            or self._epoch_mode == "off"
            or self._done % self.refresh_rate
        ):
            return
        bar = self._bars.get("train")
        if bar is not None:
            values = ", ".join(f"{k}={v}" for k, v in self._read(trainer).items())
            bar.set_postfix_str(f"{self._samples_per_second()}, {values}", refresh=False)
            bar.update(trainer.progress.batch_in_epoch - bar.n)
        elif (
            self._epoch_mode == "plain"
            and time.perf_counter() - self._line_at >= self.plain_interval
            and not trainer.is_last_batch  # the epoch's end writes that line, once
        ):
            self._plain_line(trainer)

    def _plain_line(self, trainer: Trainer, force: bool = False) -> None:
        self._line_at = time.perf_counter()
        total = trainer.num_training_batches
        done = trainer.progress.batch_in_epoch
        where = (
            f"{done}/{total} ({done / total:.0%})" if math.isfinite(total) and total else f"{done}"
        )
        values = ", ".join(f"{k}={v}" for k, v in self._read(trainer, force).items())
        elapsed = _clock(self._line_at - self._started)
        self.out.write(
            f"Epoch {trainer.current_epoch}: {where} [{elapsed}, {self._rates()}] {values}\n"
        )
        self.out.flush()

    def on_train_epoch_end(self, trainer: Trainer, module: TrainModule) -> None:
        if not trainer.is_global_zero or self.mode == "off":
            return
        bar = self._bars.get("train")
        if bar is not None:
            values = ", ".join(f"{k}={v}" for k, v in self._read(trainer, force=True).items())
            bar.set_postfix_str(f"{self._samples_per_second()}, {values}")
            if self.leave:
                self._close("train")
        elif self.mode == "plain":
            self._plain_line(trainer, force=True)
        val = {k: v for k, v in trainer.callback_metrics.items() if k.startswith("val_")}
        if val and trainer.validation_has_run:
            self._write(f"epoch {trainer.current_epoch} validation: {_format(val)}")

    def _write(self, line: str) -> None:
        """A line above the bars (tqdm.write keeps them intact)."""
        if self._bars:
            from tqdm import tqdm

            tqdm.write(line, file=self.out if self.mode == "tty" else None)
        else:
            self.out.write(line + "\n")
            self.out.flush()

    def on_train_end(self, trainer: Trainer, module: TrainModule) -> None:
        self._close("train")

    def on_exception(self, trainer: Trainer, module: TrainModule, exception: BaseException) -> None:
        for name in list(self._bars):
            self._close(name)

    # -- validation, test, predict, sanity check ------------------------------------------------------
    def _eval_start(self, trainer: Trainer, desc: str) -> None:
        self._eval_done = 0
        if trainer.is_global_zero and self.mode in ("tty", "notebook"):
            self._bar("eval", getattr(trainer, "eval_batches_total", math.inf), desc, leave=False)

    def _eval_step(self, trainer: Trainer) -> None:
        self._eval_done += 1
        bar = self._bars.get("eval")
        if bar is not None and self._eval_done % max(self.refresh_rate, 1) == 0:
            bar.update(self._eval_done - bar.n)

    def on_validation_start(self, trainer: Trainer, module: TrainModule) -> None:
        self._eval_start(trainer, "Sanity Checking" if trainer.sanity_checking else "Validation")

    def on_validation_batch_end(
        self,
        trainer: Trainer,
        module: TrainModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        self._eval_step(trainer)

    def on_validation_end(self, trainer: Trainer, module: TrainModule) -> None:
        self._close("eval")

    def on_test_start(self, trainer: Trainer, module: TrainModule) -> None:
        self._eval_start(trainer, "Testing")

    def on_test_batch_end(
        self,
        trainer: Trainer,
        module: TrainModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        self._eval_step(trainer)

    def on_test_end(self, trainer: Trainer, module: TrainModule) -> None:
        self._close("eval")

    def on_predict_start(self, trainer: Trainer, module: TrainModule) -> None:
        self._eval_start(trainer, "Predicting")

    def on_predict_batch_end(
        self,
        trainer: Trainer,
        module: TrainModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        self._eval_step(trainer)

    def on_predict_end(self, trainer: Trainer, module: TrainModule) -> None:
        self._close("eval")


ProgressBar = TQDMProgressBar  # the name the Trainer's defaults and earlier releases use
