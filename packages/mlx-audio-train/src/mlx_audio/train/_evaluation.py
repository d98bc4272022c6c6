"""Validation, test and predict passes of the Trainer: plain functions over the trainer's state
(eval mode, batch-size-weighted means, Lightning's hook order)."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import mlx.core as mx

from . import checkpoint, distributed
from ._arguments import mark_validation_end
from ._device import device_scope
from ._forward import make_eval_fn
from ._loaders import batch_size_of, length_of, limited, seed_and_shard
from ._metrics import LogOptions, Results
from ._publish import log_metrics, publish_epoch, publish_step, send_to_loggers, start_run
from ._step import TraceGuard
from ._watchdog import Watchdog
from .module import TrainModule

if TYPE_CHECKING:
    from .trainer import Trainer


def sanity_check(trainer: Trainer) -> None:
    """A few validation batches before training (``num_sanity_val_steps``); nothing is logged
    and what they put in the metric views is dropped afterwards (Lightning resets them)."""
    assert trainer._val_loader is not None  # it runs only with a val loader
    before = trainer.metrics.snapshot()
    trainer.sanity_checking = True
    trainer.hooks.on_sanity_check_start()
    evaluate(
        trainer,
        trainer._val_loader,
        "validation",
        min(trainer.num_sanity_val_steps, trainer.val_batches_total),
    )
    mark_validation_end(trainer)  # NOTE [time-based validation]
    trainer.hooks.on_sanity_check_end()
    trainer.sanity_checking = False
    trainer.metrics.restore(before)


def evaluate(
    trainer: Trainer, loader: Iterable[Any], stage: str, count: float
) -> dict[str, float] | None:
    """One pass of validation or test (eval mode, metrics weighted by batch size); the epoch
    values sent to the loggers, or None when the pass is off (no batches)."""
    module = trainer.module
    assert module is not None
    if count == 0:
        return None
    prefix = "val" if stage == "validation" else "test"
    fx = "validation_step" if stage == "validation" else "test_step"
    trainer.eval_batches_total = count  # what a progress bar shows as the total
    was_training = module.training
    module.eval()
    trainer._eval_results = results = Results(training=False)
    hooks = trainer.hooks.eval_hooks(stage)
    hooks.start()
    hooks.epoch_start()
    step = make_eval_fn(module, prefix, trainer.precision, trainer.compile)
    auto_options = LogOptions(on_step=False, on_epoch=True, prog_bar=True)
    for batch_idx, batch in enumerate(loader):
        if batch_idx >= count:
            break
        results.batch_start(batch_size_of(batch))
        hooks.batch_start(batch, batch_idx)
        with TraceGuard(module, None, trainer.compile and batch_idx == 0):
            loss, metrics, logged, output, auto = step(batch, mx.array(batch_idx))
        values: dict[str, Any] = {}
        if auto:  # NOTE [two logging idioms]
            values = {f"{prefix}_{k}": v for k, v in metrics.items()}
            values = {**({f"{prefix}_loss": loss} if loss is not None else {}), **values}
        options = {k: auto_options for k in values}
        values.update(logged)
        options.update(module._log_options.get(fx, {}))
        results.add(fx, values, options, results.batch_size)
        mx.eval(list(values.values()))
        hooks.batch_end(output, batch, batch_idx)
        log = publish_step(trainer, results)
        if not trainer.sanity_checking:  # Lightning logs eval steps at the pass's batch count
            if log:
                log_metrics(trainer, log, step=trainer.eval_log_step)
            trainer.eval_log_step += 1
    results.end_batches(distributed.reduce_totals)  # every rank decides on the same values
    hooks.epoch_end()
    log = publish_epoch(trainer, results, distributed.reduce_totals)
    if not trainer.sanity_checking:
        if trainer.state_fn == "fit":
            log_metrics(trainer, log)
        elif log:
            send_to_loggers(trainer, log, trainer.progress.batches_that_stepped)
    hooks.end()
    trainer._eval_results = None
    module.train(was_training)
    return trainer.metrics.floats(dict(log))


def standalone(
    trainer: Trainer, model: TrainModule, loader: Any, stage: str, ckpt_path: str | None
) -> list[dict[str, float]]:
    """``Trainer.validate`` / ``Trainer.test``: one pass, optionally from a checkpoint; its
    logged epoch values in a list, empty when the limit turns the pass off (Lightning)."""
    limit = trainer.limit_val_batches if stage == "validation" else trainer.limit_test_batches
    start_run(trainer, model, stage)
    checkpoint.load_for_evaluation(trainer, model, ckpt_path)
    if distributed.world_size() > 1:  # each rank evaluates its share; the metrics are reduced
        loader = seed_and_shard(trainer, loader)[0]
    with Watchdog(trainer), device_scope(trainer.accelerator):  # NOTE [accelerator and devices]
        count = distributed.smallest(limited(length_of(loader), limit))
        if stage == "validation":
            trainer.num_val_batches = count
        else:
            trainer.num_test_batches = count
        metrics = evaluate(trainer, loader, stage, count)
    return [] if metrics is None else [metrics]


def predict(
    trainer: Trainer, model: TrainModule, dataloaders: Iterable[Any], ckpt_path: str | None = None
) -> list[Any]:
    """``predict_step`` on every batch (eval mode), returned as a list."""
    trainer.module = model
    model.trainer = trainer
    trainer.state_fn = "predict"
    checkpoint.load_for_evaluation(trainer, model, ckpt_path)
    was_training = model.training
    model.eval()
    total = length_of(dataloaders)
    trainer.eval_batches_total = math.inf if total is None else total
    trainer.hooks.on_predict_start()
    outputs = []
    with device_scope(trainer.accelerator):
        for batch_idx, batch in enumerate(dataloaders):
            trainer.hooks.on_predict_batch_start(batch, batch_idx)
            output = model.predict_step(batch, mx.array(batch_idx))
            mx.eval(output)
            outputs.append(output)
            trainer.hooks.on_predict_batch_end(output, batch, batch_idx)
    trainer.hooks.on_predict_end()
    model.train(was_training)
    return outputs
