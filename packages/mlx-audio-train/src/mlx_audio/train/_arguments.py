"""Checks of the Trainer's arguments: every mistake is a ValueError naming the argument."""

from __future__ import annotations

from typing import Any

from .callbacks.base import check_number

PRECISIONS = ("32", "bf16-mixed", "bf16")
_COUNTS = {  # name -> minimum; those not in _REQUIRED may be None
    "max_epochs": 1,
    "max_steps": 1,
    "min_epochs": 0,
    "min_steps": 0,
    "accumulate_grad_batches": 1,
    "check_val_every_n_epoch": 1,
    "num_sanity_val_steps": 0,
    "log_every_n_steps": 1,
    "seed": 0,
}
_REQUIRED = ("accumulate_grad_batches", "num_sanity_val_steps", "log_every_n_steps")
_LIMITS = ("limit_train_batches", "limit_val_batches", "limit_test_batches", "val_check_interval")
_CHOICES = {"gradient_clip_algorithm": ("norm", "value"), "on_nonfinite_loss": ("raise", "skip")}


def check_arguments(args: dict[str, Any]) -> dict[str, Any]:
    """Validate; return the arguments with ``fast_dev_run``'s overrides applied."""
    for name, minimum in _COUNTS.items():
        check_number(
            "Trainer",
            name,
            args[name],
            minimum=minimum,
            integer=True,
            allow_none=name not in _REQUIRED,
        )
    for name in _LIMITS:
        minimum = 1 if name == "val_check_interval" else 0
        check_number(
            "Trainer",
            name,
            args[name],
            minimum=minimum,
            integer=True,
            fraction=True,
            allow_none=True,
        )
    check_number(
        "Trainer", "gradient_clip_val", args["gradient_clip_val"], minimum=0, allow_none=True
    )
    runs = args["fast_dev_run"]
    check_number(
        "Trainer",
        "fast_dev_run",
        int(runs) if isinstance(runs, bool) else runs,
        minimum=0,
        integer=True,
    )
    for name, valid in _CHOICES.items():
        if args[name] not in valid:
            raise ValueError(f"Trainer: {name} must be one of {valid}, got {args[name]!r}")
    if str(args["precision"]) not in PRECISIONS:
        raise ValueError(
            f"Trainer: precision must be one of {PRECISIONS}, got {args['precision']!r}"
        )
    args = dict(args)
    if runs:  # a quick smoke run: n batches, one epoch, no logger or checkpoints
        n = int(runs)
        args.update(
            max_epochs=1,
            max_steps=n,
            limit_train_batches=n,
            limit_val_batches=n,
            num_sanity_val_steps=0,
        )
        args.update(logger=False, enable_checkpointing=False)
    if args["max_epochs"] is None and args["max_steps"] is None:
        raise ValueError(
            "Trainer: set max_epochs or max_steps (or both); training would never end otherwise"
        )
    return args
