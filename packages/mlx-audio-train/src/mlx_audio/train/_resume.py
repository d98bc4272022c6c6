"""Resuming a Trainer from a checkpoint directory (checkpoint.py writes and reads them): the
weights, optimizer state, counters, RNG states and callbacks' states, and an unfinished
accumulation group's gradient sum."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from . import distributed
from ._ckpt_path import warn_missing_callbacks
from ._status import rank_zero_info
from ._tree import flatten
from .checkpoint import (
    ACCUMULATOR_FILE,
    ARRAY_KEYS,
    MODEL_FILE,
    OPTIMIZER_FILE,
    STATE_FILE,
    CheckpointError,
    check_against,
    load_arrays,
    read_state,
    resolve_ckpt_path,
)

if TYPE_CHECKING:
    from ._runner import StepRunner
    from .module import TrainModule
    from .trainer import Trainer


def restore_accumulator(
    runner: StepRunner, directory: str, state: dict[str, Any], module: TrainModule
) -> None:
    """Put an unfinished accumulation group's gradient sum back (NOTE [update boundaries])."""
    from mlx.utils import tree_unflatten

    count = state.get("accumulated_batches", 0)
    if not isinstance(count, int) or isinstance(count, bool) or count < 0:
        raise CheckpointError(
            f"{os.path.join(directory, STATE_FILE)}: 'accumulated_batches' must be a non-negative int, got {count!r}"
        )
    if not count:
        return
    file = os.path.join(directory, ACCUMULATOR_FILE)
    loaded = load_arrays(file)
    check_against(file, loaded, dict(flatten(module.trainable_parameters())), "accumulator")
    runner.total = tree_unflatten(list(loaded.items()))
    runner.micro = count


def restore(trainer: Trainer, ckpt_path: str) -> dict[str, Any] | None:
    """Lightning's first half of a restore (``_restore_modules_and_callbacks``), before
    ``configure_optimizers``: the module's ``on_load_checkpoint``, the weights, the callbacks'
    ``on_load_checkpoint`` and ``load_state_dict``. Returns the state (None when
    ``ckpt_path="last"`` has nothing to resume yet); :func:`restore_training_state` does the
    rest once the optimizer exists."""
    path = resolve_ckpt_path(trainer, ckpt_path)
    if ckpt_path == "last" and not os.path.lexists(path):
        rank_zero_info(f"Trainer: no checkpoint at {path} yet; starting from scratch.")
        return None
    module = trainer.module
    assert module is not None, "restore runs inside fit"
    directory, state = read_state(path)
    state_file = os.path.join(directory, STATE_FILE)
    saved_world = state.get("world_size", 1)
    # a cut epoch's position is used only by a run with max_steps (NOTE [an epoch cut short])
    goes_on = not state.get("epoch_finished") or trainer.args.max_steps is not None
    if state.get("loader") is not None and goes_on and saved_world != distributed.world_size():
        raise CheckpointError(
            f"{directory} was written in the middle of an epoch by {saved_world} process(es) and this run has "
            f"{distributed.world_size()}: each rank's share of the epoch would differ. Resume with "
            f"{saved_world}, or from a checkpoint written at an epoch's end (any number of processes)"
        )
    weights_file = os.path.join(directory, MODEL_FILE)
    expected = dict(flatten(module.parameters()))
    arrays = {"state_dict": load_arrays(weights_file)}  # Lightning's checkpoint keys
    check_against(weights_file, arrays["state_dict"], expected, "model")
    for key, name in ARRAY_KEYS.items():  # NOTE [averaged weights in checkpoints]
        file = os.path.join(directory, name)
        if os.path.exists(file):
            arrays[key] = load_arrays(file)
            check_against(file, arrays[key], expected, "model")
    trainer.hooks.on_load_checkpoint_module({**state, **arrays})
    module.load_checkpoint(directory)
    datamodule = trainer.datamodule
    if datamodule is not None and type(datamodule).__qualname__ in state:  # Lightning's key
        trainer.hooks.datamodule_load_state_dict(state[type(datamodule).__qualname__])
    trainer.hooks.on_load_checkpoint_callbacks({**state, **arrays})
    warn_missing_callbacks(trainer, state)
    for callback in trainer.callbacks:
        if callback.state_key in state.get("callbacks", {}):
            try:
                callback.load_state_dict(state["callbacks"][callback.state_key])
            except (KeyError, TypeError, ValueError) as error:
                raise CheckpointError(
                    f"{state_file}: 'callbacks' -> {callback.state_key!r} is invalid: {error!r}"
                ) from None
    return {**state, "_dir": directory}


def restore_training_state(trainer: Trainer, state: dict[str, Any]) -> None:
    """The second half (Lightning's ``restore_training_state``), after ``configure_optimizers``:
    the optimizer's state, the loop's counters, the metric views and the RNG."""
    from mlx.utils import tree_unflatten

    from ._progress import Progress
    from ._rng import read_keys, set_rng_state

    module = trainer.module
    optimizer = trainer.optimizer
    assert module is not None and optimizer is not None, "restore runs inside fit"
    directory = state["_dir"]
    state_file = os.path.join(directory, STATE_FILE)
    optimizer_file = os.path.join(directory, OPTIMIZER_FILE)
    loaded = load_arrays(optimizer_file)
    optimizer.init(module.trainable_parameters())
    check_against(optimizer_file, loaded, dict(flatten(optimizer.state)), "optimizer")
    optimizer.state = tree_unflatten(list(loaded.items()))
    try:
        progress = Progress.from_state(state, state_file)
    except ValueError as error:
        raise CheckpointError(str(error)) from None  # the trainer moves past a finished epoch
    progress.should_stop = False  # Lightning: a new fit trains on (EarlyStopping may stop again)
    trainer.progress = progress
    trainer.metrics.callback.update(
        {k: float(v) for k, v in state.get("callback_metrics", {}).items()}
    )
    try:
        set_rng_state(state["rng"])
    except (TypeError, ValueError) as error:
        raise CheckpointError(
            f"{state_file}: 'rng' is not a valid generator state: {error}"
        ) from None
    trainer.rng_base = int(state["rng_base"])
    if "mlx_key" in state:  # NOTE [the run's key]: set where training starts (start_key)
        try:
            read_keys(state["mlx_key"], state_file)
        except ValueError as error:
            raise CheckpointError(str(error)) from None
