"""Where logged values go once a loop has them: the Trainer's metric views
(``callback_metrics``, ``logged_metrics``, ``progress_bar_metrics``: a ``MetricStore``, live as in
Lightning: NOTE [live metric views]) and the loggers (rank 0 only), with Lightning's step and
``epoch`` rules. The ``self.log`` path, start to end, is written down in docs/contributing.md."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._metrics import MetricStore, Results

if TYPE_CHECKING:
    from ._log_rules import LogOptions
    from .module import TrainModule
    from .trainer import Trainer


def start_run(trainer: Trainer, model: TrainModule, state_fn: str) -> None:
    """A ``fit``, ``validate`` or ``test`` of ``model`` starts: Lightning resets the metric
    views, and the count of eval batches logged per loader (their logged step)."""
    trainer.module = model
    model.trainer = trainer
    trainer.state_fn = state_fn
    trainer.metrics = MetricStore()
    trainer._train_results = Results()
    trainer.eval_log_steps = {}


def log_from_hook(trainer: Trainer, fx: str, name: str, value: Any, options: LogOptions) -> None:
    """``self.log`` from hook ``fx`` (not a step): into the running loop's results."""
    trainer.active_results().add(fx, {name: value}, {name: options})


def publish_step(trainer: Trainer, results: Results) -> dict[str, Any]:
    """After a batch's hooks (Lightning's ``on_batch_end``): its step values into the Trainer's
    views; returns what the loggers would get."""
    log, callback, bar = results.metrics(on_step=True)
    trainer.metrics.update(log, callback, bar)
    return log


def publish_epoch(trainer: Trainer, results: Results, reduce: Any) -> dict[str, Any]:
    """After a loop's epoch-end hooks: what they logged is synced over the ranks too, and the
    epoch values go into the Trainer's views; returns what the loggers get."""
    results.sync(reduce)
    log, callback, bar = results.metrics(on_step=False)
    trainer.metrics.update(log, callback, bar)
    return log


def send_to_loggers(trainer: Trainer, metrics: dict[str, Any], step: int) -> None:
    if not trainer.is_global_zero or not trainer.loggers:
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
    """Send metrics to every logger as Lightning does: without a ``step``, a logged ``step``
    value is the step, else the number of updates so far (at an epoch's end: the last
    update's), and ``epoch`` is added unless a value of that name was logged."""
    if not metrics:
        return
    trainer.metrics.logged.update(metrics)
    if step is None:
        metrics = dict(metrics)
        logged_step = metrics.pop("step", None)
        if logged_step is not None:
            step = int(trainer.metrics.floats({"step": logged_step})["step"])
        else:
            metrics.setdefault("epoch", trainer.current_epoch)
            step = trainer.progress.batches_that_stepped - (1 if epoch_end else 0)
    send_to_loggers(trainer, metrics, step)


def should_update_logs(trainer: Trainer) -> bool:
    """Whether this update's step metrics go to the loggers (``log_every_n_steps``)."""
    steps = trainer.progress.batches_that_stepped + 1
    return steps % trainer.log_every_n_steps == 0 or trainer.should_stop
