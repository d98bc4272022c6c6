"""The window-attention kernels (NOTE [window attention kernels]) against MLX's formulation.

Off CUDA their source runs on the CPU through ``cuda_emulator`` (g++; the same text MLX compiles,
the CUDA built-ins emulated): forward, log-sum-exp and backward, both mask kinds, HTSAT's shape
and odd ones; and the custom function's gradient wiring with the emulated kernels in place of
MLX's. On CUDA the kernels themselves, eager and compiled, float32 and bfloat16."""

from __future__ import annotations

import math

import mlx.core as mx
import numpy as np
import pytest
from cuda_emulator import Kernel, available

from mlx_audio.models.clap import window_kernels as wk

on_cuda = pytest.mark.skipif(
    not (mx.cuda.is_available() and mx.default_device() == mx.gpu),
    reason="the kernels run on MLX's CUDA backend",
)
emulated = pytest.mark.skipif(not available(), reason="no g++ to run the kernels' source")

SHAPES = {  # (batch, windows, tokens, heads, head size)
    "htsat": (2, 2, 64, 2, 24),
    "odd": (3, 3, 9, 3, 5),
}


def case(shape, per_window: bool, seed: int = 0):
    b, nw, n, h, d = shape
    rng = np.random.default_rng(seed)
    qkv = rng.standard_normal((b, nw, n, 3, h, d)).astype(np.float32)
    masks = h if per_window else nw * h
    mask = (2 * rng.standard_normal((1, masks, n, n))).astype(np.float32)
    mask[..., 0, 1:] -= 100.0  # a row attending to one token, as the shift mask makes them
    cotangent = rng.standard_normal((b, nw, n, h, d)).astype(np.float32)
    return qkv, mask, cotangent


def template(shape, per_window: bool) -> list:
    b, nw, n, h, d = shape
    return [("T", "float"), ("N", n), ("D", d), ("H", h), ("NW", nw), ("PW", per_window)]


def emulated_forward(qkv, mask, shape, per_window):
    b, nw, n, h, d = shape
    return Kernel(wk.FORWARD, ["qkv", "mask"], ["out", "lse"])(
        inputs=[qkv, mask],
        template=template(shape, per_window),
        grid=(b * nw * h * n, 1, 1),
        threadgroup=(n, 1, 1),
        output_shapes=[(b, nw, n, h, d), (b * nw * h, n)],
        output_dtypes=[np.float32, np.float32],
    )


def emulated_backward(qkv, mask, out, cotangent, lse, shape, per_window):
    b, nw, n, h, d = shape
    return Kernel(wk.BACKWARD, ["qkv", "mask", "out", "dout", "lse"], ["dqkv", "dmask"])(
        inputs=[qkv, mask, out, cotangent, lse],
        template=template(shape, per_window),
        grid=(b * nw * h * n, 1, 1),
        threadgroup=(n, 1, 1),
        output_shapes=[qkv.shape, (b * nw * h, n, n)],
        output_dtypes=[np.float32, np.float32],
    )


def reference(qkv, mask, cotangent, per_window):
    """MLX's formulation and its gradient, in float32 on the CPU (a GPU's matmuls use TF32)."""

    def loss(a, m):
        return mx.sum(wk.reference_attention(a, m, per_window) * mx.array(cotangent))

    with mx.stream(mx.cpu):
        out = wk.reference_attention(mx.array(qkv), mx.array(mask), per_window)
        dqkv, dmask = mx.grad(loss, argnums=(0, 1))(mx.array(qkv), mx.array(mask))
        return np.array(out), np.array(dqkv), np.array(dmask)


def assert_close(got, want, tol: float = 2e-6) -> None:
    scale = max(float(np.abs(want).max()), 1.0)
    np.testing.assert_allclose(got, want, rtol=0, atol=tol * scale)


@emulated
@pytest.mark.parametrize("per_window", [True, False], ids=["shared-mask", "mask-per-window"])
@pytest.mark.parametrize("name", list(SHAPES))
def test_the_kernels_source_computes_mlxs_attention_and_its_gradient(name, per_window):
    shape = SHAPES[name]
    qkv, mask, cotangent = case(shape, per_window)
    out, lse = emulated_forward(qkv, mask, shape, per_window)
    want_out, want_dqkv, want_dmask = reference(qkv, mask, cotangent, per_window)
    assert_close(out, want_out)
    b, nw, n, h, d = shape
    q, k, _ = (np.array(t) for t in wk._heads(mx.array(qkv), per_window))
    scores = q @ k.transpose(0, 1, 3, 2) / math.sqrt(d) + mask
    top = scores.max(-1, keepdims=True)
    want_lse = (top + np.log(np.exp(scores - top).sum(-1, keepdims=True)))[..., 0]
    lse_by_window = lse.reshape(b, nw, h, n)
    want_by_window = want_lse.reshape(b, nw, h, n)  # both mask kinds order (b, window, head)
    assert_close(lse_by_window, want_by_window)
    dqkv, dscores = emulated_backward(qkv, mask, out, cotangent, lse, shape, per_window)
    assert_close(dqkv, want_dqkv)
    groups = b * nw if per_window else b
    dmask = dscores.reshape(groups, mask.shape[1], n, n).sum(0, keepdims=True)
    assert_close(dmask, want_dmask)


def test_the_kernels_take_htsats_windows_and_refuse_what_does_not_fit():
    assert wk.fits(64, 24) and wk.fits(49, 32) and wk.fits(9, 5)
    assert not wk.fits(65, 8)  # a thread per token, its row of scores in registers
    assert not wk.fits(64, 32)  # the backward's shared arrays: 50,432 bytes > 48 KiB
    assert wk.shared_bytes(64, 24) == 42_240


