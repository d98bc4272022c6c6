"""The compiled train step and eval step (mlx-lm style: explicit state, one graph per case).

State captured by ``mx.compile``: ``[model.state, optimizer.state, mx.random.state]``.
Without accumulation the step is one fused graph (forward, backward, clip, update). With
``accumulate_grad_batches > 1`` the step takes the running gradient sum and a 0-d count and
updates behind one Python bool, so it traces at most twice; the update divides by the number
of micro-batches actually accumulated, so a short group at the end of an epoch is exact.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim
from mlx.utils import tree_flatten, tree_map

_RETRACE_WARNING_AFTER = 8


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
        loss, metrics = output, {}
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


def forward(
    module: Any, batch: Any, batch_idx: mx.array, stage: str, precision: str
) -> tuple[mx.array, dict[str, Any]]:
    """Run the user's step for ``stage``; returns float32 ``(loss, metrics + self.log() values)``."""
    module._take_logged()
    if precision == "bf16-mixed":  # bf16 compute on bf16 copies; gradients reach the fp32 weights
        full = module.trainable_parameters()
        module.update(cast_floats(full, mx.bfloat16))
    if precision in ("bf16-mixed", "bf16"):
        batch = cast_floats(batch, mx.bfloat16)
    step = {"train": module.training_step, "val": module.validation_step, "test": module.test_step}[
        stage
    ]
    loss, metrics = normalize_output(step(batch, batch_idx), stage)
    logged = {
        k: (v if isinstance(v, mx.array) else mx.array(v)).reshape(())
        for k, v in module._take_logged().items()
    }
    if precision == "bf16-mixed":
        module.update(full)
    metrics = {**metrics, **logged}
    return loss.astype(mx.float32), {k: v.astype(mx.float32) for k, v in metrics.items()}


def make_eval_fn(
    module: Any, stage: str, precision: str, compile: bool
) -> Callable[[Any, mx.array], tuple]:
    """``(batch, batch_idx) -> (loss, metrics)`` for validation or test, compiled by default."""

    def evaluate(batch: Any, batch_idx: mx.array) -> tuple[mx.array, dict[str, Any]]:
        return forward(module, batch, batch_idx, stage, precision)

    return mx.compile(evaluate, inputs=[module.state]) if compile else evaluate


class StepBuilder:
    """Builds the train/eval functions for one ``fit`` (rebuilt after loading a checkpoint)."""

    def __init__(
        self,
        module: Any,
        optimizer: optim.Optimizer,
        accumulate: int,
        clip_val: float | None,
        clip_algorithm: str,
        precision: str,
        compile: bool,
    ) -> None:
        self.module, self.optimizer = module, optimizer
        self.accumulate, self.clip_val, self.clip_algorithm = accumulate, clip_val, clip_algorithm
        self.precision, self.compile = precision, compile
        self.world = mx.distributed.init().size() if mx.distributed.is_available() else 1
        self._shapes: set[tuple] = set()
        self._warned = False
        optimizer.init(module.trainable_parameters())
        mx.eval(optimizer.state)
        self._zeros: Any = None
        self.state = state = [
            module.state,
            optimizer.state,
            mx.random.state,
        ]  # what each step updates
        wrap = (
            (lambda fn: mx.compile(fn, inputs=state, outputs=state)) if compile else (lambda fn: fn)
        )
        self._value_and_grad = nn.value_and_grad(module, self._loss)
        self.fused = wrap(self._fused)
        self.accumulating = wrap(self._accumulating)
        self.apply = wrap(self._apply)
        self.grads = wrap(self._grads)

    @property
    def zeros(self) -> Any:
        """A zero gradient tree (the accumulator's start), built only when accumulating."""
        if self._zeros is None:
            self._zeros = tree_map(mx.zeros_like, self.module.trainable_parameters())
            mx.eval(self._zeros)
        return self._zeros

    # -- traced pieces -----------------------------------------------------------------------
    def _loss(self, batch: Any, batch_idx: mx.array) -> tuple[mx.array, dict[str, Any]]:
        return forward(self.module, batch, batch_idx, "train", self.precision)

    def _update(self, grads: Any) -> None:
        if self.world > 1:
            grads = nn.average_gradients(grads)
        if self.clip_val is not None:
            if self.clip_algorithm == "norm":
                grads, _ = optim.clip_grad_norm(grads, self.clip_val)
            else:
                grads = tree_map(lambda g: mx.clip(g, -self.clip_val, self.clip_val), grads)
        self.optimizer.update(self.module, grads)

    def _fused(self, batch: Any, batch_idx: mx.array) -> tuple[mx.array, dict[str, Any]]:
        (loss, metrics), grads = self._value_and_grad(batch, batch_idx)
        self._update(grads)
        return loss, metrics

    def _accumulating(
        self, batch: Any, batch_idx: mx.array, total: Any, count: mx.array, do_update: bool
    ) -> tuple:
        (loss, metrics), grads = self._value_and_grad(batch, batch_idx)
        total = tree_map(mx.add, total, grads)
        if do_update:
            self._update(tree_map(lambda g: g / count.astype(g.dtype), total))
        return loss, metrics, total

    def _grads(self, batch: Any, batch_idx: mx.array) -> tuple:
        (loss, metrics), grads = self._value_and_grad(batch, batch_idx)
        return loss, metrics, grads

    def _apply(self, total: Any, count: mx.array) -> None:
        self._update(tree_map(lambda g: g / count.astype(g.dtype), total))

    # -- bookkeeping -------------------------------------------------------------------------
    def note_shapes(self, batch: Any) -> None:
        """Warn once when the compiled step keeps seeing new input shapes (one graph each)."""
        if not self.compile or self._warned:
            return
        signature = tuple(
            (tuple(x.shape), str(x.dtype))
            for _, x in tree_flatten(batch)
            if isinstance(x, mx.array)
        )
        self._shapes.add(signature)
        if len(self._shapes) > _RETRACE_WARNING_AFTER:
            self._warned = True
            warnings.warn(
                f"the compiled train step has now been traced for {len(self._shapes)} different batch shapes; "
                "MLX keeps one graph per shape, so memory and compile time grow. Pad or bucket inputs to a "
                "few fixed shapes (drop_last=True helps too), or use Trainer(compile=False).",
                stacklevel=3,
            )
        return True


class TraceGuard:
    """Undo what a failed ``mx.compile`` trace leaves behind.

    When user code raises while a step is being traced, the module's parameters, the
    optimizer's state and MLX's random key can still hold placeholder arrays. Snapshot the
    references before a trace and put them back on error, so the model stays usable.
    """

    def __init__(self, module: Any, optimizer: optim.Optimizer | None, active: bool) -> None:
        self.module, self.optimizer, self.active = module, optimizer, active

    def __enter__(self) -> TraceGuard:
        if self.active:
            self.params = dict(self.module.parameters())
            self.state = (
                tree_map(lambda x: x, self.optimizer.state) if self.optimizer is not None else None
            )
        return self

    def __exit__(self, kind: Any, error: Any, traceback: Any) -> None:
        if self.active and error is not None:
            self.module.update(self.params)
            if self.state is not None:
                self.optimizer.state = self.state
            mx.random.seed(0)  # the trainer reseeds before every step anyway
