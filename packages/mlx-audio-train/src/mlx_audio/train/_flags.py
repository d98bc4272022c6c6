"""Lightning's debugging and launch flags: ``barebones``, ``overfit_batches``, ``strategy``,
``num_nodes``, ``sync_batchnorm``, ``limit_predict_batches``, ``reload_dataloaders_every_n_epochs``,
``detect_anomaly`` and ``profiler``: checked and resolved as Lightning 2.6 does (its messages),
on top of the other arguments (``_arguments.make_args``)."""

from __future__ import annotations

import os
from dataclasses import replace
from typing import Any

from . import distributed
from ._arguments import TrainerArgs
from ._status import rank_zero_info
from .callbacks.base import check_number

# NOTE [strategies]: MLX's processes are started by `mlx.launch`, one device each, and the Trainer
# trains data-parallel over whatever was launched (distributed.py). Lightning's names that mean
# that are taken; the ones that start processes themselves or shard the model are not.
_DATA_PARALLEL = (
    "auto",
    "ddp",
    "ddp_find_unused_parameters_false",
    "ddp_find_unused_parameters_true",
)
_SINGLE = ("single_device",)
_SPAWNING = ("ddp_spawn", "ddp_fork", "ddp_notebook", "ddp_spawn_find_unused_parameters_false")
_BAREBONES_OFF = (
    " - Checkpointing: `Trainer(enable_checkpointing=True)`",
    " - Progress bar: `Trainer(enable_progress_bar=True)`",
    " - Model summary: `Trainer(enable_model_summary=True)`",
    " - Logging: `Trainer(logger=True)`, `Trainer(log_every_n_steps>0)`,"
    " `LightningModule.log(...)`, `LightningModule.log_dict(...)`",
    " - Sanity checking: `Trainer(num_sanity_val_steps>0)`",
    " - Development run: `Trainer(fast_dev_run=True)`",
    " - Anomaly detection: `Trainer(detect_anomaly=True)`",
    " - Profiling: `Trainer(profiler=...)`",
)


def check_barebones(given: dict[str, Any]) -> bool:
    """Lightning's ``barebones=True``: its ``ValueError`` (its words) for an argument that asks
    for what it turns off (checkpointing, logging, the progress bar, the model summary, the
    sanity check) or for what it refuses; its status line. ``given``: the Trainer's arguments."""
    if not given["barebones"]:
        return False

    def refuse(name: str, why: str) -> None:
        raise ValueError(
            f"`Trainer(barebones=True, {name}={given[name]!r})` was passed. {why} so it is "
            "disabled in barebones mode."
        )

    if given["enable_checkpointing"]:
        refuse("enable_checkpointing", "Checkpointing can impact raw speed")
    if given["logger"] is not None and given["logger"] is not False:
        refuse("logger", "Logging can impact raw speed")
    if given["enable_progress_bar"]:
        refuse("enable_progress_bar", "The progress bar can impact raw speed")
    if given["log_every_n_steps"] is not None and given["log_every_n_steps"] != 0:
        refuse("log_every_n_steps", "Logging can impact raw speed")
    if given["enable_model_summary"]:
        refuse("enable_model_summary", "Model summary can impact raw speed")
    if given["num_sanity_val_steps"] is not None and given["num_sanity_val_steps"] != 0:
        refuse("num_sanity_val_steps", "Sanity checking can impact raw speed")
    if given["fast_dev_run"] is not False and given["fast_dev_run"] != 0:
        refuse("fast_dev_run", "Development run is not meant for raw speed evaluation")
    if given["detect_anomaly"]:
        refuse("detect_anomaly", "Anomaly detection can impact raw speed")
    if given["profiler"] is not None:
        refuse("profiler", "Profiling can impact raw speed")
    rank_zero_info(
        "You are running in `Trainer(barebones=True)` mode. All features that may impact raw speed "
        "have been disabled to facilitate analyzing the Trainer overhead. Specifically, the "
        f"following features are deactivated:{os.linesep}{os.linesep.join(_BAREBONES_OFF)}"
    )
    return True


