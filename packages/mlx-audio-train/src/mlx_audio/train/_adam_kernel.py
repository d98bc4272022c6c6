"""The optimizer's update of every parameter in one custom CUDA kernel, for MLX's ``Adam`` and
``AdamW`` (the tutorial's and CLAP's optimizers).

NOTE [one kernel for the optimizer's update]: MLX applies an optimizer one parameter array at a
time: one fused element-wise kernel per array (weight, both moments and the guard's selection,
NOTE [one fused guarded update]) -- 8 kernels of the tutorial CNN's step, ~200 of CLAP's. On
MLX's CUDA backend a small step is bound by the per-kernel cost, so for ``Adam``/``AdamW``
(exactly those classes: a subclass may change the rule) over float32 weights, moments and
gradients, :func:`fused_update` writes every new weight and moment in one kernel per 32 arrays,
with the clipping scale applied to the gradients and the guard's selection inside it. MLX's own
bookkeeping runs as before (``apply_gradients`` on no parameters: the scheduled learning rate
and ``step + 1``, both selected by the guard), and the element-wise rule is MLX's
``Adam.apply_single`` / ``AdamW.apply_single`` operation for operation in float32, its Python
constants rounded to float32 as MLX rounds them: equal to MLX's update within float32 rounding
(``tests/test_kernels.py`` on CUDA). It checks itself at first use as the norm's kernel does
(NOTE [a custom kernel checks itself first]).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import Any

import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim
from mlx.utils import tree_map, tree_unflatten

from . import _kernels
from ._guarded import select_in_place, state_at
from ._tree import flatten

__all__ = ["fused_update", "fused_update_applies"]

_PER_LAUNCH = 32  # parameter arrays per kernel launch (7 pointers each)
_THREADS = 256
_PER_BLOCK = 4096  # elements per block, the arrays laid end to end
Rule = tuple[float, float, float, float, bool]  # b1, b2, eps, weight decay, bias correction


def _rule(optimizer: optim.Optimizer) -> Rule:
    b1, b2 = (float(b) for b in optimizer.betas)  # type: ignore[attr-defined]
    decay = float(optimizer.weight_decay) if type(optimizer) is optim.AdamW else 0.0
    eps, bias = optimizer.eps, optimizer.bias_correction  # type: ignore[attr-defined]
    return (b1, b2, float(eps), decay, bool(bias))


def fused_update_applies(optimizer: optim.Optimizer, grads: Any) -> bool:
    """Whether :func:`fused_update` can take this update (NOTE [one kernel for the optimizer's
    update]): CUDA kernels on, ``Adam``/``AdamW`` itself, everything float32, plain moments."""
    if type(optimizer) not in (optim.Adam, optim.AdamW) or not _kernels.cuda_step_kernels():
        return False
    for path, g in flatten(grads):
        own = state_at(optimizer.state, path)
        if g.dtype != mx.float32 or not isinstance(own, dict) or set(own) != {"m", "v"}:
            return False
        if any(own[k].dtype != mx.float32 or own[k].shape != g.shape for k in ("m", "v")):
            return False
    return _checked()


def fused_update(
    optimizer: optim.Optimizer,
    module: nn.Module,
    grads: Any,
    scale: mx.array | None,
    applied: mx.array,
) -> None:
    """``optimizer.update(module, grads * scale)``, each new weight, moment, step and scheduled
    value kept only where ``applied`` -- in place, as the compiled step captured the state."""
    old = tree_map(lambda x: x, optimizer.state)
    optimizer.apply_gradients({}, {})  # MLX's bookkeeping: the schedules, then step + 1
    lr = optimizer.learning_rate.astype(mx.float32)
    step = optimizer.step
    select_in_place(optimizer.state, old, applied)
    rule = _rule(optimizer)
    b1, b2, _, _, bias = rule
    scalars = [lr, mx.array(1.0) if scale is None else scale.astype(mx.float32), applied]
    if bias:  # Adam.apply_single's c1, c2, in MLX's own ops
        scalars.append(lr / (1 - b1**step))
        scalars.append(mx.rsqrt(1 - b2**step))
    params = dict(flatten(module.trainable_parameters()))
    leaves = list(flatten(grads))
    kept = []
    for i in range(0, len(leaves), _PER_LAUNCH):
        group = leaves[i : i + _PER_LAUNCH]
        states = [state_at(optimizer.state, path) for path, _ in group]
        arrays = []
        for (path, g), own in zip(group, states):
            arrays += [params[path], g, own["m"], own["v"]]
        outputs = _launch(rule, [g.size for _, g in group], arrays + scalars)
        for j, ((path, g), own) in enumerate(zip(group, states)):
            new, own["m"], own["v"] = (x.reshape(g.shape) for x in outputs[3 * j : 3 * j + 3])
            kept.append((path, new))
    module.update(tree_unflatten(kept))


def _launch(rule: Rule, sizes: list[int], inputs: list[mx.array]) -> list[mx.array]:
    blocks, kernel = _kernel(rule, tuple(int(n) for n in sizes))
    return kernel(
        inputs=inputs,
        grid=(blocks * _THREADS, 1, 1),
        threadgroup=(_THREADS, 1, 1),
        output_shapes=[(n,) for n in sizes for _ in range(3)],
        output_dtypes=[mx.float32] * (3 * len(sizes)),
    )


def kernel_source(rule: Rule, sizes: tuple[int, ...]) -> tuple[int, str, list[str], list[str]]:
    """``(blocks, body, input names, output names)`` of the update kernel for arrays of these
    sizes: inputs ``p{i} g{i} m{i} v{i}`` per array, then ``lr scale applied`` (and ``c1 c2``
    with bias correction); outputs ``np{i} nm{i} nv{i}``."""
    b1, b2, eps, decay, bias = rule
    total = sum(sizes)
    blocks = max(1, -(-total // _PER_BLOCK))
    inputs = [f"{k}{i}" for i in range(len(sizes)) for k in ("p", "g", "m", "v")]
    inputs += ["lr", "scale", "applied"] + (["c1", "c2"] if bias else [])
    outputs = [f"{k}{i}" for i in range(len(sizes)) for k in ("np", "nm", "nv")]
    # locals end in "_": the inputs and outputs are named p0, m2, nv3, ... (a local "m2" would
    # shadow the third array's moment)
    step = "(c1[0] * m_) / (sqrtf(v_) * c2[0] + EPS)" if bias else "rate * m_ / (sqrtf(v_) + EPS)"
    lines = [
        f"  constexpr float B1 = {_kernels.f32(b1)}, OB1 = {_kernels.f32(1 - b1)}, B2 = {_kernels.f32(b2)}, "
        f"OB2 = {_kernels.f32(1 - b2)}, EPS = {_kernels.f32(eps)}, WD = {_kernels.f32(decay)};",
        "  const float rate = lr[0], sc = scale[0];",
        "  const bool ok = applied[0];",
        "  const float keep = 1.0f - rate * WD;" if decay else "",
    ]

    def element(i: int, offset: int) -> list[str]:
        decayed = f"p{i}[k] * keep" if decay else f"p{i}[k]"
        return [
            f"      const long long k = j - {offset}LL;",
            f"      const float g_ = g{i}[k] * sc;",
            f"      const float m_ = B1 * m{i}[k] + OB1 * g_;",
            f"      const float v_ = B2 * v{i}[k] + OB2 * (g_ * g_);",
            f"      const float p_ = {decayed} - {step};",
            f"      np{i}[k] = ok ? p_ : p{i}[k];",
            f"      nm{i}[k] = ok ? m_ : m{i}[k];",
            f"      nv{i}[k] = ok ? v_ : v{i}[k];",
        ]

    lines += _kernels.block_loops(sizes, _PER_BLOCK, element)
    return blocks, "\n".join(line for line in lines if line), inputs, outputs


@lru_cache(maxsize=64)
def _kernel(rule: Rule, sizes: tuple[int, ...]) -> tuple[int, _kernels.Kernel]:
    blocks, body, inputs, outputs = kernel_source(rule, sizes)
    return blocks, _kernels.cuda_kernel(body, inputs, outputs, (), "adam")  # float32 throughout


@lru_cache(maxsize=1)
def _checked() -> bool:
    """NOTE [a custom kernel checks itself first]: one AdamW and one bias-corrected Adam step on
    small arrays against MLX's own, applied and not."""
    try:
        problems = [check(optimizer, ok) for optimizer in _CHECKED for ok in (True, False)]
        detail = next((p for p in problems if p), "")
    except Exception as error:  # a JIT or launch failure: MLX's update instead
        detail = f"{type(error).__name__}: {error}"
    if detail:
        _kernels.failed_check("the Adam/AdamW update", detail, "MLX's optimizer")
    return not detail


