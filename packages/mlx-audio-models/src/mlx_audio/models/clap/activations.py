"""Activations of CLAP's encoders, by transformers' names (``hidden_act``)."""

from __future__ import annotations

import mlx.core as mx
import mlx.nn as nn

# Abramowitz & Stegun 7.1.28: erf(x) = 1 - (1 + a1 x + ... + a6 x^6)^-16 for x >= 0, |error| <= 3e-7
_ERF = (0.0705230784, 0.0422820123, 0.0092705272, 0.0001520143, 0.0002765672, 0.0000430638)


def _erf_terms(x: mx.array) -> tuple[mx.array, mx.array, mx.array]:
    """(a, p, dp/da) for a = |x|/sqrt(2), p = (1 + a1 a + ... + a6 a^6)^16."""
    a = mx.abs(x) * 0.7071067811865476
    q = 1 + a * (
        _ERF[0] + a * (_ERF[1] + a * (_ERF[2] + a * (_ERF[3] + a * (_ERF[4] + a * _ERF[5]))))
    )
    dq = _ERF[0] + a * (
        2 * _ERF[1] + a * (3 * _ERF[2] + a * (4 * _ERF[3] + a * (5 * _ERF[4] + a * 6 * _ERF[5])))
    )
    q2 = q * q
    q4 = q2 * q2
    q8 = q4 * q4
    return a, q8 * q8, 16 * (q8 * q4 * q2 * q) * dq


@mx.compile
def _gelu_forward(x: mx.array) -> mx.array:
    _, p, _ = _erf_terms(x)
    erf = 1 - 1 / p
    return 0.5 * x * (1 + mx.where(x < 0, -erf, erf))


@mx.compile
def _gelu_backward(x: mx.array, cotangent: mx.array) -> mx.array:
    _, p, dp = _erf_terms(x)
    erf = 1 - 1 / p
    derf = dp / (p * p) * 0.7071067811865476  # d erf(|x|/sqrt 2) / d|x|
    return cotangent * (0.5 * (1 + mx.where(x < 0, -erf, erf)) + 0.5 * x * derf)


@mx.custom_function
def rational_gelu(x: mx.array) -> mx.array:
    """GELU with the exact (erf) form through a rational approximation of erf, within 1e-6 of
    ``nn.gelu`` (and its gradient within 2e-6); what :func:`gelu` computes on the CPU.

    NOTE [gelu on the CPU]: MLX's CPU backend evaluates ``erf`` (and ``exp``, ``tanh``) one
    element at a time, ~70x slower than torch's vectorised kernels (15 ms for the 393k values of
    one small HTSAT block's MLP); this rational form and its derivative need only
    multiplications, additions and a division, which MLX compiles into vectorised kernels
    (1.6 ms there).
    """
    return _gelu_forward(x)


@rational_gelu.vjp
def _gelu_vjp(x: mx.array, cotangent: mx.array, output: mx.array) -> mx.array:
    return _gelu_backward(x, cotangent)


def gelu(x: mx.array) -> mx.array:
    """GELU with the exact (erf) form, as transformers' ``"gelu"``.

    NOTE [gelu off the CPU]: elsewhere (CUDA, Metal) ``nn.gelu``, whose ``erf`` is one fast
    element-wise op. The rational form is ~25 element-wise ops deep, and ``mx.compile`` fuses
    chains of at most 11 (MLX's ``max_compile_depth``): inside a compiled train step its forward
    and backward split into several kernels whose intermediates, each the size of the MLP's
    hidden activation, are written out -- measured on one HTSAT stage-0 block at B=2, forward
    and backward compiled: 276 MiB peak with the rational form, 192 MiB with ``nn.gelu``.
    """
    return rational_gelu(x) if _on_cpu() else nn.gelu(x)


def _on_cpu() -> bool:
    """Where the current default device is the CPU (NOTE [gelu on the CPU])."""
    return mx.default_device() == mx.cpu


_ACTIVATIONS = {"gelu": gelu, "relu": nn.relu, "gelu_new": nn.gelu_approx, "silu": nn.silu}


def activation(name: str):
    if name not in _ACTIVATIONS:
        raise ValueError(f"unsupported activation {name!r}; supported: {sorted(_ACTIVATIONS)}")
    return _ACTIVATIONS[name]
