"""Resuming a Trainer from a checkpoint directory (checkpoint.py writes and reads them): the
weights, optimizer state, counters, RNG states and callbacks' states, and an unfinished
accumulation group's gradient sum."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from . import checkpoint, distributed
from ._status import rank_zero_info
from ._tree import flatten
from .checkpoint import (
    ACCUMULATOR_FILE,
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
    from ._step import StepRunner
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
    """Load a checkpoint into the trainer, its module, optimizer and callbacks; returns the
    state (None when ``ckpt_path="last"`` has nothing to resume yet)."""
    from mlx.utils import tree_unflatten

    from ._progress import Progress
    from ._rng import set_rng_state

    path = resolve_ckpt_path(trainer, ckpt_path)
    if ckpt_path == "last" and not os.path.lexists(path):
        rank_zero_info(f"Trainer: no checkpoint at {path} yet; starting from scratch.")
        return None
    module = trainer.module
    optimizer = trainer.optimizer
    assert module is not None and optimizer is not None, "restore runs inside fit"
    directory, state = read_state(path)
    state_file = os.path.join(directory, STATE_FILE)
    saved_world = state.get("world_size", 1)
    if state.get("loader") is not None and saved_world != distributed.world_size():
        raise CheckpointError(
            f"{directory} was written in the middle of an epoch by {saved_world} process(es) and this run has "
            f"{distributed.world_size()}: each rank's share of the epoch would differ. Resume with "
            f"{saved_world}, or from a checkpoint written at an epoch's end (any number of processes)"
        )
    weights_file = os.path.join(directory, MODEL_FILE)
    check_against(
        weights_file, load_arrays(weights_file), dict(flatten(module.parameters())), "model"
    )
    module.load_checkpoint(directory)
    optimizer_file = os.path.join(directory, OPTIMIZER_FILE)
    loaded = load_arrays(optimizer_file)
    optimizer.init(module.trainable_parameters())
    check_against(optimizer_file, loaded, dict(flatten(optimizer.state)), "optimizer")
    optimizer.state = tree_unflatten(list(loaded.items()))
    try:
        progress = Progress.from_state(state, state_file)
    except ValueError as error:
        raise CheckpointError(str(error)) from None  # the trainer moves past a finished epoch
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
    checkpoint.warn_missing_callbacks(trainer, state)
    for callback in trainer.callbacks:
        if callback.state_key in state.get("callbacks", {}):
            try:
                callback.load_state_dict(state["callbacks"][callback.state_key])
            except (KeyError, TypeError, ValueError) as error:
                raise CheckpointError(
                    f"{state_file}: 'callbacks' -> {callback.state_key!r} is invalid: {error!r}"
                ) from None
    trainer.hooks.on_load_checkpoint(state)
    return {**state, "_dir": directory}
