"""Where logged values go once a loop has them: the Trainer's metric views
(``callback_metrics``, ``logged_metrics``, ``progress_bar_metrics``: a ``MetricStore``) and the
loggers (rank 0 only), with Lightning's step and ``epoch`` rules. The ``self.log`` path, start to
end, is written down in docs/contributing.md."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._metrics import LogOptions
    from .trainer import Trainer


def log_from_hook(trainer: Trainer, name: str, value: Any, options: LogOptions) -> None:
    """``self.log`` from a hook (not a step): into the running loop's results."""
    eval_results = trainer._eval_results
    results = eval_results if eval_results is not None else trainer._train_results
    results.add({name: value}, {name: options}, 1)
    if eval_results is None and options.on_step:  # eval values are published at its end
        trainer.metrics.update(*results.step_metrics())


def send_to_loggers(trainer: Trainer, metrics: dict[str, Any], step: int) -> None:
    if not trainer.is_global_zero:
        return
    values = {
        **trainer.metrics.floats(metrics),
        **{k: v for k, v in metrics.items() if type(v) is int},
    }
    for logger in trainer.loggers:
        logger.log_metrics(values, step=step)


def log_metrics(
    trainer: Trainer, metrics: dict[str, Any], step: int | None = None, epoch_end: bool = False
) -> None:
    """Send metrics to every logger as Lightning does: without a ``step``, ``epoch`` is added
    and the step is the number of updates so far (at an epoch's end: the last update's)."""
    if not metrics:
        return
    trainer.metrics.logged.update(metrics)
    if step is None:
        metrics = {**metrics, "epoch": trainer.current_epoch}
        step = trainer.progress.batches_that_stepped - (1 if epoch_end else 0)
    send_to_loggers(trainer, metrics, step)


def should_update_logs(trainer: Trainer) -> bool:
    """Whether this update's step metrics go to the loggers (``log_every_n_steps``)."""
    steps = trainer.progress.batches_that_stepped + 1
    return steps % trainer.log_every_n_steps == 0 or trainer.should_stop
