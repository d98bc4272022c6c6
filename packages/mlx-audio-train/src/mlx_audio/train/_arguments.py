"""The Trainer's arguments: a frozen dataclass checked in one place (Lightning's sentinels too).

Every mistake is a ValueError naming the argument and what is valid. ``fast_dev_run`` and the
Lightning sentinels (``max_epochs=-1``, ``max_steps=-1``, ``num_sanity_val_steps=-1``) are
resolved here, so the loop reads plain values: ``None`` means "no limit".
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, fields, replace
from datetime import timedelta
from time import monotonic
from typing import TYPE_CHECKING, Any, Generic, TypeVar, overload

from ._device import check_accelerator, check_devices
from .callbacks.base import check_number

if TYPE_CHECKING:
    from .trainer import Trainer

# NOTE [precision names]: Lightning's inputs and names (lightning.fabric.connector's
# _convert_precision_to_unified_args): 32/"32" -> "32-true", "bf16" -> "bf16-mixed" (with
# Lightning's warning), and trainer.precision is the unified name. "16-mixed" (16, "16") becomes
# "bf16-mixed" with a warning, as Lightning does on the CPU: fp16 AMP needs torch's GradScaler.
PRECISIONS = ("32-true", "bf16-mixed", "bf16-true", "16-true")
_ALIASES = {"64": "64-true", "32": "32-true", "16": "16-mixed", "bf16": "bf16-mixed"}
_LIGHTNING_ONLY = {
    "64-true": "MLX has no float64 on the GPU",
    "transformer-engine": "NVIDIA Transformer Engine is a torch library",
    "transformer-engine-float16": "NVIDIA Transformer Engine is a torch library",
}


def unified_precision(value: Any) -> str:
    """Lightning's precision input as its unified name; ``ValueError`` for what is not valid
    in Lightning (its message) or not available here (why, and what is)."""
    allowed = (64, 32, 16, *_ALIASES, *PRECISIONS, "16-mixed", *_LIGHTNING_ONLY)
    if value is None:
        return "32-true"
    if isinstance(value, bool) or value not in allowed:
        raise ValueError(f"Precision {value!r} is invalid. Allowed precision values: {allowed}")
    name = str(value)
    if name in _ALIASES:
        if name[:2] not in ("32", "64"):
            warnings.warn(
                f"`precision={value}` is supported for historical reasons but its usage is discouraged. "
                f"Please set your precision to {_ALIASES[name]} instead!",
                stacklevel=4,
            )
        name = _ALIASES[name]
    if name in _LIGHTNING_ONLY:
        raise ValueError(
            f"Trainer: precision={value!r} is not available with MLX: {_LIGHTNING_ONLY[name]}. "
            f"Available: {PRECISIONS}"
        )
    if name == "16-mixed":
        warnings.warn(
            "You passed `Trainer(precision='16-mixed')` but AMP with fp16 needs loss scaling (torch's "
            "GradScaler), which MLX training here does not have. Using `precision='bf16-mixed'` instead.",
            stacklevel=4,
        )
        name = "bf16-mixed"
    return name


_DEFAULT_MAX_EPOCHS = 1000  # Lightning's, when neither max_epochs nor max_steps is given


def check_lightning_flags(kwargs: dict[str, Any]) -> None:
    """NOTE [no-op Lightning arguments]: ``deterministic`` (torch's deterministic algorithms),
    ``benchmark`` (cuDNN autotuning) and ``inference_mode`` (torch.inference_mode vs no_grad) have
    no MLX counterpart; they are accepted, checked as Lightning does, and change nothing."""
    if kwargs["deterministic"] not in (None, True, False, "warn"):
        raise ValueError(
            f"Trainer: deterministic must be None, a bool or 'warn', got {kwargs['deterministic']!r}"
        )
    for name, valid in (("benchmark", (None, True, False)), ("inference_mode", (True, False))):
        if kwargs[name] not in valid or (
            kwargs[name] is not None and not isinstance(kwargs[name], bool)
        ):
            raise ValueError(f"Trainer: {name} must be one of {valid}, got {kwargs[name]!r}")


@dataclass(frozen=True)
class TrainerArgs:
    max_epochs: int | None = None
    max_steps: int | None = None
    min_epochs: int = 0
    min_steps: int = 0
    accumulate_grad_batches: int = 1
    gradient_clip_val: float | None = None
    gradient_clip_algorithm: str = "norm"
    precision: str = "32-true"
    val_check_interval: int | float | str | timedelta | dict[str, int] = 1.0
    val_check_time_interval: float | None = None  # seconds, for a time-based val_check_interval
    check_val_every_n_epoch: int | None = 1
    limit_train_batches: int | float = 1.0
    limit_val_batches: int | float = 1.0
    limit_test_batches: int | float = 1.0
    num_sanity_val_steps: float = 2
    fast_dev_run: int = 0
    log_every_n_steps: int = 50
    enable_progress_bar: bool = True
    enable_checkpointing: bool = True
    enable_logging: bool = True
    default_root_dir: str = "."
    seed: int | None = None
    compile: bool = True
    on_nonfinite_loss: str = "raise"
    use_distributed_sampler: bool = True
    collective_timeout: float = 1800.0
    accelerator: str = "auto"
    devices: int | str | list[int] = "auto"
    deterministic: bool | str | None = (
        None  # accepted; no effect (NOTE [no-op Lightning arguments])
    )
    benchmark: bool | None = None
    inference_mode: bool = True
    # Lightning's debugging and launch flags, resolved in _flags.py
    overfit_batches: int | float = 0.0
    limit_predict_batches: int | float = 1.0
    reload_dataloaders_every_n_epochs: int = 0
    num_nodes: int = 1
    strategy: str = "auto"
    sync_batchnorm: bool = False
    barebones: bool = False
    detect_anomaly: bool = False


def _count(name: str, value: Any, minimum: int, sentinel: bool = False) -> None:
    if sentinel and value == -1 and not isinstance(value, bool):
        return
    check_number("Trainer", name, value, minimum=minimum, integer=True, allow_none=True)


def make_args(kwargs: dict[str, Any], has_timer: bool) -> TrainerArgs:
    """Validate ``Trainer(**kwargs)`` and resolve defaults, sentinels and ``fast_dev_run``."""
    defaults = {
        "enable_progress_bar": True,
        "enable_checkpointing": True,
        "gradient_clip_algorithm": "norm",
        "log_every_n_steps": 50,
    }  # Lightning's None defaults, resolved as there
    kwargs = {**kwargs, **{k: v for k, v in defaults.items() if kwargs.get(k) is None}}
    for name, minimum in (("max_epochs", 0), ("max_steps", 0)):
        _count(name, kwargs[name], minimum, sentinel=True)
    for name in ("min_epochs", "min_steps", "seed"):
        _count(name, kwargs[name], 0)
    _count("num_sanity_val_steps", kwargs["num_sanity_val_steps"], 0, sentinel=True)
    for name in ("accumulate_grad_batches", "check_val_every_n_epoch", "log_every_n_steps"):
        _count(name, kwargs[name], 1)
    for name in ("accumulate_grad_batches", "log_every_n_steps"):
        if kwargs[name] is None:
            raise ValueError(f"Trainer: {name} must be an int >= 1, got None")
    time_based = isinstance(kwargs["val_check_interval"], (str, timedelta, dict))
    if kwargs["check_val_every_n_epoch"] is None and isinstance(
        kwargs["val_check_interval"], float
    ):
        raise ValueError(
            "`val_check_interval` should be an integer or a time-based duration (str 'DD:HH:MM:SS', "
            "datetime.timedelta, or dict kwargs for timedelta) when `check_val_every_n_epoch=None`."
        )
    for name in (
        "limit_train_batches",
        "limit_val_batches",
        "limit_test_batches",
        *(() if time_based else ("val_check_interval",)),
    ):
        minimum = 1 if name == "val_check_interval" else 0
        if name.startswith("limit_") and type(kwargs[name]) is float and kwargs[name] == 0.0:
            continue  # Lightning: 0.0 turns the loop off, as 0 does
        check_number(
            "Trainer",
            name,
            kwargs[name],
            minimum=minimum,
            integer=True,
            fraction=True,
            allow_none=True,
        )
    check_number(
        "Trainer", "gradient_clip_val", kwargs["gradient_clip_val"], minimum=0, allow_none=True
    )
    timeout = kwargs["collective_timeout"]
    check_number("Trainer", "collective_timeout", timeout, minimum=0)
    if not 0 < timeout < math.inf:
        raise ValueError(
            f"Trainer: collective_timeout must be a number of seconds > 0, got {timeout!r}"
        )
    runs = kwargs["fast_dev_run"]
    check_number(
        "Trainer",
        "fast_dev_run",
        int(runs) if isinstance(runs, bool) else runs,
        minimum=0,
        integer=True,
    )
    for name, valid in (
        ("gradient_clip_algorithm", ("norm", "value")),
        ("on_nonfinite_loss", ("raise", "skip")),
    ):
        if kwargs[name] not in valid:
            raise ValueError(f"Trainer: {name} must be one of {valid}, got {kwargs[name]!r}")
    values = {f.name: kwargs[f.name] for f in fields(TrainerArgs) if f.name in kwargs}
    values["precision"] = unified_precision(kwargs["precision"])
    values["accelerator"] = check_accelerator(kwargs["accelerator"])
    check_devices(kwargs["devices"])
    check_lightning_flags(kwargs)
    # max_epochs stays as given (None: resolved when fit runs, resolve_loop_limits)
    max_steps = kwargs["max_steps"]
    values["max_steps"] = None if max_steps == -1 else max_steps
    if time_based:
        values["val_check_time_interval"] = parse_time_interval(kwargs["val_check_interval"])
    sanity = kwargs["num_sanity_val_steps"]
    values["num_sanity_val_steps"] = math.inf if sanity == -1 else (2 if sanity is None else sanity)
    values["min_epochs"] = kwargs["min_epochs"] or (1 if kwargs["min_steps"] is not None else 0)
    values["min_steps"] = kwargs["min_steps"] or 0
    for name in (
        "val_check_interval",
        "limit_train_batches",
        "limit_val_batches",
        "limit_test_batches",
    ):
        if kwargs[name] is None:
            values[name] = 1.0
    values["fast_dev_run"] = int(runs)
    args = TrainerArgs(**values)
    if (
        runs
    ):  # Lightning's fast_dev_run: n batches, one epoch, no sanity check, loggers or checkpoints
        n = int(runs)
        args = replace(
            args,
            max_epochs=1,
            max_steps=n,
            limit_train_batches=n,
            limit_val_batches=n,
            limit_test_batches=n,
            num_sanity_val_steps=0,
            val_check_interval=1.0,
            val_check_time_interval=None,  # time not applicable in fast_dev_run (Lightning)
            check_val_every_n_epoch=1,
            enable_logging=False,
        )
    return args


def parse_time_interval(value: str | timedelta | dict[str, int]) -> float:
    """A time-based ``val_check_interval`` in seconds: ``"DD:HH:MM:SS"``, a ``timedelta`` or a
    dict of its arguments (Lightning's ``_parse_time_interval_seconds``, its messages)."""
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, dict):
        try:
            return timedelta(**value).total_seconds()
        except TypeError as error:
            raise ValueError(
                f"Trainer: val_check_interval={value!r} is not a valid dict of timedelta arguments "
                f"(days, hours, minutes, seconds, ...): {error}"
            ) from None
    parts = value.split(":")
    if len(parts) != 4:
        raise ValueError(
            f"Invalid time format for `val_check_interval`: {value!r}. Expected 'DD:HH:MM:SS'."
        )
    try:
        days, hours, minutes, seconds = (int(part) for part in parts)
    except ValueError:
        raise ValueError(
            f"Non-integer component in `val_check_interval` string: {value!r}. Use 'DD:HH:MM:SS'."
        ) from None
    return timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds).total_seconds()


