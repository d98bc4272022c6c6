"""Validation, test and predict passes of the Trainer: plain functions over the trainer's state
(eval mode, batch-size-weighted means, Lightning's hook order), over one loader or several in turn
(NOTE [several loaders] in _metrics.py)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import mlx.core as mx
import mlx.nn as nn

from . import distributed
from ._arguments import mark_validation_end
from ._ckpt_path import load_for_evaluation
from ._data_source import is_overridden, prepare_data, request
from ._device import device_scope
from ._forward import call_step, make_eval_fn
from ._hparams import log_hyperparams
from ._loaders import (
    batch_size_of,
    check_dataloader_idx,
    length_of,
    limited,
    seed_and_shard,
    split_loaders,
)
from ._log_rules import LogOptions
from ._metrics import Results
from ._publish import log_metrics, publish_epoch, publish_step, start_run
from ._step import TraceGuard
from ._watchdog import Watchdog
from .module import TrainModule

if TYPE_CHECKING:
    from .trainer import Trainer


def sanity_check(trainer: Trainer, setup_val: Callable[[], None]) -> None:
    """A few validation batches before training (``num_sanity_val_steps``); nothing is logged
    and what they put in the metric views is dropped afterwards (Lightning resets them). The
    validation loaders are asked for after ``on_sanity_check_start`` (``setup_val``), as
    Lightning's validation loop does."""
    before = trainer.metrics.snapshot()
    trainer.sanity_checking = True
    trainer.hooks.on_sanity_check_start()
    setup_val()
    counts = [min(trainer.num_sanity_val_steps, n) for n in trainer.num_val_batches]
    evaluate(trainer, trainer._val_loaders, "validation", counts)
    mark_validation_end(trainer)  # NOTE [time-based validation]
    trainer.hooks.on_sanity_check_end()
    trainer.sanity_checking = False
    trainer.metrics.restore(before)


_HOOKS = {
    "validation": ("validation_step", "on_validation_batch_start", "on_validation_batch_end"),
    "test": ("test_step", "on_test_batch_start", "on_test_batch_end"),
    "predict": ("predict_step", "on_predict_batch_start", "on_predict_batch_end"),
}


def evaluate(
    trainer: Trainer, loaders: list[Any], stage: str, counts: list[float]
) -> list[dict[str, float]]:
    """One pass of validation or test over each loader in turn (Lightning's sequential mode;
    eval mode, metrics weighted by batch size): the epoch values sent to the loggers, one dict
    per loader (what the epoch-end hooks logged in each), or [] when the pass is off."""
    module = trainer.module
    assert module is not None
    if sum(counts) == 0:
        return []
    several = len(loaders) > 1
    prefix = "val" if stage == "validation" else "test"
    fx = "validation_step" if stage == "validation" else "test_step"
    check_dataloader_idx(module, _HOOKS[stage], several, prefix)
    trainer._eval_results = results = Results(training=False)
    trainer.eval_batches_total = sum(counts)  # a progress bar's total: every loader's batches
    hooks = trainer.hooks.eval_hooks(stage)
    modes = module_modes(module)
    hooks.model_eval()
    hooks.start()
    hooks.epoch_start()
    per_loader: list[dict[str, Any]] = []
    for index, (loader, count) in enumerate(zip(loaders, counts)):
        idx = index if several else None
        step = make_eval_fn(module, prefix, trainer.precision, trainer.compile, idx)
        for batch_idx, batch in enumerate(loader):
            if batch_idx >= count:
                break
            eval_batch(trainer, step, fx, batch, batch_idx, idx)
        results.end_batches(distributed.reduce_totals)  # every rank decides on the same values
        per_loader.append(publish_epoch(trainer, results, distributed.reduce_totals))
    results.dataloader_idx = None  # the epoch-end hooks log for all the loaders
    hooks.epoch_end()
    at_end = publish_epoch(trainer, results, distributed.reduce_totals)
    results.reset_metrics()  # NOTE [logged Metric objects]
    log = {k: v for values in per_loader for k, v in values.items()} | at_end
    if not trainer.sanity_checking:  # with ``epoch``, at the updates so far (Lightning)
        log_metrics(trainer, log)
    hooks.end()
    trainer._eval_results = None
    train_hook = "on_validation_model_train" if stage == "validation" else "on_test_model_train"
    if is_overridden(train_hook, module, TrainModule):
        hooks.model_train()
    else:
        restore_modes(module, modes)
    return [trainer.metrics.floats(values | at_end) for values in per_loader]


