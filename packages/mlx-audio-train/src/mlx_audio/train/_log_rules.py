"""``self.log``'s rules with Lightning 2.6's semantics: which hooks may log and their defaults
(``_FxValidator``), the options of one logged name (``LogOptions``) and the checks of a logged
value. The running bookkeeping is in ``_metrics.py``."""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Any

import mlx.core as mx
import numpy as np

# Lightning's _FxValidator: hook -> (default on_step, default on_epoch, epoch level only)
_STEP = (True, False, False)
_EVAL_STEP = (False, True, False)
_EPOCH = (False, True, True)
FX_RULES: dict[str, tuple[bool, bool, bool]] = {
    **dict.fromkeys(
        ("training_step", "on_train_batch_start", "on_train_batch_end", "on_before_optimizer_step"),
        _STEP,
    ),
    **dict.fromkeys(
        (
            "validation_step",
            "test_step",
            "on_validation_batch_start",
            "on_validation_batch_end",
            "on_test_batch_start",
            "on_test_batch_end",
        ),
        _EVAL_STEP,
    ),
    **dict.fromkeys(
        (
            "on_train_start",
            "on_train_epoch_start",
            "on_train_epoch_end",
            "on_validation_start",
            "on_validation_epoch_start",
            "on_validation_epoch_end",
            "on_test_start",
            "on_test_epoch_start",
            "on_test_epoch_end",
        ),
        _EPOCH,
    ),
}
LOGGING_HOOKS = frozenset(FX_RULES)
# The hooks where Lightning refuses self.log ("You can't ..."); any other name is not a hook.
NO_LOGGING_HOOKS = frozenset(
    {
        "setup",
        "teardown",
        "prepare_data",
        "train_dataloader",
        "val_dataloader",
        "test_dataloader",
        "predict_dataloader",
        "configure_optimizers",
        "on_fit_start",
        "on_fit_end",
        "on_sanity_check_start",
        "on_sanity_check_end",
        "on_train_end",
        "on_validation_end",
        "on_test_end",
        "on_predict_start",
        "on_predict_epoch_start",
        "on_predict_epoch_end",
        "on_predict_end",
        "on_validation_model_eval",
        "on_validation_model_train",
        "on_test_model_eval",
        "on_test_model_train",
        "on_predict_model_eval",
        "on_predict_batch_start",
        "on_predict_batch_end",
        "predict_step",
        "on_save_checkpoint",
        "on_load_checkpoint",
        "on_exception",
        "state_dict",
        "load_state_dict",
    }
)
_REDUCE = ("mean", "sum", "max", "min")


@dataclass(frozen=True)
class LogOptions:
    on_step: bool
    on_epoch: bool
    prog_bar: bool = False
    logger: bool = True
    reduce_fx: str = "mean"
    sync_dist: bool = False
    batch_size: int | None = None
    metric: Any = None  # a logged Metric object: its epoch value is its compute()
    add_dataloader_idx: bool = True

    @classmethod
    def make(cls, fx: str, on_step: bool | None, on_epoch: bool | None, **rest: Any) -> LogOptions:
        """The options of ``self.log`` in hook ``fx``, checked as Lightning's ``_FxValidator``
        and ``_Metadata`` do (same messages; ValueError for its MisconfigurationException)."""
        if fx not in FX_RULES:
            if fx in NO_LOGGING_HOOKS:
                raise ValueError(
                    f"You can't `self.log()` inside `{fx}`. HINT: You can still log directly to the"
                    " logger by using `self.trainer.logger.log_metrics(...)`."
                )
            raise RuntimeError(f"Logging inside `{fx}` is not implemented.")
        default_step, default_epoch, epoch_only = FX_RULES[fx]
        on_step = default_step if on_step is None else bool(on_step)
        on_epoch = default_epoch if on_epoch is None else bool(on_epoch)
        if epoch_only:
            for key, value, allowed in (("on_step", on_step, False), ("on_epoch", on_epoch, True)):
                if value != allowed:
                    raise ValueError(
                        f"You can't `self.log({key}={value})` inside `{fx}`, must be one of ({allowed},)."
                    )
        if not on_step and not on_epoch:
            raise ValueError("`self.log(on_step=False, on_epoch=False)` is not useful.")
        reduce_fx = _reduce_name(rest.pop("reduce_fx", "mean"))
        return cls(on_step=on_step, on_epoch=on_epoch, reduce_fx=reduce_fx, **rest)


def _reduce_name(reduce_fx: Any) -> str:
    """Lightning's accepted reductions: min/max/mean/sum (any case, ``avg`` = mean), the
    framework's functions (``mx.mean``, ``mx.max``, ...) or the builtins ``min``/``max``/``sum``."""
    if isinstance(reduce_fx, str):
        name: str | None = reduce_fx.lower()
        name = "mean" if name == "avg" else name
    else:
        known: list[tuple[Any, str]] = [(mx.mean, "mean"), (mx.max, "max"), (max, "max")]
        known += [(mx.min, "min"), (min, "min"), (mx.sum, "sum"), (sum, "sum")]
        name = next((v for k, v in known if k is reduce_fx), None)
    if name not in _REDUCE:
        raise ValueError(
            "Only `self.log(..., reduce_fx={min,max,mean,sum})` are supported. If you need a custom"
            f" reduction, reduce the values yourself and log the result. Found: {reduce_fx}"
        )
    return name


def check_value(name: str, value: Any) -> Any:
    """Lightning's checks of a logged value (its messages): a number or an array of one element,
    returned as a float or a 0-d floating ``mx.array``."""
    if isinstance(value, dict) and any(isinstance(v, dict) for v in value.values()):
        raise ValueError(
            f"`self.log({name}, {value})` was called, but nested dictionaries cannot be logged"
        )
    if isinstance(value, np.ndarray):
        value = mx.array(value)
    if isinstance(value, numbers.Number):
        return float(value)  # type: ignore[arg-type]
    if not isinstance(value, mx.array):
        raise ValueError(
            f"`self.log({name}, {value})` was called, but `{type(value).__name__}` values cannot be logged"
        )
    if value.size != 1:
        raise ValueError(
            f"`self.log({name}, <array of shape {tuple(value.shape)}>)` was called, but the tensor"
            f" must have a single element. You can try doing `self.log({name}, value.mean())`"
        )
    value = value.reshape(())
    return value if mx.issubdtype(value.dtype, mx.floating) else value.astype(mx.float32)
