"""The host side of the compiled train step: ``StepRunner`` runs it one micro-batch at a time
(which graph, the step clock, the deferred non-finite flags, the agreed stop) and owns the
gradient accumulator. The traced step itself is ``_step.StepBuilder``."""

from __future__ import annotations

from typing import Any

import mlx.core as mx
import numpy as np

from ._counters import Counters, counters_at, guard_of
from ._rng import current_key
from ._step import StepBuilder, TraceGuard

_KEPT = 1024  # calls whose loss the host keeps before it looks at the guard itself


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
        # NOTE [the step's counters]: [the step clock, the non-finite guard] on the device
        self.counters: Counters = counters_at(0)
        self.calls = 0
        # "raise": call number -> (where it ran, its loss), since the last check
        self.recent: dict[int, tuple[Any, mx.array]] = {}
        self._in_flight: mx.array | None = None
        self._stops: list[mx.array] = []  # the calls' agreed stop requests, not read yet
        self._no_stop = zero  # one process: its stop request is read on the host
        # NOTE [step clock]: what the host expects the device's clock to read next (None: a
        # new clock is made for the next call)
        self._expect: int | None = None
        # NOTE [the run's key]: the key each call starts from (a lazy reference: no read), for the
        # anomaly re-run; and, during validation in fit, the key training goes on with
        self.key_before: mx.array = current_key()
        self.held_key: mx.array | None = None

    def run(
        self,
        batch: Any,
        batch_idx: int,
        update: bool,
        where: Any = None,
        stop: int = 0,
    ) -> tuple[Any, dict[str, Any], dict[str, Any], bool, bool]:
        """``(loss, returned metrics, logged values, whether the weights were updated, whether
        this batch's loss and gradients were finite)`` -- under ``"raise"`` both are assumed
        until :meth:`first_nonfinite` says otherwise. ``stop``: this rank's stop request
        (NOTE [agreed stop]). MLX's key is the step's own state (NOTE [the run's key])."""
        builder = self.builder
        self.key_before = current_key()
        request = self._no_stop if builder.world == 1 and stop == 0 else mx.array(float(stop))
        call = self.calls
        self.calls += 1
        if len(self.recent) >= _KEPT:  # bounded: a look at the guard every _KEPT calls at most
            self._forget()
        deferred = builder.strict_nonfinite
        with TraceGuard(builder.module, builder.optimizer, builder.note_shapes(batch)):
            if self.accumulate == 1:
                counters = self._tick(batch_idx)
                self._expect = None  # until the step is built (a failed trace leaves none)
                loss, packed, applied, self.counters, agreed, updates = builder.fused(
                    batch, counters, request
                )
                if updates:
                    builder.metric_updates.apply(updates[0])
                self._expect = batch_idx + 1
                if deferred:
                    self.recent[call] = (where, loss)
                self._note_stop(agreed)
                self._dispatch(
                    [
                        builder.state,
                        loss,
                        packed,
                        applied,
                        self.counters,
                        agreed,
                        updates,
                    ],
                    loss,
                    deferred,
                )
                none = builder.returned_none  # counts as a step, as in Lightning
                done = True if deferred or none else bool(applied.item())
                return (loss, *builder.unpack(packed), done, done)
            index = mx.array(batch_idx)
            total = self.total if self.total is not None else builder.zeros
            loss, packed, total, ok, applied, self.counters, agreed, updates = builder.accumulating(
                batch, index, total, mx.array(float(self.micro)), self.counters, request, update
            )
            if updates:
                builder.metric_updates.apply(updates[0])
            if deferred:
                self.recent[call] = (where, loss)
            self._note_stop(agreed)
            kept = [] if update else [total]
            self._dispatch(
                [builder.state, loss, packed, ok, applied, self.counters, agreed, updates, *kept],
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

    def _tick(self, batch_idx: int) -> Counters:
        """NOTE [step clock]: the counters for this call; a new clock only when the device's
        would read another value (the guard lane kept)."""
        if batch_idx != self._expect:
            return counters_at(batch_idx, self.counters)
        return self.counters

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

    def _forget(self) -> None:
        """Drop the kept losses when no call went bad yet (one device read)."""
        if not guard_of(self.counters):
            self.recent.clear()

    def first_nonfinite(self) -> tuple[Any, float] | None:
        """``(where, loss)`` of the first bad call since the last check, or None (one device
        read). The guard counts the calls since the first bad one (NOTE [deferred non-finite
        check]), the host counts every call: the difference is its number."""
        since = guard_of(self.counters)
        if not since:
            self.recent.clear()
            return None
        where, loss = self.recent.get(self.calls - since, (None, mx.array(float("nan"))))
        return where, float(np.asarray(loss))
