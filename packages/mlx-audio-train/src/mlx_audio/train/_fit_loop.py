"""The fit loop, read top to bottom: ``run_fit`` (setup, restore, sanity check, epochs, end),
``run_epoch`` (batches, validation when due, epoch-end metrics), ``train_batch`` (one compiled
step and its logging), and the rules for when things happen (Lightning's).

Hook order (as in Lightning 2.6)::

    setup -> [restore ckpt_path] -> on_fit_start -> sanity validation -> on_train_start
    for each epoch:  on_train_epoch_start
        for each batch:  on_train_batch_start -> [on_before_optimizer_step] -> step
                         -> on_train_batch_end -> [validation] (see validate_now)
        [epoch reductions made] -> on_train_epoch_end (callbacks, module, then the
        monitors) -> epoch metrics logged
    on_train_end -> on_fit_end -> teardown

Validation: on_validation_start, on_validation_epoch_start, per batch on_validation_batch_start/
end, on_validation_epoch_end, (metrics logged), on_validation_end (_evaluation.py).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import numpy as np

from . import checkpoint, distributed
from ._arguments import val_check_batch
from ._evaluation import evaluate, sanity_check
from ._forward import compute_dtype
from ._lifecycle import clipping, hparams
from ._loaders import (
    EpochBatches,
    agreed_batches,
    batch_size_of,
    length_of,
    limited,
    one_pass_done,
    report_device_data,
    seed_and_shard,
)
from ._metrics import LogOptions, Results
from ._nonfinite import check_nonfinite, nonfinite_step
from ._publish import log_metrics, publish_epoch, publish_step, should_update_logs
from ._resume import restore, restore_accumulator
from ._status import rank_zero_info
from ._step import StepBuilder, StepRunner
from .module import TrainModule

if TYPE_CHECKING:
    from .trainer import Trainer


def run_fit(
    trainer: Trainer,
    model: TrainModule,
    train_loader: Iterable[Any],
    val_loader: Iterable[Any] | None,
    ckpt_path: str | None,
) -> bool:
    """Everything ``Trainer.fit`` runs inside its error handling; False if nothing was trained."""
    trainer.rng_base = (
        trainer.seed
        if trainer.seed is not None
        else distributed.broadcast_int(int(np.random.randint(0, 2**31 - 1)))
    )
    train_loader, val_loader = seed_and_shard(trainer, train_loader, val_loader)
    trainer._train_loader = train_loader
    trainer._val_loader = val_loader
    report_device_data(train_loader, val_loader)
    trainer.num_training_batches = agreed_batches(
        trainer, limited(length_of(train_loader), trainer.limit_train_batches)
    )
    trainer.num_val_batches = (
        distributed.smallest(limited(length_of(val_loader), trainer.limit_val_batches))
        if val_loader is not None
        else 0
    )
    trainer.val_check_batch = val_check_batch(
        trainer.args, trainer.num_training_batches, trainer.num_val_batches
    )
    warn_short_epoch(trainer)
    per_epoch = (
        math.ceil(trainer.num_training_batches / trainer.accumulate_grad_batches)
        if math.isfinite(trainer.num_training_batches)
        else None
    )
    trainer._estimated_max_steps = (
        trainer.max_epochs * per_epoch
        if trainer.max_epochs is not None and per_epoch is not None
        else None
    )
    dtype = compute_dtype(trainer.precision)
    if trainer.precision.endswith("-true") and dtype is not None:  # bf16-true, 16-true
        model.set_dtype(dtype)
    trainer.optimizer, trainer.lr_schedule_name = trainer.hooks.configure_optimizers()
    trainer.ckpt_path = (
        checkpoint.resolve_ckpt_path(trainer, ckpt_path) if ckpt_path is not None else None
    )
    trainer.hooks.setup("fit")
    resumed = restore(trainer, ckpt_path) if ckpt_path is not None else None
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
    for logger in trainer.loggers if trainer.is_global_zero else []:
        logger.log_hyperparams(hparams(trainer))
    trainer.hooks.on_fit_start()
    progress = trainer.progress
    mid_epoch = resumed is not None and not progress.epoch_finished and progress.batch_in_epoch > 0
    if trainer.enable_validation and trainer.num_sanity_val_steps > 0 and not mid_epoch:
        sanity_check(trainer)
    mid_epoch = progress.settle_resume(mid_epoch, trainer.num_training_batches)
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
        model.train()
        trainer.hooks.on_train_start()
        while not fit_done(trainer):
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
    while not epoch_done(trainer):
        fetched = trainer._batches.next()
        if fetched is None:
            break
        batch, trainer.is_last_batch = fetched
        batch_idx = progress.batch_in_epoch
        progress.batch_in_epoch += 1
        progress.total_batches += 1
        trainer._train_results.batch_start(batch_size_of(batch))
        if trainer.hooks.on_train_batch_start(batch, batch_idx) == -1:
            trainer.is_last_batch = True  # Lightning: -1 skips the rest of the epoch
            break
        with distributed.waiting("the train step"):  # NOTE [collective waits]
            train_batch(trainer, batch, batch_idx)
        if validate_now(trainer):
            validate_in_fit(trainer)
        if trainer.update_pending:
            progress.batches_that_stepped += 1
            trainer.update_pending = False
            assert trainer.runner is not None
            with distributed.waiting("the train step"):
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


def train_batch(trainer: Trainer, batch: Any, batch_idx: int) -> None:
    runner = trainer.runner
    assert trainer.optimizer is not None and trainer.module is not None and runner is not None
    update = not should_accumulate(trainer)
    if update:
        trainer.hooks.on_before_optimizer_step(trainer.optimizer)
    where = (trainer.global_step, trainer.current_epoch, batch_idx)
    seed = (trainer.rng_base, trainer.global_step, runner.micro, trainer.global_rank)
    loss, metrics, logged, updated, finite = runner.run(
        batch, batch_idx, update, where, trainer._interrupt.level, seed
    )
    trainer.progress.global_step += int(updated)
    if not finite:
        nonfinite_step(trainer, batch_idx, float(loss.item()))
    trainer.update_pending = update
    trainer.last_loss = loss  # the progress bar's `loss` (NOTE [two logging idioms])
    auto = runner.builder.auto_log
    values = {"train_loss": loss, **{f"train_{k}": v for k, v in metrics.items()}} if auto else {}
    options = {k: LogOptions(on_step=True, on_epoch=False, prog_bar=True) for k in values}
    values.update(logged)
    options.update(trainer.module._log_options.get("training_step", {}))
    samples = batch_size_of(batch)
    trainer.samples_trained += samples * runner.builder.world
    results = trainer._train_results
    results.add("training_step", values, options, samples)
    trainer.hooks.on_train_batch_end({"loss": loss, **metrics}, batch, batch_idx)
    log = publish_step(trainer, results)
    if update and should_update_logs(trainer):
        check_nonfinite(trainer)  # the device's flags are read here, not at every step
        log_metrics(trainer, log)


# -- when things happen (Lightning's rules) ----------------------------------------------------------
def warn_short_epoch(trainer: Trainer) -> None:
    """Lightning 2.6's warning (``_FitLoop.setup_data``, its words): an epoch with fewer batches
    than ``log_every_n_steps`` logs no step of its own."""
    batches = trainer.num_training_batches
    if trainer.loggers and batches < trainer.log_every_n_steps and not trainer.fast_dev_run:
        if trainer.is_global_zero:
            warnings.warn(
                f"The number of training batches ({batches}) is smaller than the logging interval"
                f" Trainer(log_every_n_steps={trainer.log_every_n_steps}). Set a lower value for"
                " log_every_n_steps if you want to see logs for the training epoch.",
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
    if trainer.max_epochs is not None and trainer.current_epoch >= trainer.max_epochs:
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
    assert trainer._val_loader is not None  # validation runs only with a val loader
    evaluate(trainer, trainer._val_loader, "validation", trainer.num_val_batches)
    trainer.validation_has_run = True
    trainer.progress.should_stop = distributed.any_rank(trainer.progress.should_stop)
