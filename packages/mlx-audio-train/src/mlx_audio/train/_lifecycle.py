"""The Trainer's run lifecycle: Ctrl-C handling, logger finalization, the closing summary."""

from __future__ import annotations

import signal
import threading
from typing import Any


class LifecycleMixin:
    """Part of :class:`~mlx_audio.train.Trainer`."""

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
