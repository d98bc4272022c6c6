"""Validation, test and predict passes of the Trainer: plain functions over the trainer's state
(eval mode, batch-size-weighted means, Lightning's hook order)."""

from __future__ import annotations

import inspect
import math
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import mlx.core as mx
import mlx.nn as nn

from . import checkpoint, distributed
from ._device import device_scope
from ._forward import call_step, make_eval_fn
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
        min(trainer.num_sanity_val_steps, trainer.num_val_batches),
    )
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
    trainer._eval_results = results = Results(training=False)
    hooks = trainer.hooks.eval_hooks(stage)
    modes = module_modes(module)
    hooks.model_eval()
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
    train_hook = "on_validation_model_train" if stage == "validation" else "on_test_model_train"
    if overridden(module, train_hook):
        hooks.model_train()
    else:
        restore_modes(module, modes)
    return trainer.metrics.floats(dict(log))


def standalone(
    trainer: Trainer, model: TrainModule, loader: Any, stage: str, ckpt_path: str | None
) -> list[dict[str, float]]:
    """``Trainer.validate`` / ``Trainer.test``: one pass, optionally from a checkpoint; its
    logged epoch values in a list, empty when the limit turns the pass off (Lightning)."""
    limit = trainer.limit_val_batches if stage == "validation" else trainer.limit_test_batches
    verb = "validate" if stage == "validation" else "test"  # Lightning's stage names
    start_run(trainer, model, stage)
    trainer.hooks.setup(verb)
    if ckpt_path is not None:
        model.load_checkpoint(checkpoint.resolve_ckpt_path(trainer, ckpt_path))
    if distributed.world_size() > 1:  # each rank evaluates its share; the metrics are reduced
        loader = seed_and_shard(trainer, loader)[0]
    with Watchdog(trainer), device_scope(trainer.accelerator):  # NOTE [accelerator and devices]
        count = distributed.smallest(limited(length_of(loader), limit))
        metrics = evaluate(trainer, loader, stage, count)
    trainer.hooks.teardown(verb)
    return [] if metrics is None else [metrics]


def predict(
    trainer: Trainer,
    model: TrainModule,
    dataloaders: Iterable[Any],
    ckpt_path: str | None = None,
    return_predictions: bool = True,
) -> list[Any] | None:
    """``predict_step`` on every batch (eval mode, each submodule's mode restored after), as a
    list, or None with ``return_predictions=False``; ``fast_dev_run=n`` runs n batches."""
    start_run(trainer, model, "predict")  # fresh metric views, as for the other stages
    trainer.hooks.setup("predict")
    if ckpt_path is not None:
        model.load_checkpoint(checkpoint.resolve_ckpt_path(trainer, ckpt_path))
    total = length_of(dataloaders)
    count = math.inf if total is None else total
    if trainer.fast_dev_run:
        count = min(count, trainer.fast_dev_run)
    trainer.eval_batches_total = count
    modes = module_modes(model)
    trainer.hooks.on_predict_model_eval()
    trainer.hooks.on_predict_start()
    trainer.hooks.on_predict_epoch_start()
    outputs = []
    with device_scope(trainer.accelerator):
        for batch_idx, batch in enumerate(dataloaders):
            if batch_idx >= count:
                break
            trainer.hooks.on_predict_batch_start(batch, batch_idx)
            output = call_step(model.predict_step, batch, mx.array(batch_idx))
            mx.eval(output)
            if return_predictions:
                outputs.append(output)
            trainer.hooks.on_predict_batch_end(output, batch, batch_idx)
    trainer.hooks.on_predict_epoch_end()
    trainer.hooks.on_predict_end()
    restore_modes(model, modes)
    trainer.hooks.teardown("predict")
    return outputs if return_predictions else None


def overridden(module: TrainModule, hook: str) -> bool:
    """Whether ``hook`` is the module's own (Lightning's ``is_overridden``): a method of a
    subclass, or a callable set on the instance (``None`` there: not overridden)."""
    method = getattr(module, hook, None)
    if method is None:
        return False
    function = getattr(inspect.unwrap(method), "__func__", method)
    return function is not getattr(TrainModule, hook)


def module_modes(module: nn.Module) -> dict[str, bool]:
    """Every submodule's train/eval mode by name (Lightning's ``_ModuleMode.capture``)."""
    return {name: sub.training for name, sub in module.named_modules()}


def restore_modes(module: nn.Module, modes: dict[str, bool]) -> None:
    """Put each submodule's own mode back as :func:`module_modes` found it, one module at a time
    (Lightning's ``_ModuleMode.restore`` sets ``mod.training``; MLX's ``train`` is recursive)."""
    for name, sub in module.named_modules():
        if name in modes:
            sub._set_training_mode(modes[name])
