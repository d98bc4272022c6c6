"""The fit loop, read top to bottom: ``run_fit`` (setup, restore, sanity check, epochs, end),
``run_epoch`` (batches, validation when due, epoch-end metrics), ``train_batch`` (one compiled
step and its logging), and the rules for when things happen (Lightning's).

Hook order (as in Lightning 2.6)::

    prepare_data -> setup -> [restore: module's on_load_checkpoint, weights, callbacks'
    on_load_checkpoint and load_state_dict] -> configure_optimizers -> [optimizer state,
    counters] -> on_fit_start -> on_sanity_check_start, val_dataloader, sanity validation,
    on_sanity_check_end -> train_dataloader (and val_dataloader if not asked yet)
    -> on_train_start (not when there is nothing to train)
    for each epoch:  on_train_epoch_start
        for each batch:  on_train_batch_start -> [on_before_optimizer_step] -> step
                         -> on_train_batch_end -> [validation] (see validate_now)
        [epoch reductions made] -> on_train_epoch_end (callbacks, module, then the
        monitors) -> epoch metrics logged
    on_train_end -> on_fit_end -> teardown

Validation: on_validation_model_eval, on_validation_start, on_validation_epoch_start, per batch
on_validation_batch_start/end, on_validation_epoch_end, (metrics logged), on_validation_end,
then each submodule's mode put back (or an overridden on_validation_model_train) (_evaluation.py).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable
from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING, Any

import numpy as np

from . import distributed
from ._anomaly import raise_anomaly
from ._arguments import (
    mark_validation_end,
    start_validation_clock,
    validation_time_due,
)
from ._ckpt_path import selected_ckpt_path
from ._data_source import prepare_data
from ._evaluation import evaluate, sanity_check
from ._fit_data import FitData
from ._forward import compute_dtype
from ._hparams import log_hyperparams
from ._lifecycle import clipping
from ._loaders import (
    EpochBatches,
    batch_size_of,
    one_pass_done,
)
from ._log_rules import LogOptions
from ._metrics import Results
from ._nonfinite import check_nonfinite, nonfinite_step
from ._publish import log_metrics, publish_epoch, publish_step, should_update_logs
from ._reload import reload_if_due
from ._resume import restore, restore_accumulator, restore_training_state
from ._rng import current_key, key_words, set_key, start_key
from ._runner import StepRunner
from ._status import rank_zero_info
from ._step import StepBuilder
from ._syncbn import sync_if_asked
from .module import TrainModule
from .profiler import on_device, profiled

if TYPE_CHECKING:
    from .trainer import Trainer


def run_fit(
    trainer: Trainer,
    model: TrainModule,
    train_loader: Iterable[Any] | None,
    val_loader: Iterable[Any] | None,
    ckpt_path: str | None,
) -> bool:
    """Everything ``Trainer.fit`` runs inside its error handling; False if nothing was trained.
    Loaders not given come from the datamodule or the module, asked for when first needed
    (NOTE [when the loaders are asked for])."""
    progress = trainer.progress
    progress.should_stop = False  # Lightning: every fit starts without a stop request
    if not progress.epoch_finished:  # a failed fit's epoch starts over (Lightning), steps kept
        progress.batch_in_epoch = 0
    trainer.given_loaders = (train_loader, val_loader)  # their source (reload_if_due)
    prepare_data(trainer)
    trainer.hooks.setup("fit")  # Lightning: setup, the restore's first half, configure_optimizers
    trainer.rng_base = (
        trainer.seed
        if trainer.seed is not None
        else distributed.broadcast_int(int(np.random.randint(0, 2**31 - 1)))
    )
    # NOTE [when the loaders are asked for]: as Lightning, the validation loaders at the sanity
    # check (after on_sanity_check_start), the train loader after it, before on_train_start;
    # earlier only when something reads trainer.estimated_stepping_batches (configure_optimizers)
    data = FitData(trainer, model, train_loader, val_loader)
    trainer.last_reload = None  # reload_dataloaders_every_n_epochs counts from here
    sync_if_asked(trainer, model)  # sync_batchnorm: before the step is built
    dtype = compute_dtype(trainer.precision)
    if trainer.precision.endswith("-true") and dtype is not None:  # bf16-true, 16-true
        model.set_dtype(dtype)
    trainer.ckpt_path = selected_ckpt_path(trainer, ckpt_path)  # None: a fresh start
    resumed = restore(trainer, trainer.ckpt_path) if trainer.ckpt_path is not None else None
    trainer.optimizer, trainer.lr_schedule_name = trainer.hooks.configure_optimizers()
    trainer.hooks.optimizer_configured()
    if resumed is not None:
        restore_training_state(trainer, resumed)
    model.update(distributed.broadcast(model.parameters()))  # data-parallel: rank 0's weights
    assert trainer.optimizer is not None
    clip_val, clip_algorithm = clipping(
        trainer.gradient_clip_val, trainer.gradient_clip_algorithm, trainer.callbacks
    )
    builder = StepBuilder(
        model,
        trainer.optimizer,
        trainer.accumulate_grad_batches,
        clip_val,
        clip_algorithm,
        trainer.precision,
        trainer.compile,
        strict_nonfinite=trainer.on_nonfinite_loss == "raise",
    )
    trainer.runner = StepRunner(builder, trainer.accumulate_grad_batches)
    if resumed is not None:
        restore_accumulator(trainer.runner, resumed["_dir"], resumed, model)
    trainer.hooks.on_fit_start()
    log_hyperparams(trainer)  # after on_fit_start, as Lightning
    progress = trainer.progress
    iteration_based = trainer.args.max_steps is not None
    mid_epoch = resumed is not None and (
        (not progress.epoch_finished and progress.batch_in_epoch > 0)
        or (progress.epoch_finished and progress.epoch_cut and iteration_based)
    )
    if data.val_defined() and trainer.num_sanity_val_steps > 0 and not mid_epoch:
        sanity_check(trainer, data.val)
    data.train()
    data.val()  # Lightning's on_run_start: the val loaders too, for the progress bar
    data.finish()
    mid_epoch = progress.settle_resume(mid_epoch, trainer.num_training_batches, iteration_based)
    if fit_done(trainer):
        if trainer.num_training_batches == 0:
            rank_zero_info(
                "Trainer: no training batches (an empty train loader or limit_train_batches=0); nothing to train."
            )
        elif resumed is not None:
            rank_zero_info(
                f"Trainer: the run in {resumed['_dir']} already finished (epoch {trainer.current_epoch}, step {trainer.global_step}); nothing to do."
            )
        ran = False
    else:
        warn_eval_modules(model)  # Lightning leaves each submodule's mode as the user set it
        start_validation_clock(trainer)  # NOTE [time-based validation]
        trainer.hooks.on_train_start()
        start_key(  # NOTE [the run's key]: once per fit, never per step
            trainer.rng_base,
            trainer.global_rank,
            trainer.global_step,
            trainer.runner.micro,
            resumed.get("mlx_key") if resumed is not None else None,
        )
        while not fit_done(trainer):
            reload_if_due(trainer)
            with profiled(trainer, "run_training_epoch"):
                run_epoch(trainer, resumed if mid_epoch else None)
            mid_epoch = False
        check_nonfinite(trainer)
        trainer.hooks.on_train_end()
        ran = True
    trainer.hooks.on_fit_end()
    trainer.hooks.teardown("fit")
    return ran


def run_epoch(trainer: Trainer, resumed: dict[str, Any] | None) -> None:
    progress = trainer.progress
    trainer._batches = EpochBatches(
        trainer._train_loader,
        trainer.num_training_batches,
        progress.batch_in_epoch,
        (resumed or {}).get("loader"),
        progress.current_epoch,
    )
    trainer.is_last_batch = False
    if resumed is None:
        progress.epoch_finished = False
        trainer.hooks.on_train_epoch_start()
    exhausted = False
    while not epoch_done(trainer):
        with profiled(trainer, "[_TrainingEpochLoop].train_dataloader_next"):
            fetched = trainer._batches.next()
        if fetched is None:
            exhausted = True
            break
        batch, trainer.is_last_batch = fetched
        batch_idx = progress.batch_in_epoch
        progress.batch_in_epoch += 1
        progress.total_batches += 1
        samples = batch_size_of(batch)
        trainer._train_results.batch_start(samples)
        if trainer.hooks.on_train_batch_start(batch, batch_idx) == -1:
            trainer.is_last_batch = True  # Lightning: -1 skips the rest of the epoch
            break
        with profiled(trainer, "run_training_batch"):
            with ranks_waiting(trainer, "the train step"):  # NOTE [collective waits]
                train_batch(trainer, batch, batch_idx, samples)
            on_device(trainer)  # NOTE [device time in the profile] (profiler.py)
        if validate_now(trainer):
            validate_in_fit(trainer)
        if trainer.update_pending:
            progress.batches_that_stepped += 1
            trainer.update_pending = False
            assert trainer.runner is not None
            with ranks_waiting(trainer, "the train step"):
                agreed = trainer.runner.agreed_stop()  # NOTE [agreed stop]
            trainer._interrupt.at_boundary(agreed, trainer.global_step)
    if trainer._batches.cut_short and "cut short" not in trainer._warned:
        trainer._warned.add("cut short")  # once, with this rank's numbers
        warnings.warn(
            f"rank {trainer.global_rank} of {trainer.world_size}: its training loader still had "
            f"batches when another rank's ended, after {progress.batch_in_epoch} in epoch "
            f"{progress.current_epoch}: every rank trains only as many batches per epoch as the "
            "shortest has (an unsized loader's epoch ends on every rank when it ends on one)",
            stacklevel=2,
        )
    progress.epoch_finished = True  # a checkpoint written from here on resumes at the next epoch
    # ... unless batches were left (max_steps, a stop request): NOTE [an epoch cut short]
    progress.epoch_cut = not (
        exhausted
        or trainer.is_last_batch
        or progress.batch_in_epoch >= trainer.num_training_batches
    )
    check_nonfinite(trainer)
    results = trainer._train_results
    results.end_batches(distributed.reduce_totals)  # NOTE [live metric views]: before the hooks
    trainer.hooks.on_train_epoch_end()
    progress.should_stop = distributed.any_rank(progress.should_stop)  # every rank stops together
    log = publish_epoch(trainer, results, distributed.reduce_totals)
    results.reset_metrics()  # NOTE [logged Metric objects]
    log_metrics(trainer, log, epoch_end=True)
    trainer._train_results = Results()
    progress.current_epoch += 1
    progress.batch_in_epoch = 0
    progress.epoch_finished = False
    progress.epoch_cut = False


_AUTO = LogOptions(on_step=True, on_epoch=False, prog_bar=True)  # a returned value's (frozen)


def ranks_waiting(trainer: Trainer, what: str) -> AbstractContextManager[Any]:
    """``distributed.waiting`` where there are other ranks to wait for (one process: nothing)."""
    runner = trainer.runner
    if runner is not None and runner.builder.world == 1:
        return _NOTHING
    return distributed.waiting(what)


_NOTHING = nullcontext()


def train_batch(trainer: Trainer, batch: Any, batch_idx: int, samples: int) -> None:
    runner = trainer.runner
    assert trainer.optimizer is not None and trainer.module is not None and runner is not None
    update = not should_accumulate(trainer)
    if update:
        trainer.hooks.on_before_optimizer_step(trainer.optimizer)
    where = (trainer.global_step, trainer.current_epoch, batch_idx)
    loss, metrics, logged, updated, finite = runner.run(
        batch, batch_idx, update, where, trainer._interrupt.level
    )
    if trainer.detect_anomaly:
        raise_anomaly(trainer, batch, batch_idx, finite)
    trainer.progress.global_step += int(updated)
    if not finite:
        nonfinite_step(trainer, batch_idx, float(loss.item()))
    trainer.update_pending = update
    none = runner.builder.returned_none  # NOTE [a step that returns None]
    if none:
        trainer.warn_once(
            "`training_step` returned `None`. If this was on purpose, ignore this warning..."
        )
    else:
        trainer.last_loss = loss  # the progress bar's `loss` (NOTE [two logging idioms])
    auto = runner.builder.auto_log and not none
    values = {"train_loss": loss, **{f"train_{k}": v for k, v in metrics.items()}} if auto else {}
    options = dict.fromkeys(values, _AUTO)
    values.update(logged)
    options.update(trainer.module._log_options.get("training_step", {}))
    trainer.samples_trained += samples * runner.builder.world
    results = trainer._train_results
    results.add("training_step", values, options, samples)
    outputs = {} if none else {"loss": loss, **metrics}
    trainer.hooks.on_train_batch_end(outputs, batch, batch_idx)
    log = publish_step(trainer, results)
    if update and should_update_logs(trainer):
        check_nonfinite(trainer)  # the device's flags are read here, not at every step
        log_metrics(trainer, log)


# -- when things happen (Lightning's rules) ----------------------------------------------------------
def warn_eval_modules(model: TrainModule) -> None:
    """Lightning 2.6's warning (``_FitLoop._warn_if_modules_in_eval_mode``, its words): fit no
    longer calls ``model.train()``, so a submodule left in eval mode stays so while training."""
    in_eval = [name for name, module in model.named_modules() if not module.training]
    if in_eval:
        warnings.warn(
            f"Found {len(in_eval)} module(s) in eval mode at the start of training. This may lead"
            " to unexpected behavior during training. If this is intentional, you can ignore this"
            " warning.",
            UserWarning,
            stacklevel=4,
        )


def can_stop_early(trainer: Trainer) -> bool:
    return trainer.current_epoch >= trainer.min_epochs and trainer.global_step >= trainer.min_steps


def fit_done(trainer: Trainer) -> bool:
    if trainer.num_training_batches == 0:
        return True
    if trainer.args.max_steps is not None and trainer.global_step >= trainer.args.max_steps:
        return True
    if trainer.epoch_limit is not None and trainer.current_epoch >= trainer.epoch_limit:
        return True
    if one_pass_done(trainer):
        return True  # a generator's batches came once (check_fit_inputs warned)
    return trainer.should_stop and can_stop_early(trainer)


def epoch_done(trainer: Trainer) -> bool:
    steps_done = (
        trainer.args.max_steps is not None and trainer.global_step >= trainer.args.max_steps
    )
    if (
        steps_done
        or trainer.progress.batch_in_epoch >= trainer.num_training_batches
        or trainer.is_last_batch
    ):
        return True
    return trainer.should_stop and can_stop_early(trainer)


def should_accumulate(trainer: Trainer) -> bool:
    ready = trainer.progress.batch_in_epoch
    final = ready >= trainer.num_training_batches or trainer.is_last_batch
    return ready % trainer.accumulate_grad_batches != 0 and not final


def validate_now(trainer: Trainer) -> bool:
    """Whether to validate after this batch (``val_check_interval``, or a stop request)."""
    if not trainer.validates_this_epoch():
        return False
    if trainer.val_check_time_interval is not None:  # NOTE [time-based validation]
        return (trainer.should_stop and can_stop_early(trainer)) or validation_time_due(trainer)
    if math.isinf(trainer.val_check_batch):
        return trainer.is_last_batch or (trainer.should_stop and can_stop_early(trainer))
    if trainer.should_stop and can_stop_early(trainer):
        return True
    count = (
        trainer.progress.total_batches
        if trainer.check_val_every_n_epoch is None
        else trainer.progress.batch_in_epoch
    )
    return count % trainer.val_check_batch == 0


def validate_in_fit(trainer: Trainer) -> None:
    check_nonfinite(trainer)
    runner = trainer.runner
    assert runner is not None
    runner.held_key = current_key()  # NOTE [the run's key]: validation draws leave no trace
    words = key_words(runner.held_key)
    try:
        evaluate(trainer, trainer._val_loaders, "validation", trainer.num_val_batches)
    finally:
        runner.held_key = None
        set_key(words)
    mark_validation_end(trainer)  # NOTE [time-based validation]
    trainer.validation_has_run = True
    trainer.progress.should_stop = distributed.any_rank(trainer.progress.should_stop)
