"""CLAP's GELU: the rational form on the CPU, ``nn.gelu`` elsewhere (NOTE [gelu off the CPU])."""

import mlx.core as mx
import mlx.nn as nn
import numpy as np

from mlx_audio.models.clap import CLAP, activations


def test_the_rational_gelu_and_its_gradient_match_the_exact_one():
    x = mx.array(np.linspace(-8, 8, 20001, dtype=np.float32))
    assert float(mx.abs(activations.rational_gelu(x) - nn.gelu(x)).max()) < 1e-6
    ours = mx.grad(lambda v: activations.rational_gelu(v).sum())(x)
    exact = mx.grad(lambda v: nn.gelu(v).sum())(x)
    assert float(mx.abs(ours - exact).max()) < 2e-6
    assert mx.array_equal(activations.gelu(x), activations.rational_gelu(x))  # this is the CPU


def _block_step_peak(monkeypatch, on_cpu: bool) -> float:
    monkeypatch.setattr(activations, "_on_cpu", lambda: on_cpu)
    mx.random.seed(0)
    stage = CLAP().audio_encoder.layers[0]
    block, mask = stage.blocks[0], stage.masks()[0]
    block.train()
    x = mx.random.normal((2, 4096, 96))
    grad = nn.value_and_grad(block, lambda m, x: m(x, mask).sum())
    step = mx.compile(lambda: grad(block, x))
    mx.eval(block.parameters(), x, step())  # traced and run once
    base = mx.get_active_memory()
    mx.reset_peak_memory()
    mx.eval(step())
    return (mx.get_peak_memory() - base) / 2**20


def test_off_the_cpu_the_compiled_step_uses_nn_gelu_and_less_memory(monkeypatch):
    monkeypatch.setattr(activations, "_on_cpu", lambda: False)
    x = mx.random.normal((4, 7))
    assert mx.array_equal(activations.gelu(x), nn.gelu(x))
    rational = _block_step_peak(monkeypatch, True)
    exact = _block_step_peak(monkeypatch, False)
    assert exact < 0.8 * rational, (exact, rational)  # measured: 192 vs 276 MiB
