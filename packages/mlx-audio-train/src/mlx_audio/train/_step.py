"""The compiled train step (mlx-lm style: explicit state, one graph per case).

State captured by ``mx.compile``: ``[model.state, optimizer.state, mx.random.state]``.
Without accumulation the step is one fused graph (forward, backward, clip, update). With
``accumulate_grad_batches > 1`` the step takes the running gradient sum and a 0-d count and
updates behind one Python bool, so it traces at most twice; the update divides by the number
of micro-batches actually accumulated, so a short group at the end of an epoch is exact.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim
import numpy as np
from mlx.utils import tree_map, tree_unflatten

from . import distributed
from ._adam_kernel import fused_update, fused_update_applies
from ._counters import Counters, advance, healthy, lane
from ._forward import forward
from ._guard_kernel import step_scalars
from ._guarded import clip_scale, global_norm, select_in_place, state_at, tied
from ._metrics import REPEAT
from ._rng import current_key
from ._tree import flatten
from .metrics.base import StepUpdates

if TYPE_CHECKING:
    from .module import TrainModule

_RETRACE_WARNING_AFTER = 8


class StepBuilder:
    """Builds the train/eval functions for one ``fit`` (rebuilt after loading a checkpoint)."""

    def __init__(
        self,
        module: TrainModule,
        optimizer: optim.Optimizer,
        accumulate: int,
        clip_val: float | None,
        clip_algorithm: str,
        precision: str,
        compile: bool,
        strict_nonfinite: bool = True,
    ) -> None:
        self.module = module
        self.optimizer = optimizer
        self.accumulate = accumulate
        self.clip_val = clip_val
        self.clip_algorithm = clip_algorithm
        self.precision = precision
        self.compile = compile
        self.strict_nonfinite = strict_nonfinite
        self.world = distributed.world_size()
        self._shapes: set[tuple[Any, ...]] = set()
        self._warned = False
        self._calls = 0
        optimizer.init(module.trainable_parameters())
        mx.eval(optimizer.state)
        self._zeros: Any = None
        state = [module.state, optimizer.state, mx.random.state]  # what each step updates
        self.state = state
        self._aux_keys: tuple[list[str], list[str]] = ([], [])
        self.metric_updates = StepUpdates()  # NOTE [metric updates leave the compiled step]
        self.auto_log = True  # NOTE [two logging idioms], found when the step is traced
        self.returned_none = False  # NOTE [a step that returns None], found when traced
        wrap = (
            (lambda fn: mx.compile(fn, inputs=state, outputs=state)) if compile else (lambda fn: fn)
        )
        self._value_and_grad = nn.value_and_grad(module, self._loss)
        self.fused = wrap(self._fused)
        self.accumulating = wrap(self._accumulating)

    @property
    def zeros(self) -> Any:
        """A zero gradient tree (the accumulator's start), built only when accumulating."""
        if self._zeros is None:
            self._zeros = tree_map(mx.zeros_like, self.module.trainable_parameters())
            mx.eval(self._zeros)
        return self._zeros

    # -- traced pieces -----------------------------------------------------------------------
    def _loss(self, batch: Any, batch_idx: mx.array) -> tuple[mx.array | None, Any]:
        # NOTE [one aux array]: the returned metrics and self.log values leave the traced step as
        # one array (names kept here, see `unpack`): the value itself when there is one (no
        # kernel), else the values stacked into one vector -- under mx.compile, MLX 0.32's
        # value_and_grad fails (IndexError `_Map_base::at`) when its aux output holds two equal
        # expressions that do not depend on the parameters, e.g. two self.log calls of one value.
        # The Metric updates (NOTE [metric updates leave the compiled step]) are a second array,
        # present only when some Metric was updated: no per-step array otherwise.
        loss, metrics, logged, _, self.auto_log, updates = forward(
            self.module, batch, batch_idx, "train", self.precision, self.metric_updates
        )
        self.returned_none = loss is None
        if loss is None:  # zero gradients, and the update is left out (see _fused)
            loss = mx.zeros(())
        self._aux_keys = (list(metrics), list(logged))
        values = [*metrics.values(), *logged.values()]
        packed = values[:1] if len(values) == 1 else [mx.stack(values)] if values else []
        return loss, (packed, [updates] if updates.size else [])

    def unpack(self, packed: list[mx.array]) -> tuple[dict[str, mx.array], dict[str, mx.array]]:
        """``(returned metrics, logged values)`` from the step's aux array (NOTE [one aux
        array]): a lazy view of it per value, made only when there are several."""
        metric_keys, logged_keys = self._aux_keys
        count = len(metric_keys) + len(logged_keys)
        if count <= 1:
            values = packed
        else:
            values = [packed[0][i] for i in range(count)]
        return dict(zip(metric_keys, values)), dict(zip(logged_keys, values[len(metric_keys) :]))

    def _across_ranks(
        self, loss: mx.array, packed: list[mx.array], stop: mx.array
    ) -> tuple[mx.array, list[mx.array], mx.array]:
        """Data-parallel: the loss and the returned metrics averaged over the ranks, each
        ``self.log`` value reduced by its ``reduce_fx`` -- so every rank logs, and decides on,
        the whole global batch's values (a 1-process run's) -- and the largest stop request
        (NOTE [agreed stop]), all in the step's one ``all_gather``."""
        if self.world == 1:
            return loss, packed, stop
        options = self.module._log_options.get("training_step", {})
        modes = ["mean"] * (1 + len(self._aux_keys[0]))
        names = [k.split(REPEAT, 1)[0] for k in self._aux_keys[1]]  # _metrics.REPEAT
        modes += [options[k].reduce_fx if k in options else "mean" for k in names]
        row = [loss, *packed, stop]
        columns = mx.concatenate([v.reshape(-1).astype(mx.float32) for v in row])
        reduced = distributed.reduce_columns(columns, [*modes, "max"])
        values = [reduced[1:-1].reshape(p.shape).astype(p.dtype) for p in packed]
        return reduced[0].astype(loss.dtype), values, reduced[-1].astype(stop.dtype)

    def _update(self, grads: Any, finite: mx.array) -> mx.array:
        """Clip and apply (MLX's ops) unless ``finite`` is False or the gradients are not
        finite; returns whether the update was applied."""
        grads, scale, applied = self._scalars(grads, finite)
        self._apply(grads, scale, applied)
        return applied

    def _scalars(self, grads: Any, finite: mx.array) -> tuple[Any, mx.array | None, mx.array]:
        """``(gradients, clip scale or None, whether the update applies)``: clipped by value
        when so asked; the update applies where ``finite`` and the gradients' norm is finite.

        NOTE [non-finite steps]: the update is computed and then selected with ``mx.where``
        against the previous weights and optimizer state, inside the compiled step: a NaN/Inf
        loss or gradient never reaches the weights, with no host round trip to decide it."""
        norm = global_norm(grads)
        if self.clip_val is not None and self.clip_algorithm == "norm":
            # NaN where the norm is not finite: the norm's one consumer is then the scale, and
            # its sum, root and division stay one kernel (as in a plain clip_grad_norm)
            scale = clip_scale(norm, self.clip_val)
            return grads, scale, mx.logical_and(finite, mx.isfinite(scale))
        if self.clip_val is not None:
            bound = self.clip_val
            grads = tree_map(lambda g: mx.clip(g, -bound, bound), grads)
        return grads, None, mx.logical_and(finite, mx.isfinite(norm))

    def _apply(self, grads: Any, scale: mx.array | None, applied: mx.array) -> None:
        """The optimizer's update of the (scaled) gradients, kept only where ``applied``.

        NOTE [one fused guarded update]: selected naively (every new weight and every new state
        array against its old value), the selection splits each parameter's update -- one fused
        element-wise kernel in a plain step -- into five or six: MLX fuses an intermediate only
        when all its consumers are in the same kernel, and the new moments then feed both the
        weight's formula and their own selection. So each weight's kept value is tied, by an
        inert ``where(s == s, old, old)``, to the already selected state arrays of its shape: the
        weight, its state and the selections become one kernel again (counted with
        ``mx.export_to_dot`` on the compiled step: ``benchmarks/gpu/step_overhead.py --kernels``).
        """
        # NOTE [one kernel for the optimizer's update] (CUDA, Adam/AdamW)
        if fused_update_applies(self.optimizer, grads):
            fused_update(self.optimizer, self.module, grads, scale, applied)
            return
        if scale is not None:
            grads = tree_map(lambda g: (g * scale).astype(g.dtype), grads)
        params = self.module.trainable_parameters()
        state = tree_map(lambda x: x, self.optimizer.state)
        self.optimizer.update(self.module, grads)
        select_in_place(self.optimizer.state, state, applied)  # in place: compile captured it
        selected, old = self.optimizer.state, dict(flatten(params))
        kept = [
            (k, mx.where(applied, new, tied(old[k], state_at(selected, k))))
            for k, new in flatten(self.module.trainable_parameters())
        ]
        self.module.update(tree_unflatten(kept))

    def _fused(self, batch: Any, counters: Counters, stop: mx.array) -> tuple[Any, ...]:
        """One step without accumulation: gradients averaged (data-parallel), clipped and
        applied unless the loss or the gradients are not finite (or an earlier call was bad,
        under ``"raise"``). NOTE [step clock]: ``batch_idx`` is the counters' clock lane, a 0-d
        int32 that stays on the device and leaves the step advanced by one: no small array is
        made on the host and copied to the device per step for it (the host makes new counters
        only when the device's clock would read another value: an epoch's start, a resumed
        run). MLX's random key is part of the state and is not seeded per step either (NOTE [the
        run's key] in _rng.py)."""
        (loss, (packed, updates)), grads = self._value_and_grad(batch, lane(counters, 0))
        loss, packed, stop = self._across_ranks(loss, packed, stop)  # a NaN on any rank: skipped
        strict = self.strict_nonfinite
        if self.returned_none:  # NOTE [a step that returns None]: no update, nothing poisoned
            counters = advance(counters, healthy(counters, strict), True, strict)  # a call
            return loss, packed, mx.array(False), counters, stop, updates
        if self.world > 1:
            grads = nn.average_gradients(grads)
        folded = None  # NOTE [one kernel for the step's scalars] (CUDA, small models)
        if self.clip_val is None or self.clip_algorithm == "norm":
            leaves = [g for _, g in flatten(grads)]
            folded = step_scalars(leaves, loss, counters, self.clip_val, strict)
        if folded is not None:
            scale, applied, counters = folded
            self._apply(grads, scale, applied)
            return loss, packed, applied, counters, stop, updates
        applied = self._update(grads, mx.logical_and(mx.isfinite(loss), healthy(counters, strict)))
        counters = advance(counters, applied, True, strict)  # applied: finite and healthy
        return loss, packed, applied, counters, stop, updates

    def _accumulating(
        self,
        batch: Any,
        batch_idx: mx.array,
        total: Any,
        count: mx.array,
        counters: Counters,
        stop: mx.array,
        do_update: bool,
    ) -> tuple[Any, ...]:
        """One micro-batch: its gradients join the group's sum only when it is finite (see
        NOTE [non-finite steps]); at the group's end the mean of the finite ones is applied."""
        (loss, (packed, updates)), grads = self._value_and_grad(batch, batch_idx)
        ok = distributed.all_ranks(
            mx.logical_and(mx.isfinite(loss), mx.isfinite(global_norm(grads)))
        )
        loss, packed, stop = self._across_ranks(loss, packed, stop)
        good = healthy(counters, self.strict_nonfinite)
        if self.returned_none:  # NOTE [a step that returns None]: not part of the group
            ok = mx.array(False)
        else:
            total = tree_map(lambda t, g: mx.where(ok, t + g, t), total, grads)
            count = count + ok.astype(count.dtype)
            good = mx.logical_and(good, ok)
        applied = mx.array(False)
        if do_update:
            mean = tree_map(lambda g: g / mx.maximum(count, 1).astype(g.dtype), total)
            # "raise": a bad micro-batch poisons the guard, so its group never steps; "skip":
            # the group steps with the mean of its finite micro-batches
            gate = mx.logical_and(count > 0, good) if self.strict_nonfinite else count > 0
            if self.world > 1:
                mean = nn.average_gradients(mean)
            applied = self._update(mean, gate)
            good = mx.logical_and(good, mx.logical_or(applied, mx.logical_not(gate)))
        counters = advance(counters, good, False, self.strict_nonfinite)  # batch_idx: the host's
        return loss, packed, total, ok, applied, counters, stop, updates

    # -- bookkeeping -------------------------------------------------------------------------
    def note_shapes(self, batch: Any) -> bool:
        """Record the batch's shapes; warn once when the compiled step keeps seeing new ones (one
        graph each). Returns whether this batch may trigger a trace (for :class:`TraceGuard`)."""
        if not self.compile:
            return False
        leaves = batch if isinstance(batch, (tuple, list)) else [batch]
        if not all(isinstance(x, mx.array) for x in leaves):  # nested: the general walk
            leaves = [x for _, x in flatten(batch)]
        signature = tuple((x.shape, x.dtype) for x in leaves if isinstance(x, mx.array))
        self._calls += 1
        if signature in self._shapes:
            return self._calls <= 4  # the first calls may still trace (update / no-update graphs)
        self._shapes.add(signature)
        if len(self._shapes) > _RETRACE_WARNING_AFTER and not self._warned:
            self._warned = True
            warnings.warn(
                f"the compiled train step has now been traced for {len(self._shapes)} different batch shapes; "
                "MLX keeps one graph per shape, so memory and compile time grow. Pad or bucket inputs to a "
                "few fixed shapes (drop_last=True helps too), or use Trainer(compile=False).",
                stacklevel=3,
            )
        return True


# NOTE [a step that returns None]: Lightning's automatic optimization skips the backward of a
# ``training_step`` that returns None (with its warning, once): the weights and the optimizer
# state stay as they were, ``global_step`` still advances, and with ``accumulate_grad_batches``
# the batch adds nothing to its group (whose mean is over the batches that returned a loss).
# Whether the step returned None is found when it is traced: a compiled step decides it once
# per graph, so a step that returns None for some batches only needs ``Trainer(compile=False)``;
# data-parallel, every rank must return None for the same batches (as with Lightning's DDP).


class TraceGuard:
    """Undo what a failed ``mx.compile`` trace leaves behind.

    When user code raises while a step is being traced, the module's parameters, the
    optimizer's state and MLX's random key can still hold placeholder arrays. Snapshot the
    references before a trace and put them back on error, so the model stays usable.
    """

    def __init__(
        self, module: TrainModule, optimizer: optim.Optimizer | None, active: bool
    ) -> None:
        self.module = module
        self.optimizer = optimizer
        self.active = active

    def __enter__(self) -> TraceGuard:
        if self.active:
            self.params = dict(self.module.parameters())
            self.state = (
                tree_map(lambda x: x, self.optimizer.state) if self.optimizer is not None else None
            )
            self.key = current_key()
        return self

    def __exit__(self, kind: Any, error: Any, traceback: Any) -> None:
        if self.active and error is not None:
            self.module.update(self.params)
            if self.optimizer is not None and self.state is not None:
                self.optimizer.state = self.state
            key_words = np.asarray(self.key, dtype=np.uint32).reshape(-1)  # a failed trace's
            mx.random.seed((int(key_words[0]) << 32) | int(key_words[1]))  # tracer: put back
