"""The forward half of a step, shared by training and evaluation: the user's step for a stage,
under the precision's dtype, with its output normalised to ``(loss, metrics, self.log values)``.
Eval passes compile it on its own (``make_eval_fn``); the train step (_step.py) wraps it with the
backward pass and the update."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import mlx.core as mx
from mlx.utils import tree_map, tree_unflatten

from ._tree import flatten
from .metrics.base import StepUpdates, deferring

if TYPE_CHECKING:
    from .module import TrainModule


def _is_float(x: Any) -> bool:
    return isinstance(x, mx.array) and mx.issubdtype(x.dtype, mx.floating)


def cast_floats(tree: Any, dtype: mx.Dtype) -> Any:
    return tree_map(lambda x: x.astype(dtype) if _is_float(x) else x, tree)


def normalize_output(output: Any, stage: str) -> tuple[mx.array, dict[str, Any]]:
    """``(loss, metrics)``, a bare loss, or ``{"loss": ..., **metrics}`` -> ``(loss, metrics)``."""
    where = "compute_loss/training_step" if stage == "train" else f"{stage}_step"
    if isinstance(output, tuple) and len(output) == 2 and isinstance(output[1], dict):
        loss, metrics = output
    elif isinstance(output, dict):
        if "loss" not in output:
            raise ValueError(f"{where} returned a dict without a 'loss' key: {sorted(output)}")
        metrics = {k: v for k, v in output.items() if k != "loss"}
        loss = output["loss"]
    else:
        loss = output
        metrics = {}
    if not isinstance(loss, mx.array) or loss.size != 1:
        shape = getattr(loss, "shape", type(loss).__name__)
        raise ValueError(
            f"{where} must return a scalar loss (an mx.array with one element), got {shape}; reduce it, e.g. mx.mean(...)"
        )
    for name, value in metrics.items():
        if isinstance(value, mx.array) and value.size != 1:
            raise ValueError(
                f"metric {name!r} from {where} must be a scalar, got shape {tuple(value.shape)}"
            )
        if not isinstance(value, (mx.array, int, float)):
            raise ValueError(
                f"metric {name!r} from {where} must be a scalar number or mx.array, got {type(value).__name__}"
            )
    return loss.reshape(()), {
        k: mx.array(v).reshape(()) if not isinstance(v, mx.array) else v.reshape(())
        for k, v in metrics.items()
    }


_FX = {"train": "training_step", "val": "validation_step", "test": "test_step"}


def call_step(step: Callable[..., Any], batch: Any, batch_idx: Any, *extra: int) -> Any:
    """``step(batch, batch_idx, *extra)``, or ``step(batch, *extra)`` when the step takes no
    ``batch_idx`` (Lightning's ``is_param_in_hook_signature(step, "batch_idx", min_args=2)``);
    ``extra`` is ``(dataloader_idx,)`` with several loaders."""
    try:
        parameters = inspect.signature(step).parameters.values()
    except (TypeError, ValueError):  # no signature to read: pass both
        return step(batch, batch_idx, *extra)
    takes = any(p.name == "batch_idx" or p.kind == p.VAR_POSITIONAL for p in parameters)
    positional = [p for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    needed = 2 + len(extra)
    if takes or len(positional) >= needed:
        return step(batch, batch_idx, *extra)
    return step(batch, *extra)


def compute_dtype(precision: str) -> mx.Dtype | None:
    """The dtype a step computes in under ``precision`` (NOTE [precision names]); None: float32."""
    return {"bf16-mixed": mx.bfloat16, "bf16-true": mx.bfloat16, "16-true": mx.float16}.get(
        precision
    )


# NOTE [bf16-mixed casts frozen arrays for the compute]
# Lightning's autocast computes every matmul and convolution in bf16, a frozen module's too. MLX
# has no autocast: under "bf16-mixed" the step runs on bf16 copies of the floating parameters,
# trainable ones (gradients reach the fp32 weights through the cast) and frozen float32 ones (a
# constant of the step), and the float32 arrays are put back after the forward: nothing saved,
# averaged or optimized changes dtype. The exception is an array that the step itself replaces
# (batch-norm running statistics, an EMA teacher updated inside training_step): computed from a
# bf16 copy, its new value would lose precision at every step, so it is never cast. Batch-norm
# statistics (``running_mean`` / ``running_var`` leaves) are known up front; any other frozen
# array the step replaces is found after the forward (it is no longer the copy put in): it is
# remembered for the module and that forward runs once more, from the same parameters, with it
# left float32 (MLX's key cannot be put back: the discarded forward's random draws are spent, once
# per process); from then on it is not cast.
_REPLACED_BY_NORMS = ("running_mean", "running_var")


def _frozen_floats(module: TrainModule) -> dict[str, mx.array]:
    """The frozen float32 parameters to compute with in bf16 (the rule above)."""
    trainable = {k for k, _ in flatten(module.trainable_parameters())}
    kept: set[str] = getattr(module, "_replaced_in_step", set())
    return {
        k: v
        for k, v in flatten(module.parameters())
        if k not in trainable
        and k not in kept
        and isinstance(v, mx.array)
        and v.dtype == mx.float32
        and k.rsplit(".", 1)[-1] not in _REPLACED_BY_NORMS
    }


def _run_step(
    module: TrainModule, stage: str, batch: Any, batch_idx: mx.array, extra: tuple[int, ...]
) -> tuple[Any, list[Any]]:
    module._take_logged()
    module._default_step = False
    module._step_fx = _FX[stage]
    try:
        with deferring() as pending:
            output = call_step(getattr(module, _FX[stage]), batch, batch_idx, *extra)
    finally:
        module._step_fx = None
    return output, pending


def _run_mixed(
    module: TrainModule, stage: str, batch: Any, batch_idx: mx.array, extra: tuple[int, ...]
) -> tuple[Any, list[Any], dict[str, mx.array]]:
    """The step on bf16 copies (NOTE [bf16-mixed casts frozen arrays for the compute]); returns
    its output, the deferred metric updates and the float32 arrays to put back."""
    before = module.parameters()
    while True:
        trainable = module.trainable_parameters()
        frozen = _frozen_floats(module)
        copies = {k: v.astype(mx.bfloat16) for k, v in frozen.items()}
        module.update(cast_floats(trainable, mx.bfloat16))
        if copies:
            module.update(tree_unflatten(list(copies.items())))
        output, pending = _run_step(module, stage, batch, batch_idx, extra)
        now = dict(flatten(module.parameters()))
        replaced = {k for k, copy in copies.items() if now.get(k) is not copy}
        if not replaced:
            return output, pending, {**dict(flatten(trainable)), **frozen}
        kept: set[str] = getattr(module, "_replaced_in_step", set())
        object.__setattr__(module, "_replaced_in_step", kept | replaced)
        module.update(before)


def forward(
    module: TrainModule,
    batch: Any,
    batch_idx: mx.array,
    stage: str,
    precision: str,
    updates: StepUpdates,
    dataloader_idx: int | None = None,
) -> tuple[mx.array | None, dict[str, Any], dict[str, Any], Any, bool, mx.array]:
    """Run the user's step for ``stage``: float32 ``(loss, returned metrics, self.log() values,
    the step's output, whether the returned values are logged, the Metric updates packed by
    ``updates``)`` (NOTE [two logging idioms], NOTE [metric updates leave the compiled step]).

    Training needs a loss, or None: Lightning skips the batch's update (NOTE [a step that
    returns None]); a validation/test step may return anything (a dict without ``"loss"``, a
    list, None): written in Lightning's way its output only goes to the hooks.
    ``dataloader_idx`` is passed to the step only with several loaders, as Lightning does."""
    dtype = compute_dtype(precision)
    if dtype is not None:
        batch = cast_floats(batch, dtype)
    extra = () if dataloader_idx is None else (dataloader_idx,)
    masters: dict[str, mx.array] = {}
    if precision == "bf16-mixed":  # bf16 compute on bf16 copies; gradients reach the fp32 weights
        output, pending, masters = _run_mixed(module, stage, batch, batch_idx, extra)
    else:
        output, pending = _run_step(module, stage, batch, batch_idx, extra)
    packed = updates.pack(pending)
    auto = module._default_step
    loss: mx.array | None = None
    metrics: dict[str, Any] = {}
    if output is not None and (stage == "train" or auto):  # a validation_step may only log
        loss, metrics = normalize_output(output, stage)
    logged = {
        k: (v if isinstance(v, mx.array) else mx.array(v)).reshape(())
        for k, v in module._take_logged().items()
    }
    if masters:  # the float32 arrays back (the step replaced none of their copies)
        module.update(tree_unflatten(list(masters.items())))
    floats = {k: v.astype(mx.float32) for k, v in metrics.items()}
    logged = {k: v.astype(mx.float32) for k, v in logged.items()}
    if loss is not None:
        loss = loss.astype(mx.float32)
    if auto and stage != "train":  # the hooks get the loss and metrics, not compute_loss's tuple
        output = None if loss is None else {"loss": loss, **floats}
    return loss, floats, logged, output, auto, packed


def make_eval_fn(
    module: TrainModule,
    stage: str,
    precision: str,
    compile: bool,
    dataloader_idx: int | None = None,
) -> Callable[[Any, mx.array], tuple[Any, ...]]:
    """``(batch, batch_idx) -> forward(...)`` for validation or test, compiled by default (the
    step's output and the idiom flag come back as constants of the trace); one per loader, whose
    ``dataloader_idx`` (a Python int, as Lightning passes it) is a constant of the trace."""

    updates = StepUpdates()

    def evaluate(batch: Any, batch_idx: mx.array) -> tuple[Any, ...]:
        return forward(module, batch, batch_idx, stage, precision, updates, dataloader_idx)

    step = mx.compile(evaluate, inputs=[module.state]) if compile else evaluate

    def run(batch: Any, batch_idx: mx.array) -> tuple[Any, ...]:
        *result, packed = step(batch, batch_idx)
        updates.apply(packed)
        return tuple(result)

    return run
