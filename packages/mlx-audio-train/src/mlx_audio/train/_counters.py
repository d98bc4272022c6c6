"""The step's counters: the step clock and the non-finite guard, carried through the compiled
step on the device.

NOTE [the step's counters]: the step clock (NOTE [step clock] in ``_step.py``) and the non-finite
guard (NOTE [deferred non-finite check]) are the two lanes of one int32 vector, ``[clock, calls
since the first bad one]``, that each call of the step takes and returns advanced: both advances
are then one element-wise kernel (they were two scalar kernels: counted with
``mx.export_to_dot`` of the compiled step, ``benchmarks/gpu/step_overhead.py --kernels``), or a
part of the step's scalars kernel on CUDA (NOTE [one kernel for the step's scalars]).
``batch_idx`` is a view of the clock lane (no kernel); the guard lane is what the host reads
when it looks.
"""

from __future__ import annotations

import mlx.core as mx
import numpy as np

__all__ = ["Counters", "advance", "counters_at", "guard_of", "healthy", "lane"]

Counters = mx.array  # int32 (2,): [clock, calls since the first bad one]


def unit(index: int) -> mx.array:
    """1 in lane ``index``, 0 in the other (a constant of the traced step: no kernel)."""
    return mx.array([int(index == 0), int(index == 1)], dtype=mx.int32)


def counters_at(clock: int, previous: Counters | None = None) -> Counters:
    """Counters whose clock reads ``clock``, the guard lane kept from ``previous`` (zero if
    none): made by the host at an epoch's start or a resumed run (NOTE [step clock])."""
    start = mx.array([clock, 0], dtype=mx.int32)
    return start if previous is None else start + previous * unit(1)


def lane(counters: Counters, index: int) -> mx.array:
    """One lane as a 0-d array: a view (``counters[index]`` would be a gather kernel)."""
    return counters[index : index + 1].reshape(())


def guard_of(counters: Counters) -> int:
    """The guard lane: calls since the first bad one (one device read)."""
    return int(np.asarray(counters)[1])


def healthy(counters: Counters, strict: bool) -> mx.array:
    """Whether no call went bad yet (always, where bad calls are skipped rather than raised)."""
    return lane(counters, 1) == 0 if strict else mx.array(True)


def advance(counters: Counters, good: mx.array, clock: bool, strict: bool) -> Counters:
    """NOTE [deferred non-finite check]: under ``on_nonfinite_loss="raise"`` (``strict``) the host
    does not read each step's flag (a device sync per step). The first bad call is recorded in the
    counters' guard lane: the calls since the first bad one -- 0 while every call was good, 1 after
    the first bad one, one more each call after it -- and every later update is gated off, so when
    the host looks (at logging steps, validation, checkpoints and epoch ends) the weights are still
    those from before the bad batch. The host counts the calls and keeps a lazy reference to each
    one's loss until it looks, so it works out which call it was and its loss
    (``StepRunner.first_nonfinite``): no call number enters the step. ``good``: whether the call
    was good, False whenever the guard was already poisoned (the callers gate on it); one
    ``good`` per call. ``clock``: the clock lane advances too (NOTE [step clock]); both lanes in
    one element-wise kernel."""
    if strict:
        poisoned = unit(1) * mx.logical_not(good).astype(mx.int32)
        return counters + unit(0) + poisoned if clock else counters + poisoned
    return counters + unit(0) if clock else counters