def as_emulated(body: str, inputs: list[str], outputs: list[str]):
    """A stand-in for an ``mx.fast.cuda_kernel`` launch: the same body, run by the emulator."""
    kernel = Kernel(body, inputs, outputs)

    def launch(*, inputs, template, grid, threadgroup, output_shapes, output_dtypes):
        assert all(a.dtype == mx.float32 for a in inputs)
        template = [(k, "float" if k == "T" else v) for k, v in template]
        got = kernel(
            inputs=[np.array(a) for a in inputs],
            template=template,
            grid=grid,
            threadgroup=threadgroup,
            output_shapes=output_shapes,
            output_dtypes=[np.float32] * len(output_dtypes),
        )
        return [mx.array(a) for a in got]

    return launch


def emulate(monkeypatch, forward: str = wk.FORWARD, backward: str = wk.BACKWARD) -> None:
    fake = (
        as_emulated(forward, ["qkv", "mask"], ["out", "lse"]),
        as_emulated(backward, ["qkv", "mask", "out", "dout", "lse"], ["dqkv", "dmask"]),
    )
    monkeypatch.setattr(wk, "_kernels", lambda: fake)


@emulated
@pytest.mark.parametrize("per_window", [True, False], ids=["shared-mask", "mask-per-window"])
def test_the_custom_functions_gradient_wiring_with_the_kernels_emulated(monkeypatch, per_window):
    """``window_attention``'s custom function and its vjp, the kernels' launches answered by
    the emulator: value and gradient (q/k/v and the mask) are MLX's."""
    emulate(monkeypatch)
    monkeypatch.setattr(wk, "kernels_apply", lambda qkv: True)
    shape = SHAPES["odd"]
    qkv, mask, cotangent = case(shape, per_window, seed=1)

    def loss(a, m):
        return mx.sum(wk.window_attention(a, m, per_window) * mx.array(cotangent))

    value, (dqkv, dmask) = mx.value_and_grad(loss, argnums=(0, 1))(mx.array(qkv), mx.array(mask))
    want_out, want_dqkv, want_dmask = reference(qkv, mask, cotangent, per_window)
    assert_close(np.array(value), float((want_out * cotangent).sum()), 1e-5)
    assert_close(np.array(dqkv), want_dqkv)
    assert_close(np.array(dmask), want_dmask)


@emulated
def test_the_self_check_passes_the_kernels_and_catches_a_wrong_one(monkeypatch, caplog):
    emulate(monkeypatch)
    assert wk._agreement(True, 2) == "" and wk._agreement(False, 8) == ""
    wrong = wk.BACKWARD.replace("ds[t][j] = p * (dp - delta);", "ds[t][j] = p * dp;")
    assert wrong != wk.BACKWARD
    emulate(monkeypatch, backward=wrong)
    assert "relative difference" in wk._agreement(True, 2)
    wk._checked.cache_clear()
    try:
        with caplog.at_level("WARNING"):
            assert wk._checked() is False
        assert "window attention failed their check (a relative difference" in caplog.text

        def no_jit():
            raise RuntimeError("nvrtc: error: cannot open source file")

        monkeypatch.setattr(wk, "_kernels", no_jit)
        wk._checked.cache_clear()
        assert wk._checked() is False and "RuntimeError: nvrtc" in caplog.text
    finally:
        wk._checked.cache_clear()


def test_off_cuda_window_attention_is_mlxs_formulation():
    qkv, mask, _ = case(SHAPES["odd"], True)
    if wk.kernels_apply(mx.array(qkv)):
        pytest.skip("the kernels apply here (CUDA)")
    got = wk.window_attention(mx.array(qkv), mx.array(mask), True)
    want = wk.reference_attention(mx.array(qkv), mx.array(mask), True)
    assert mx.array_equal(got, want)


@on_cuda
@pytest.mark.parametrize("dtype", [mx.float32, mx.bfloat16])
@pytest.mark.parametrize("per_window", [True, False], ids=["shared-mask", "mask-per-window"])
def test_on_cuda_the_kernels_equal_mlxs_formulation_eager_and_compiled(
    monkeypatch, dtype, per_window
):
    monkeypatch.setenv("MLX_AUDIO_CUDA_KERNELS", "1")
    assert wk._checked()
    qkv, mask, cotangent = case((4, 16, 64, 4, 24), per_window, seed=2)
    qkv, mask, cotangent = mx.array(qkv).astype(dtype), mx.array(mask), mx.array(cotangent)
    assert wk.kernels_apply(qkv)

    def loss(f, a, m):
        return mx.sum((f(a, m, per_window) * cotangent).astype(mx.float32))

    ours = mx.value_and_grad(lambda a, m: loss(wk.window_attention, a, m), argnums=(0, 1))
    want = mx.value_and_grad(lambda a, m: loss(wk.reference_attention, a, m), argnums=(0, 1))
    tol = 2e-5 if dtype == mx.float32 else 3e-2
    with mx.stream(mx.cpu):  # float32 on the CPU from the same (rounded) inputs: no TF32
        expected = want(qkv.astype(mx.float32), mask)
        mx.eval(expected)
    for run in (ours, mx.compile(ours)):
        got = run(qkv, mask)
        for a, b in [(got[0], expected[0]), *zip(got[1], expected[1])]:
            a, b = np.array(a.astype(mx.float32)), np.array(b.astype(mx.float32))
            assert_close(a, b, tol)
    first, again = ours(qkv, mask), ours(qkv, mask)  # no atomics: the same bits every run
    assert all(mx.array_equal(x, y) for x, y in zip(first[1], again[1]))