def batch_limit(value: Any, name: str) -> int | float:
    """Lightning's ``_determine_batch_limits``: a float in [0, 1] or an int >= 0."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(
            f"Trainer: {name} must be an int >= 0 or a float in [0.0, 1.0], got {value!r}"
        )
    if 0 <= value <= 1:
        return value
    if value > 1 and value % 1.0 == 0:
        return int(value)
    raise ValueError(
        f"You have passed invalid value {value} for {name}, it has to be in [0.0, 1.0] or an int."
    )


def limit_info(name: str, value: Any) -> None:
    """Lightning's line (``_determine_batch_limits``, its words) for a limit given as 1 or 1.0,
    whose meaning depends on its type."""
    if isinstance(value, int) and value == 1:
        what = (
            "1 batch per epoch will be used"
            if name == "limit_train_batches"
            else "1 batch will be used"
        )
        rank_zero_info(f"`Trainer({name}=1)` was configured so {what}.")
    elif isinstance(value, float) and value == 1.0:
        what = "100% of the batches" + (" per epoch" if name == "limit_train_batches" else "")
        rank_zero_info(f"`Trainer({name}=1.0)` was configured so {what} will be used..")


def check_strategy(strategy: Any, num_nodes: Any) -> str:
    """``strategy`` and ``num_nodes`` against the world ``mlx.launch`` started (NOTE [strategies])."""
    check_number("Trainer", "num_nodes", num_nodes, minimum=1, integer=True)
    world = distributed.world_size()
    if world % num_nodes:
        raise ValueError(
            f"Trainer: num_nodes={num_nodes} does not divide the {world} processes `mlx.launch` "
            "started (one device each): launch num_nodes x processes-per-node, or leave num_nodes=1"
        )
    if not isinstance(strategy, str):
        raise ValueError(
            f"Trainer: strategy must be a name, got a {type(strategy).__name__}: there are no "
            f"Strategy objects with MLX. Valid: {_DATA_PARALLEL + _SINGLE}"
        )
    name = strategy.lower()
    if name in _DATA_PARALLEL:
        return name
    if name in _SINGLE:
        if world > 1:
            raise ValueError(
                f"Trainer: strategy='single_device' but `mlx.launch` started {world} processes; "
                "use strategy='auto' or 'ddp' to train data-parallel across them"
            )
        return name
    if name in _SPAWNING:
        raise ValueError(
            f"Trainer: strategy={strategy!r} starts its own processes, which MLX does not do: start "
            "them with `mlx.launch -n N train.py` and use strategy='ddp' or 'auto' "
            "(docs/api/distributed.md)"
        )
    raise ValueError(
        f"Trainer: strategy={strategy!r} is not available with MLX, which trains data-parallel over "
        f"the processes `mlx.launch` started (no model sharding). Valid: {_DATA_PARALLEL + _SINGLE}"
    )


def check_flags(given: dict[str, Any]) -> dict[str, Any]:
    """The new flags' resolved values for :class:`TrainerArgs` (``ValueError`` naming what is
    wrong and what is valid)."""
    values: dict[str, Any] = {}
    values["overfit_batches"] = batch_limit(given["overfit_batches"], "overfit_batches")
    limit = given["limit_predict_batches"]
    values["limit_predict_batches"] = (
        1.0 if limit is None else batch_limit(limit, "limit_predict_batches")
    )
    check_number(
        "Trainer",
        "reload_dataloaders_every_n_epochs",
        given["reload_dataloaders_every_n_epochs"],
        minimum=0,
        integer=True,
    )
    values["reload_dataloaders_every_n_epochs"] = given["reload_dataloaders_every_n_epochs"]
    for name in ("sync_batchnorm", "barebones", "detect_anomaly"):
        if not isinstance(given[name], bool):
            raise ValueError(f"Trainer: {name} must be a bool, got {given[name]!r}")
        values[name] = given[name]
    values["strategy"] = check_strategy(given["strategy"], given["num_nodes"])
    values["num_nodes"] = given["num_nodes"]
    if given["num_nodes"] > 1 and given["devices"] not in ("auto", -1, "-1"):
        raise ValueError(
            f"Trainer: num_nodes={given['num_nodes']} with devices={given['devices']!r}: with "
            "several nodes keep devices='auto'; the processes per node are what `mlx.launch` "
            "started there"
        )
    return values


def resolve_flags(args: TrainerArgs, given: dict[str, Any]) -> TrainerArgs:
    """``args`` with the new flags (:func:`check_flags`) and their effect on the others:
    ``overfit_batches`` sets both train and val limits (after ``fast_dev_run``, as Lightning's
    ``_init_debugging_flags``); ``fast_dev_run`` limits predict; ``barebones`` logs nothing."""
    values = check_flags(given)
    args = replace(args, **values)
    limits = ["overfit_batches"]  # Lightning's order; none of them under fast_dev_run
    if not given["fast_dev_run"]:
        limits += [] if args.overfit_batches > 0 else ["limit_train_batches", "limit_val_batches"]
        limits += ["limit_test_batches", "limit_predict_batches"]
    for name in limits:
        if given[name] is not None:
            limit_info(name, given[name])
    if args.fast_dev_run:
        args = replace(args, limit_predict_batches=args.fast_dev_run)
    if args.overfit_batches > 0:
        args = replace(
            args, limit_train_batches=args.overfit_batches, limit_val_batches=args.overfit_batches
        )
    if args.barebones:
        args = replace(args, enable_logging=False, log_every_n_steps=0)
    return args