_CHECKED = (
    lambda: optim.AdamW(learning_rate=1e-3, weight_decay=0.01),
    lambda: optim.Adam(learning_rate=optim.cosine_decay(1e-2, 10), bias_correction=True),
)


def check(make: Callable[[], optim.Optimizer], applied: bool) -> str:
    """Two steps of the kernel against two of MLX's optimizer; "" when they agree."""
    key = mx.random.key(1)
    params = {"w": mx.random.normal((700, 300), key=key), "b": mx.random.normal((37,), key=key)}
    params |= {f"x{i}": mx.random.normal((i + 1, 3), key=key) for i in range(11)}  # names p2...
    grads = tree_map(lambda p: mx.sin(p * 3.0), params)
    mine, theirs = make(), make()
    mine.init(params)
    theirs.init(params)
    holder = nn.Module()  # what fused_update reads and updates
    for name, value in params.items():
        setattr(holder, name, value)
    expected = dict(params)
    for _ in range(2):
        fused_update(mine, holder, grads, mx.array(0.5), mx.array(applied))
        if applied:
            expected = theirs.apply_gradients(tree_map(lambda g: g * 0.5, grads), expected)
    ours = holder.parameters()
    mx.eval(ours, mine.state, expected, theirs.state)
    pairs = [(ours[k], expected[k]) for k in params]
    if applied:
        pairs += [(mine.state[k][m], theirs.state[k][m]) for k in params for m in ("m", "v")]
        pairs += [(mine.state["step"], theirs.state["step"])]
    else:  # nothing moved: the moments still zero, the step and the schedule where they were
        pairs += [(mine.state[k][m], mx.zeros_like(params[k])) for k in params for m in ("m", "v")]
        pairs += [(mine.state["step"], mx.array(0, dtype=mx.uint64))]
        pairs += [(mine.state["learning_rate"], make().learning_rate)]
    for got, want in pairs:
        if not mx.allclose(got, want, rtol=1e-5, atol=1e-7).item():
            return f"{type(mine).__name__}: max difference {mx.abs(got - want).max().item():.3g}"
    return ""
