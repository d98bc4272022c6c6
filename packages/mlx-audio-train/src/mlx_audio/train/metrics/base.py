"""``Metric``: torchmetrics' protocol (``update`` / ``compute`` / ``reset`` / ``forward``) with
states kept as ``mx.array`` on the device and reduced across ranks at ``compute``.

NOTE [metric updates leave the compiled step]: a Metric updated inside a compiled step (a
``training_step`` / ``validation_step`` traced by ``mx.compile``) cannot keep the traced arrays
in its states: the Python body runs only while tracing. So inside a step (``deferring()``, entered
by ``_forward.forward``) ``update`` and ``forward`` compute the batch's *contribution* to the
states (a pure function of the batch) and queue it; the step returns the queued contributions as
outputs and the caller merges the real arrays after each call (``apply_pending``), remembering
which metric each belongs to from the trace (the order never changes between traces of one
step). Merging is a lazy sum or append: no device sync per step.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from typing import Any

import mlx.core as mx
import numpy as np

_PENDING: contextvars.ContextVar[list[tuple[Metric, dict[str, mx.array]]] | None] = (
    contextvars.ContextVar("mlx_audio_metric_updates", default=None)
)
_REDUCTIONS = ("sum", "cat", "max", "min")


@contextlib.contextmanager
def deferring() -> Iterator[list[tuple[Metric, dict[str, mx.array]]]]:
    """Queue metric updates made inside (NOTE [metric updates leave the compiled step])."""
    pending: list[tuple[Metric, dict[str, mx.array]]] = []
    token = _PENDING.set(pending)
    try:
        yield pending
    finally:
        _PENDING.reset(token)


def tracing() -> bool:
    """Whether metric updates are being queued (inside a step, maybe traced by mx.compile)."""
    return _PENDING.get() is not None


class StepUpdates:
    """The metric updates of one compiled step (NOTE [metric updates leave the compiled step]):
    ``pack`` (while the step runs or is traced) remembers which metric each queued contribution
    belongs to and returns them as one float32 vector (one output: NOTE [one aux array] in
    _step.py); ``apply`` (after each call) splits the real vector and merges it."""

    def __init__(self) -> None:
        self.layout: list[tuple[Metric, list[tuple[str, tuple[int, ...], mx.Dtype]]]] = []

    def pack(self, pending: list[tuple[Metric, dict[str, mx.array]]]) -> mx.array:
        self.layout = [
            (metric, [(k, tuple(v.shape), v.dtype) for k, v in contribution.items()])
            for metric, contribution in pending
        ]
        flat = [v.astype(mx.float32).reshape(-1) for _, c in pending for v in c.values()]
        return mx.concatenate(flat) if flat else mx.zeros((0,))

    def apply(self, packed: mx.array) -> None:
        if not self.layout:
            return
        start = 0
        merged: list[mx.array] = []
        for metric, fields in self.layout:
            contribution = {}
            for name, shape, dtype in fields:
                size = int(np.prod(shape)) if shape else 1
                contribution[name] = packed[start : start + size].reshape(shape).astype(dtype)
                start += size
            metric._merge(contribution)
            merged.extend(v for v in metric._states.values() if isinstance(v, mx.array))
        mx.async_eval(merged)  # the running sums never wait for a sync, nor grow a long graph


class Metric:
    """Base of the metrics (torchmetrics' ``Metric``): subclasses declare states with
    :meth:`add_state` in ``__init__``, implement ``_contribution(*args)`` (the batch's share of
    every state, a pure function of the batch) and ``_compute(states)``.

    ``update(*args)`` adds a batch; ``compute()`` gives the value over everything since the
    last ``reset()`` (over all ranks when ``sync_on_compute``, data-parallel); ``forward(*args)``
    / ``metric(*args)`` adds a batch and returns the value on that batch alone. Logged with
    ``self.log(name, metric)``, its epoch value is ``compute()`` at the epoch's end (not a mean
    of batch values) and the metric is reset after the epoch, as Lightning does.
    """

    def __init__(self, sync_on_compute: bool = True) -> None:
        self.sync_on_compute = bool(sync_on_compute)
        self._defaults: dict[str, tuple[mx.array, str]] = {}
        self._states: dict[str, Any] = {}  # name -> array ("sum"/"max"/"min") or list ("cat")
        self._update_count = 0
        self._computed: Any = None
        self._forward_cache: Any = None
        self._cat_rows: dict[str, mx.array] = {}  # "cat" state -> an empty (0, ...) of its rows

    # -- states ------------------------------------------------------------------------------
    def add_state(
        self,
        name: str,
        default: mx.array | list[Any],
        dist_reduce_fx: str,
        row_shape: tuple[int, ...] | None = None,
    ) -> None:
        """A state: an array merged by ``"sum"``/``"max"``/``"min"`` (and reduced so across
        ranks), or ``[]`` for ``"cat"`` (batches appended, gathered across ranks; ``row_shape``,
        the shape of one row, lets a rank that saw no batch take part in the gather)."""
        if dist_reduce_fx not in _REDUCTIONS:
            raise ValueError(
                f"{type(self).__name__}.add_state({name!r}): dist_reduce_fx must be one of "
                f"{_REDUCTIONS}, got {dist_reduce_fx!r}"
            )
        if dist_reduce_fx == "cat":
            if default != []:
                raise ValueError(f"a 'cat' state starts as [], got {default!r}")
            self._defaults[name] = (mx.zeros((0,)), "cat")
            self._states[name] = []
            if row_shape is not None:
                self._cat_rows[name] = mx.zeros((0, *row_shape))
        else:
            if not isinstance(default, mx.array):
                raise ValueError(f"state {name!r}: default must be an mx.array, got {default!r}")
            self._defaults[name] = (default, dist_reduce_fx)
            self._states[name] = default

    @property
    def update_count(self) -> int:
        return self._update_count

    def reset(self) -> None:
        for name, (default, reduce) in self._defaults.items():
            self._states[name] = [] if reduce == "cat" else default
        self._update_count = 0
        self._computed = None
        self._forward_cache = None

    def _merge(self, contribution: dict[str, mx.array]) -> None:
        for name, value in contribution.items():
            reduce = self._defaults[name][1]
            current = self._states[name]
            if reduce == "cat":
                current.append(value)
            elif reduce == "sum":
                self._states[name] = current + value
            else:
                self._states[name] = (mx.maximum if reduce == "max" else mx.minimum)(current, value)
        self._update_count += 1
        self._computed = None

    # -- torchmetrics' API -------------------------------------------------------------------
    def update(self, *args: Any, **kwargs: Any) -> None:
        contribution = self._contribution(*args, **kwargs)
        pending = _PENDING.get()
        if pending is not None:  # NOTE [metric updates leave the compiled step]
            pending.append((self, contribution))
        else:
            self._merge(contribution)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        """Add the batch and return the metric on this batch alone."""
        contribution = self._contribution(*args, **kwargs)
        value = self._compute(self._as_states(contribution))
        pending = _PENDING.get()
        if pending is not None:
            pending.append((self, contribution))
        else:
            self._merge(contribution)
        self._forward_cache = value
        return value

    __call__ = forward

    def compute(self) -> Any:
        """The value over every batch since the last reset (all ranks' when
        ``sync_on_compute`` and data-parallel); cached until the next update."""
        if tracing():
            raise RuntimeError(
                f"{type(self).__name__}.compute() inside a step: a compiled step would read the "
                "states as they were when it was traced. Log the metric object "
                "(self.log(name, metric)) or call compute() in an epoch-end hook"
            )
        if self._computed is None:
            self._computed = self._compute(self._synced_states())
        return self._computed

    # -- for subclasses ------------------------------------------------------------------------
    def _contribution(self, *args: Any, **kwargs: Any) -> dict[str, mx.array]:
        raise NotImplementedError

    def _compute(self, states: dict[str, mx.array]) -> Any:
        raise NotImplementedError

    def _as_states(self, contribution: dict[str, mx.array]) -> dict[str, mx.array]:
        return {k: v for k, v in contribution.items()}

    def _local_states(self) -> dict[str, mx.array]:
        states = {}
        for name, (_, reduce) in self._defaults.items():
            value = self._states[name]
            if reduce == "cat":
                empty = self._cat_rows.get(name)  # a rank without updates still joins a gather
                value = mx.concatenate(value, axis=0) if value else empty
            states[name] = value
        return states

    def _synced_states(self) -> dict[str, mx.array]:
        from .. import distributed

        states = self._local_states()
        if not self.sync_on_compute or distributed.world_size() == 1:
            return states
        return _sync(states, {k: r for k, (_, r) in self._defaults.items()})

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def _sync(states: dict[str, Any], reductions: dict[str, str]) -> dict[str, Any]:
    """Every rank's states combined (``all_sum`` / ``all_max`` / ``all_min``; ``cat`` states
    gathered, padded to the longest rank's and trimmed back)."""
    from .. import distributed

    group = distributed.group()
    world = distributed.world_size()
    rank = distributed.global_rank()
    out: dict[str, Any] = {}
    for name in sorted(states):
        value, reduce = states[name], reductions[name]
        if reduce == "sum":
            out[name] = mx.distributed.all_sum(value, group=group)
        elif reduce in ("max", "min"):
            fn = mx.distributed.all_max if reduce == "max" else mx.distributed.all_min
            out[name] = fn(value, group=group)
        else:
            out[name] = _gather(value, world, rank, group)
    return out


def _gather(value: mx.array | None, world: int, rank: int, group: Any) -> mx.array | None:
    """One "cat" state over the ranks: lengths (and whether a rank has no rows to give a shape)
    shared first, so every rank agrees on what follows: the gather, None, or the error."""
    length = 0 if value is None else int(value.shape[0])
    shared = mx.zeros((2 * world,), dtype=mx.int32).at[rank].add(length)
    shared = mx.distributed.all_sum(shared.at[world + rank].add(int(value is None)), group=group)
    numbers = [int(c) for c in np.asarray(shared)]
    sizes, shapeless = numbers[:world], numbers[world:]
    if max(sizes) == 0:
        return None
    if any(shapeless):
        raise ValueError(
            "a 'cat' state cannot be gathered: a rank saw no batch and its add_state has no "
            "row_shape to stand in with"
        )
    assert value is not None
    step = max(sizes)
    pad = step - length
    padded = mx.pad(value, [(0, pad)] + [(0, 0)] * (value.ndim - 1)) if pad else value
    gathered = mx.distributed.all_gather(padded, group=group)
    return mx.concatenate([gathered[i * step : i * step + sizes[i]] for i in range(world)], axis=0)