def resolve_loop_limits(args: TrainerArgs, callbacks: Iterable[object]) -> TrainerArgs:
    """``max_epochs=None`` when ``fit`` runs (Lightning's ``_parse_loop_limits``): 1000 with its
    warning, or no limit (``-1``) when ``max_steps`` is set or a ``Timer`` limits the time."""
    from .callbacks import Timer

    if args.max_epochs is not None:
        return args
    if args.max_steps is None and not any(isinstance(c, Timer) for c in callbacks):
        warnings.warn(
            f"`max_epochs` was not set. Setting it to {_DEFAULT_MAX_EPOCHS} epochs. To train "
            "without an epoch limit, set `max_epochs=-1`.",
            stacklevel=3,
        )
        return replace(args, max_epochs=_DEFAULT_MAX_EPOCHS)
    return replace(args, max_epochs=-1)


# NOTE [time-based validation]: with a time-based val_check_interval (Lightning 2.6) the fit
# loop validates after a batch once this many seconds passed since training started or the last
# validation ended; the clock is read once when training starts, once per batch of an epoch that
# validates, and once at the end of every evaluation run -- where Lightning reads it -- so the
# ported tests can drive it with a fake ``monotonic``.
def start_validation_clock(trainer: Trainer) -> None:
    if trainer.val_check_time_interval is not None:
        trainer.last_val_time = monotonic()


