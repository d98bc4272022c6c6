"""The step's scalars in one custom CUDA kernel: the gradients' norm, the clip scale, whether
the update applies, and the step's counters.

NOTE [one kernel for the step's scalars]: between the backward pass and the optimizer's update,
MLX's formulation of the guarded step (NOTE [non-finite steps] in ``_step.py``, NOTE [the step's
counters]) makes a few 0-d arrays, each a kernel of its own on CUDA: the gradients' sum of
squares (one kernel with NOTE [one kernel for the gradients' sum of squares]), the clip scale
(NaN where the norm is not finite), whether the update applies (the loss finite, the scale
finite, no earlier call bad under ``"raise"``) and the counters' advance -- four kernels of a
small step that the per-kernel cost bounds (the tutorial CNN's). Where the gradients fit one
block of the norm's kernel (``_kernels._ONE_BLOCK`` elements), :func:`step_scalars` computes all
of them in that block: its threads sum the squares as the norm's kernel does, then its first
thread computes the scale, the flag and the new counters as :func:`reference_step_scalars`
(MLX's ops, what runs everywhere else) does, in float32, its Python constants rounded to float32
as MLX rounds them. The clip and the ``"raise"``/``"skip"`` choice are an input (:func:`rule`),
so one kernel serves a model whatever they are (and the first-use check compiles one more). It
checks itself at first use against that reference (NOTE [a custom kernel checks itself first]);
for larger models (CLAP) the four kernels are a negligible part of the step and MLX's
formulation runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import mlx.core as mx
import numpy as np

from . import _kernels
from ._counters import Counters, advance, healthy
from ._guarded import clip_scale

__all__ = ["reference_step_scalars", "step_scalars"]

Scalars = tuple[mx.array, mx.array, Counters]  # the clip scale, applied, the new counters


def step_scalars(
    leaves: Sequence[mx.array],
    loss: mx.array,
    counters: Counters,
    clip: float | None,
    strict: bool,
) -> Scalars | None:
    """``(scale, applied, counters)`` from one kernel (NOTE [one kernel for the step's scalars]),
    or None where it does not apply: the caller computes them in MLX's ops then."""
    if not leaves or not _kernels.cuda_step_kernels():
        return None
    sizes = tuple(int(g.size) for g in leaves)
    dtypes = tuple(g.dtype for g in leaves)
    if sum(sizes) > _kernels._ONE_BLOCK or len(sizes) > _kernels._MAX_INPUTS:
        return None
    if any(d not in _kernels._DTYPES for d in (*dtypes, loss.dtype)) or not _checked():
        return None
    return _launch(sizes, [*leaves, loss, counters, rule(clip, strict)])


def rule(clip: float | None, strict: bool) -> mx.array:
    """The kernel's settings as an input (one kernel whatever they are): ``[clip, strict]``, an
    infinite clip where there is none (its scale is then 1 for any finite norm)."""
    return mx.array([float("inf") if clip is None else clip, float(strict)], dtype=mx.float32)


def reference_step_scalars(
    leaves: Sequence[mx.array],
    loss: mx.array,
    counters: Counters,
    clip: float | None,
    strict: bool,
) -> Scalars:
    """The same in MLX's ops (as ``StepBuilder._scalars`` and ``advance`` compute them)."""
    scale = clip_scale(mx.sqrt(_kernels.reference_sum_of_squares(leaves)), clip)
    finite = mx.logical_and(mx.isfinite(loss), healthy(counters, strict))
    applied = mx.logical_and(finite, mx.isfinite(scale))
    return scale, applied, advance(counters, applied, True, strict)


def _launch(sizes: tuple[int, ...], inputs: list[mx.array]) -> Scalars:
    """``inputs``: the gradients, the loss, the counters and the :func:`rule`."""
    names, kernel = _kernel(sizes, tuple(a.dtype for a in inputs))
    scale, applied, counted = kernel(
        inputs=inputs,
        grid=(_kernels._THREADS, 1, 1),
        threadgroup=(_kernels._THREADS, 1, 1),
        output_shapes=[(1,), (1,), (2,)],
        output_dtypes=[mx.float32, mx.bool_, mx.int32],
    )
    return scale.reshape(()), applied.reshape(()), counted


def kernel_source(sizes: Sequence[int]) -> tuple[str, list[str]]:
    """``(body, input names)``: inputs ``g0, g1, ...`` (any float type), ``loss`` (0-d),
    ``counters`` (int32, 2) and ``rule`` (float32, 2: :func:`rule`); outputs ``scale``
    (float32), ``applied`` (bool), ``counted`` (int32, 2). One block of ``_kernels._THREADS``
    threads."""
    lines = _kernels.sum_lines(sizes, max(1, sum(sizes)))
    # finite(x): x - x is 0 for a finite x and NaN for an infinite or NaN one (IEEE arithmetic:
    # no math library, the same under NVRTC and the emulator's g++)
    lines += [
        "  if (threadIdx.x == 0) {",
        "    const float norm = sqrtf(partial[0]);",
        f"    const float bound = fminf(1.0f, rule[0] / (norm + {_kernels.f32(1e-6)}));",
        "    const float sc = (norm - norm) == 0.0f ? bound : norm - norm;  // else NaN",
        "    const bool strict = rule[1] != 0.0f;",
        "    const float lv = static_cast<float>(loss[0]);",
        "    const bool ok = (lv - lv) == 0.0f && (sc - sc) == 0.0f && (!strict || counters[1] == 0);",
        "    scale[0] = sc;",
        "    applied[0] = ok;",
        "    counted[0] = counters[0] + 1;",
        "    counted[1] = counters[1] + (strict && !ok ? 1 : 0);",
        "  }",
    ]
    return "\n".join(lines), [*(f"g{i}" for i in range(len(sizes))), "loss", "counters", "rule"]


OUTPUTS = ["scale", "applied", "counted"]


@lru_cache(maxsize=64)
def _kernel(
    sizes: tuple[int, ...], dtypes: tuple[mx.Dtype, ...]
) -> tuple[list[str], _kernels.Kernel]:
    body, names = kernel_source(sizes)
    return names, _kernels.cuda_kernel(body, names, OUTPUTS, dtypes, "step_scalars")


@lru_cache(maxsize=1)
def _checked() -> bool:
    """NOTE [a custom kernel checks itself first]: every case of :func:`check` agrees (one
    kernel, compiled once: the cases differ in their inputs)."""
    try:
        detail = check()
    except Exception as error:  # a JIT or launch failure: MLX's ops instead
        detail = f"{type(error).__name__}: {error}"
    if detail:
        _kernels.failed_check("the step's scalars", detail, "MLX's ops")
    return not detail


def check() -> str:
    """The kernel against :func:`reference_step_scalars` on small arrays: gradients within and
    beyond the clip, a NaN gradient, an infinite loss, an earlier bad call, no clipping, and
    ``"skip"``; "" when all agree, else what differs."""
    key = mx.random.key(2)
    leaves = [mx.random.normal((300, 7), key=key), mx.random.normal((5,), key=key) * 0.01]
    nan = [leaves[0], mx.full((5,), mx.nan)]
    one, inf = mx.array(0.7), mx.array(float("inf"))
    cases = [
        (leaves, one, [3, 0], 1.0, True),
        (leaves, one, [3, 0], 1e3, True),
        (nan, one, [3, 0], 1.0, True),
        (leaves, inf, [3, 0], 1.0, True),
        (leaves, one, [3, 2], 1.0, True),
        (leaves, one, [3, 0], None, True),
        (nan, one, [3, 2], None, False),
        (leaves, inf, [3, 0], 1.0, False),
    ]
    for grads, loss, lanes, clip, strict in cases:
        counters = mx.array(lanes, dtype=mx.int32)
        sizes = tuple(int(g.size) for g in grads)
        got = _launch(sizes, [*grads, loss, counters, rule(clip, strict)])
        want = reference_step_scalars(grads, loss, counters, clip, strict)
        scale, applied, counted = (np.asarray(a) for a in got)
        if not (
            np.allclose(scale, np.asarray(want[0]), rtol=1e-5, equal_nan=True)
            and bool(applied) == bool(want[1])
            and counted.tolist() == np.asarray(want[2]).tolist()
        ):
            expected = [np.asarray(a).tolist() for a in want]
            return f"clip {clip}, counters {lanes}: {[scale.tolist(), bool(applied), counted.tolist()]} where MLX's ops give {expected}"
    return ""