def eval_batch(
    trainer: Trainer, step: Any, fx: str, batch: Any, batch_idx: int, idx: int | None
) -> None:
    """One validation/test batch: its hooks, the step, its values logged (at this loader's
    count of logged eval batches, Lightning's step for them)."""
    module, results = trainer.module, trainer._eval_results
    assert module is not None and results is not None
    hooks = trainer.hooks.eval_hooks("validation" if fx == "validation_step" else "test")
    results.batch_start(batch_size_of(batch), idx)
    hooks.batch_start(batch, batch_idx, idx)
    with TraceGuard(module, None, trainer.compile and batch_idx == 0):
        loss, metrics, logged, output, auto = step(batch, mx.array(batch_idx))
    values: dict[str, Any] = {}
    if auto:  # NOTE [two logging idioms]
        prefix = "val" if fx == "validation_step" else "test"
        values = {f"{prefix}_{k}": v for k, v in metrics.items()}
        values = {**({f"{prefix}_loss": loss} if loss is not None else {}), **values}
    auto_options = LogOptions(on_step=False, on_epoch=True, prog_bar=True)
    options = {k: auto_options for k in values}
    values.update(logged)
    options.update(module._log_options.get(fx, {}))
    results.add(fx, values, options, results.batch_size)
    mx.eval(list(values.values()))
    hooks.batch_end(output, batch, batch_idx, idx)
    log = publish_step(trainer, results)
    if not trainer.sanity_checking:  # Lightning logs eval steps at the pass's batch count
        seen = trainer.eval_log_steps.get(idx or 0, 0)
        if log:
            log_metrics(trainer, log, step=seen)
        trainer.eval_log_steps[idx or 0] = seen + 1


def standalone(
    trainer: Trainer, model: TrainModule, given: Any, stage: str, ckpt_path: str | None
) -> list[dict[str, float]]:
    """``Trainer.validate`` / ``Trainer.test``: one pass over each loader, optionally from a
    checkpoint; the logged epoch values in a list, one dict per loader, empty when the limit turns
    the pass off (Lightning)."""
    limit = trainer.limit_val_batches if stage == "validation" else trainer.limit_test_batches
    start_run(trainer, model, stage)
    entry = "validate" if stage == "validation" else "test"
    prepare_data(trainer)
    trainer.hooks.setup(entry)
    log_hyperparams(trainer)
    load_for_evaluation(trainer, model, ckpt_path)
    if limit == 0:  # Lightning asks for no loader then
        trainer.hooks.teardown(entry)
        return []
    loaders = split_loaders(request(trainer, given, "val" if entry == "validate" else "test", True))
    if distributed.world_size() > 1:  # each rank evaluates its share; the metrics are reduced
        loaders = seed_and_shard(trainer, *loaders)
    counts = [distributed.smallest(limited(length_of(x), limit)) for x in loaders]
    if stage == "validation":
        trainer.num_val_batches = counts
    else:
        trainer.num_test_batches = counts
    with Watchdog(trainer), device_scope(trainer.accelerator):  # NOTE [accelerator and devices]
        results = evaluate(trainer, loaders, stage, counts)
    trainer.hooks.teardown(entry)
    return results


def predict(
    trainer: Trainer,
    model: TrainModule,
    given: Any,
    ckpt_path: str | None = None,
    return_predictions: bool = True,
) -> list[Any] | None:
    """``predict_step`` on every batch (eval mode, each submodule's mode restored after), as a
    list (with several loaders a list per loader, Lightning), or None with
    ``return_predictions=False``; ``fast_dev_run=n`` runs n batches of each loader."""
    start_run(trainer, model, "predict")  # fresh metric views, as for the other stages
    prepare_data(trainer)
    trainer.hooks.setup("predict")
    log_hyperparams(trainer)
    load_for_evaluation(trainer, model, ckpt_path)
    loaders = split_loaders(request(trainer, given, "predict", True))
    several = len(loaders) > 1
    check_dataloader_idx(model, _HOOKS["predict"], several, "predict")
    counts = [limited(length_of(x), trainer.limit_predict_batches) for x in loaders]
    if trainer.fast_dev_run:
        counts = [min(count, trainer.fast_dev_run) for count in counts]
    trainer.num_predict_batches = counts
    if sum(counts) == 0:  # limit_predict_batches=0: Lightning's skipped loop returns None
        trainer.hooks.teardown("predict")
        return None
    trainer.eval_batches_total = sum(counts)  # a progress bar's total
    modes = module_modes(model)
    trainer.hooks.on_predict_model_eval()
    trainer.hooks.on_predict_start()
    trainer.hooks.on_predict_epoch_start()
    outputs: list[list[Any]] = []
    with device_scope(trainer.accelerator):
        for index, (loader, count) in enumerate(zip(loaders, counts)):
            idx = index if several else None
            extra = () if idx is None else (idx,)
            outputs.append([])
            for batch_idx, batch in enumerate(loader):
                if batch_idx >= count:
                    break
                trainer.hooks.on_predict_batch_start(batch, batch_idx, idx)
                output = call_step(model.predict_step, batch, mx.array(batch_idx), *extra)
                mx.eval(output)
                if return_predictions:
                    outputs[-1].append(output)
                trainer.hooks.on_predict_batch_end(output, batch, batch_idx, idx)
    trainer.hooks.on_predict_epoch_end()
    trainer.hooks.on_predict_end()
    restore_modes(model, modes)
    trainer.hooks.teardown("predict")
    if not return_predictions:
        return None
    return outputs if several else outputs[0]


def module_modes(module: nn.Module) -> dict[str, bool]:
    """Every submodule's train/eval mode by name (Lightning's ``_ModuleMode.capture``)."""
    return {name: sub.training for name, sub in module.named_modules()}


def restore_modes(module: nn.Module, modes: dict[str, bool]) -> None:
    """Put each submodule's own mode back as :func:`module_modes` found it, one module at a time
    (Lightning's ``_ModuleMode.restore`` sets ``mod.training``; MLX's ``train`` is recursive)."""
    for name, sub in module.named_modules():
        if name in modes:
            sub._set_training_mode(modes[name])
