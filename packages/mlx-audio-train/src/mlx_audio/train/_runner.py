"""The host side of the compiled train step: ``StepRunner`` runs it one micro-batch at a time
(which graph, the step clock, the deferred non-finite flags, the agreed stop) and owns the
gradient accumulator. The traced step itself is ``_step.StepBuilder``."""

from __future__ import annotations

from typing import Any

import mlx.core as mx
import numpy as np

from ._rng import seed_step
from ._step import Guard, StepBuilder, TraceGuard


class StepRunner:
    """Runs the train step one micro-batch at a time and owns the gradient accumulator.

    NOTE [update boundaries]: the loop tells each call whether the batch ends an accumulation
    group (``update``, Lightning's rule: every ``accumulate_grad_batches``-th batch of the epoch
    and its last batch); weights, optimizer state and ``global_step`` change only there. The
    running sum lives in ``total`` between calls; validation may run inside a group (as in
    Lightning), so a checkpoint written there stores ``total`` too (checkpoint.py), and a resumed
    run ends bit-identical.
    """

    def __init__(self, builder: StepBuilder, accumulate: int) -> None:
        self.builder = builder
        self.accumulate = accumulate
        self.total: Any = None
        self.micro = 0  # finite micro-batches summed in ``total``
        zero = mx.array(0.0)
        self.guard: Guard = (zero, zero, zero)  # NOTE [deferred non-finite check]
        self.calls = 0
        self.recent: dict[int, Any] = {}  # call number -> where it ran, since the last check
        self._in_flight: mx.array | None = None
        self._stops: list[mx.array] = []  # the calls' agreed stop requests, not read yet
        self._no_stop = zero  # one process: its stop request is read on the host
        # NOTE [step clock]: the device's clock and what the host expects it to read next
        self._clock: mx.array | None = None
        self._expect: tuple[int, int] | None = None

    def run(
        self,
        batch: Any,
        batch_idx: int,
        update: bool,
        where: Any = None,
        stop: int = 0,
        seed: tuple[int, int, int, int] | None = None,
    ) -> tuple[Any, dict[str, Any], dict[str, Any], bool, bool]:
        """``(loss, returned metrics, logged values, whether the weights were updated, whether
        this batch's loss and gradients were finite)`` -- under ``"raise"`` both are assumed
        until :meth:`first_nonfinite` says otherwise. ``stop``: this rank's stop request
        (NOTE [agreed stop]). ``seed``: ``seed_step``'s ``(base, global_step, micro, rank)``
        to seed this step's random key with (None: the caller seeded it)."""
        builder = self.builder
        if seed is not None:
            seed_step(*seed)
        request = self._no_stop if builder.world == 1 and stop == 0 else mx.array(float(stop))
        self.recent[self.calls] = where
        self.calls += 1
        deferred = builder.strict_nonfinite
        with TraceGuard(builder.module, builder.optimizer, builder.note_shapes(batch)):
            if self.accumulate == 1:
                clock = self._tick(batch_idx)
                self._clock = None  # until the step is built (a failed trace leaves none)
                loss, packed, applied, self.guard, agreed, self._clock, updates = builder.fused(
                    batch, clock, self.guard, request
                )
                self._expect = (self.calls, batch_idx + 1)
                builder.metric_updates.apply(updates)
                self._note_stop(agreed)
                self._dispatch(
                    [builder.state, loss, packed, applied, self.guard, agreed, self._clock],
                    loss,
                    deferred,
                )
                none = builder.returned_none  # counts as a step, as in Lightning
                done = True if deferred or none else bool(applied.item())
                return (loss, *builder.unpack(packed), done, done)
            index = mx.array(batch_idx)
            call = mx.array(float(self.calls - 1))
            total = self.total if self.total is not None else builder.zeros
            loss, packed, total, ok, applied, self.guard, agreed, updates = builder.accumulating(
                batch, index, total, mx.array(float(self.micro)), self.guard, call, request, update
            )
            builder.metric_updates.apply(updates)
            self._note_stop(agreed)
            kept = [] if update else [total]
            self._dispatch(
                [builder.state, loss, packed, ok, applied, self.guard, agreed, *kept],
                loss,
                deferred,
            )
            none = builder.returned_none
            finite = True if deferred or none else bool(ok.item())
            self.total = None if update else total
            self.micro = 0 if update else self.micro + int(finite and not none)
            return (
                loss,
                *builder.unpack(packed),
                update and (deferred or none or bool(applied.item())),
                finite,
            )

    def _tick(self, batch_idx: int) -> mx.array:
        """NOTE [step clock]: the clock for this call; a new one only when the device's would
        read other values."""
        want = (self.calls - 1, batch_idx)
        if self._clock is None or want != self._expect:
            return mx.array(np.array(want, dtype=np.int32))
        return self._clock

    def _dispatch(self, outputs: list[Any], loss: mx.array, deferred: bool) -> None:
        """NOTE [one step in flight]: under ``"raise"`` the step is queued (``mx.async_eval``) and
        the host goes on to fetch the next batch and build the next graph while the device
        computes; waiting for the previous step's loss keeps at most one step ahead (memory
        bounded). Otherwise the step's flags are read right away, so it is evaluated now."""
        if not deferred:
            mx.eval(outputs)
            return
        mx.async_eval(outputs)
        if self._in_flight is not None:
            mx.eval(self._in_flight)
        self._in_flight = loss

    def _note_stop(self, agreed: mx.array) -> None:
        if self.builder.world > 1:  # one process reads its own request (interrupt_handler)
            self._stops.append(agreed)

    def agreed_stop(self) -> int:
        """NOTE [agreed stop]: a rank's stop request (0 none, 1 Ctrl-C, 2 SIGTERM) enters each
        call of the step and leaves it as the largest over the ranks, inside the step's own
        ``all_gather``: no collective of its own and no wait (NOTE [one step in flight]). The host
        reads the calls whose step has completed -- all but the newest under ``"raise"`` -- so
        every rank reads the same calls and stops at the same update boundary, one step later
        than the request at most."""
        ready = self._stops[:-1] if self.builder.strict_nonfinite else self._stops
        level = max((int(np.asarray(flag)) for flag in ready), default=0)
        del self._stops[: len(ready)]
        return level

    def first_nonfinite(self) -> tuple[Any, float] | None:
        """``(where, loss)`` of the first bad call since the last check, or None (one device read)."""
        poisoned, call, loss = (float(v) for v in np.asarray(mx.stack(list(self.guard))))
        if not poisoned:
            self.recent.clear()
            return None
        return self.recent.get(int(call)), loss