def mark_validation_end(trainer: Trainer) -> None:
    trainer.last_val_time = monotonic()


def validation_time_due(trainer: Trainer) -> bool:
    interval = trainer.val_check_time_interval
    assert interval is not None
    return monotonic() - trainer.last_val_time >= interval


def val_check_batch(args: TrainerArgs, batches: float, val_batches: float) -> float:
    """Batches between validations (Lightning's ``val_check_batch``); inf: at the epoch's end
    (or by time: NOTE [time-based validation])."""
    interval = args.val_check_interval
    if args.val_check_time_interval is not None or not isinstance(interval, (int, float)):
        return math.inf
    if isinstance(interval, int):
        if interval > batches and args.check_val_every_n_epoch is not None and val_batches > 0:
            raise ValueError(
                f"Trainer: val_check_interval ({interval}) must be less than or equal to the number of "
                f"training batches ({batches}). To disable validation set limit_val_batches=0; to validate "
                "every n batches across epochs set check_val_every_n_epoch=None."
            )
        return interval
    if math.isinf(batches):
        if interval == 1.0:
            return math.inf
        raise ValueError(
            "Trainer: a fractional val_check_interval needs a train loader with a length; use an int"
        )
    return max(1, int(batches * interval))


T = TypeVar("T")


class Argument(Generic[T]):
    """A Trainer property that reads one resolved argument: ``trainer.max_epochs`` is
    ``trainer.args.max_epochs``. One line per argument in the class body, so each name is written
    out and typed (a typo fails mypy). A non-data descriptor, as the attribute look-up it replaces:
    an assignment ``trainer.max_epochs = 3`` sets an instance attribute that reads take instead."""

    def __set_name__(self, owner: type, name: str) -> None:
        if name not in ARG_NAMES:
            raise TypeError(f"{owner.__name__}.{name}: not a Trainer argument")
        self.name = name

    @overload
    def __get__(self, instance: None, owner: type) -> Argument[T]: ...
    @overload
    def __get__(self, instance: object, owner: type) -> T: ...
    def __get__(self, instance: object, owner: type) -> Argument[T] | T:
        if instance is None:
            return self
        value: T = getattr(instance.args, self.name)  # type: ignore[attr-defined]
        return value


ARG_NAMES = frozenset(f.name for f in fields(TrainerArgs))
