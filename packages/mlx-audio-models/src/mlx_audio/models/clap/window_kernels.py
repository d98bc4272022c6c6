"""Swin window attention: MLX's formulation, and one CUDA kernel forward and one backward.

NOTE [window attention kernels]: HTSAT attends within 8x8 windows (64 tokens, head size 24).
MLX's CUDA backend has no fused attention for that shape in float32, and its fused backward
needs a multiple of 128 tokens, so ``mx.fast.scaled_dot_product_attention`` falls back to the
explicit formulation: the (windows x heads x 64 x 64) scores written out and read back some ten
times per block over forward and backward, around three transposed copies of q/k/v and of the
output. On CUDA, :func:`window_attention` runs instead

* a forward kernel, one block of 64 threads per (window, head), a thread per query row: k and v
  of the window in shared memory, the row's scores in registers, softmax and ``p @ v`` in
  float32, reading q/k/v straight from the projection's output layout ``(B, windows, n, 3,
  heads, d)`` and writing the output in the layout the next linear reads ``(B, windows, n,
  heads, d)``: no copies; it also writes each row's log-sum-exp (float32) for the backward;
* a backward kernel, the same blocks: q, k, v and the output's gradient in shared memory, the
  probabilities recomputed from the log-sum-exp, the scores' gradient ``p * (dp - rowsum(dO *
  O))`` in shared memory, then a thread's row of dq and its column of dk and dv; the scores'
  gradient is also written out, once, and summed over the batch (and over the windows when
  every window shares the mask) in MLX: the gradient of the additive mask, i.e. of the
  relative-position bias tables.

Everything is accumulated in float32 in a fixed order (no atomics): the same inputs give the
same bits. The kernels apply where they fit (:func:`fits`: at most 64 tokens a window, the
backward's shared arrays within 48 KiB) and, like the train step's kernels (NOTE [a custom
kernel checks itself first] in mlx_audio.train), check themselves against MLX's formulation at
first use; NOTE [opt-in until measured]: ``MLX_AUDIO_CUDA_KERNELS=1`` turns them on until they
have run on a GPU. Everywhere else :func:`reference_attention` is what runs. Off CUDA, the
tests run the kernels' source on the CPU (``tests/cuda_emulator.py``) against it.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
from collections.abc import Callable
from functools import lru_cache

import mlx.core as mx

_log = logging.getLogger(__name__)

__all__ = ["fits", "kernels_apply", "reference_attention", "window_attention"]

_SHARED_LIMIT = 48 * 1024  # static shared memory a block may declare
_MAX_TOKENS = 64  # a window's tokens: one thread each, the forward's scores in registers
_DTYPES = (mx.float32, mx.float16, mx.bfloat16)
_DEFAULT = "0"  # NOTE [opt-in until measured]

# Template arguments (MLX writes them as constants): T the q/k/v dtype, N tokens a window, D the
# head size, H heads, NW windows, PW whether every window shares one mask (mask index = head).
_PRELUDE = r"""
  const int t = threadIdx.x;
  const long long blk = blockIdx.x;               // (batch * NW + window) * H + head
  const int hi = (int)(blk % H);
  const long long bw = blk / H;                   // batch * NW + window
  const int m = PW ? hi : (int)(bw % NW) * H + hi;
  const long long row = 3LL * H * D;              // one token's q, k and v
  const T* base = qkv + bw * N * row + hi * D;    // q of the window's first token, this head
  const float scale = 1.0f / sqrtf((float)D);
  const float* mask_rows = mask + (long long)m * N * N;
"""

FORWARD = (
    _PRELUDE
    + r"""
  __shared__ float ks[N][D];
  __shared__ float vs[N][D];
  __shared__ float ms[N][N + 1];                  // the mask (+1: no bank conflicts)
  float q[D];
  for (int e = 0; e < D; ++e) {
    q[e] = static_cast<float>(base[t * row + e]);
    ks[t][e] = static_cast<float>(base[t * row + H * D + e]);
    vs[t][e] = static_cast<float>(base[t * row + 2 * H * D + e]);
  }
  for (int i = 0; i < N; ++i) ms[i][t] = mask_rows[i * N + t];  // coalesced
  __syncthreads();
  float s[N];
  float top = -3.402823466e38f;                   // -FLT_MAX: no INFINITY macro needed under NVRTC
  for (int j = 0; j < N; ++j) {
    float acc = 0.0f;
    for (int e = 0; e < D; ++e) acc += q[e] * ks[j][e];
    acc = acc * scale + ms[t][j];
    s[j] = acc;
    top = fmaxf(top, acc);
  }
  float total = 0.0f;
  for (int j = 0; j < N; ++j) {
    s[j] = expf(s[j] - top);
    total += s[j];
  }
  float o[D];
  for (int e = 0; e < D; ++e) o[e] = 0.0f;
  for (int j = 0; j < N; ++j) {
    for (int e = 0; e < D; ++e) o[e] += s[j] * vs[j][e];
  }
  const float inv = 1.0f / total;
  T* orow = out + ((bw * N + t) * H + hi) * D;
  for (int e = 0; e < D; ++e) orow[e] = static_cast<T>(o[e] * inv);
  lse[blk * N + t] = top + logf(total);
"""
)

BACKWARD = (
    _PRELUDE
    + r"""
  __shared__ float qs[N][D + 1];                  // rows read by their own thread: +1, no
  __shared__ float ks[N][D + 1];                  // bank conflicts
  __shared__ float vs[N][D];
  __shared__ float gs[N][D + 1];                  // the output's gradient
  __shared__ float ds[N][N + 1];                  // the mask, then the scores' gradient
  __shared__ float ls[N];
  const long long o_at = ((bw * N + t) * H + hi) * D;
  float delta = 0.0f;                             // rowsum(dO * O) of row t
  for (int e = 0; e < D; ++e) {
    qs[t][e] = static_cast<float>(base[t * row + e]);
    ks[t][e] = static_cast<float>(base[t * row + H * D + e]);
    vs[t][e] = static_cast<float>(base[t * row + 2 * H * D + e]);
    gs[t][e] = static_cast<float>(dout[o_at + e]);
    delta += gs[t][e] * static_cast<float>(out[o_at + e]);
  }
  for (int i = 0; i < N; ++i) ds[i][t] = mask_rows[i * N + t];  // coalesced
  ls[t] = lse[blk * N + t];
  __syncthreads();
  for (int j = 0; j < N; ++j) {                   // row t: the mask, then its gradient
    float sc = 0.0f, dp = 0.0f;
    for (int e = 0; e < D; ++e) {
      sc += qs[t][e] * ks[j][e];
      dp += gs[t][e] * vs[j][e];
    }
    const float p = expf(sc * scale + ds[t][j] - ls[t]);
    ds[t][j] = p * (dp - delta);
  }
  __syncthreads();
  float dq[D], dk[D], dv[D];
  for (int e = 0; e < D; ++e) {
    dq[e] = 0.0f;
    dk[e] = 0.0f;
    dv[e] = 0.0f;
  }
  for (int j = 0; j < N; ++j) {                   // row t of dq; column t of dk and dv
    float sc = 0.0f;
    for (int e = 0; e < D; ++e) sc += qs[j][e] * ks[t][e];
    const float p = expf(sc * scale + mask_rows[j * N + t] - ls[j]);  // p[j][t], coalesced
    const float a = ds[t][j], c = ds[j][t];
    for (int e = 0; e < D; ++e) {
      dq[e] += a * ks[j][e];
      dk[e] += c * qs[j][e];
      dv[e] += p * gs[j][e];
    }
  }
  T* grad = dqkv + bw * N * row + hi * D + t * row;
  for (int e = 0; e < D; ++e) {
    grad[e] = static_cast<T>(dq[e] * scale);
    grad[H * D + e] = static_cast<T>(dk[e] * scale);
    grad[2 * H * D + e] = static_cast<T>(dv[e]);
  }
  float* dscores = dmask + blk * N * N;           // column t of every row: coalesced writes
  for (int i = 0; i < N; ++i) dscores[i * N + t] = ds[i][t];
"""
)


def shared_bytes(n: int, d: int) -> int:
    """The backward's shared arrays (the forward's are smaller)."""
    return 4 * (3 * n * (d + 1) + n * d + n * (n + 1) + n)


def fits(n: int, d: int) -> bool:
    """Whether the kernels take windows of ``n`` tokens and heads of size ``d``."""
    return 0 < n <= _MAX_TOKENS and 0 < d and shared_bytes(n, d) <= _SHARED_LIMIT


def _heads(qkv: mx.array, per_window: bool) -> tuple[mx.array, mx.array, mx.array]:
    b, nw, n, _, h, d = qkv.shape
    moved = qkv.transpose(3, 0, 1, 4, 2, 5)  # (3, b, nw, h, n, d)
    shape = (b * nw, h, n, d) if per_window else (b, nw * h, n, d)
    q, k, v = (t.reshape(shape) for t in mx.split(moved, 3, axis=0))  # split: no gathers
    return q, k, v


def reference_attention(qkv: mx.array, mask: mx.array, per_window: bool) -> mx.array:
    """MLX's formulation: ``qkv`` (B, windows, n, 3, heads, d) and the additive ``mask`` (1,
    heads, n, n) -- the same in every window -- or (1, windows * heads, n, n) give the output
    (B, windows, n, heads, d), through ``mx.fast.scaled_dot_product_attention``."""
    b, nw, n, _, h, d = qkv.shape
    q, k, v = _heads(qkv, per_window)
    out = mx.fast.scaled_dot_product_attention(
        q, k, v, scale=1 / math.sqrt(d), mask=mask.astype(q.dtype)
    )
    return out.reshape(b, nw, h, n, d).transpose(0, 1, 3, 2, 4)


def explicit_attention(
    qkv: mx.array, mask: mx.array, per_window: bool, dropout: Callable[[mx.array], mx.array]
) -> mx.array:
    """``softmax(q k^T / sqrt(d) + mask)``, ``dropout`` on the probabilities, times v."""
    b, nw, n, _, h, d = qkv.shape
    q, k, v = _heads(qkv, per_window)
    scores = (q * (1 / math.sqrt(d))) @ k.transpose(0, 1, 3, 2) + mask.astype(q.dtype)
    out = dropout(mx.softmax(scores, axis=-1)) @ v
    return out.reshape(b, nw, h, n, d).transpose(0, 1, 3, 2, 4)


def _name(kind: str, body: str) -> str:
    return f"mlx_audio_window_attention_{kind}_{hashlib.sha1(body.encode()).hexdigest()[:16]}"


@lru_cache(maxsize=1)
def _kernels() -> tuple[Callable[..., list[mx.array]], Callable[..., list[mx.array]]]:
    forward: Callable[..., list[mx.array]] = mx.fast.cuda_kernel(  # type: ignore[assignment]
        name=_name("forward", FORWARD),
        input_names=["qkv", "mask"],
        output_names=["out", "lse"],
        source=FORWARD,
    )
    backward: Callable[..., list[mx.array]] = mx.fast.cuda_kernel(  # type: ignore[assignment]
        name=_name("backward", BACKWARD),
        input_names=["qkv", "mask", "out", "dout", "lse"],
        output_names=["dqkv", "dmask"],
        source=BACKWARD,
    )
    return forward, backward


def template(qkv: mx.array, per_window: bool) -> list[tuple[str, int | bool | mx.Dtype]]:
    _, nw, n, _, h, d = qkv.shape
    return [("T", qkv.dtype), ("N", n), ("D", d), ("H", h), ("NW", nw), ("PW", per_window)]


def launch_shape(qkv: mx.array) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    """``(grid, threadgroup)`` as ``mx.fast.cuda_kernel`` takes them: a block per (window,
    head), a thread per token."""
    b, nw, n, _, h, _ = qkv.shape
    return (b * nw * h * n, 1, 1), (n, 1, 1)


@lru_cache(maxsize=2)  # one custom function per mask kind
def _attend(per_window: bool) -> Callable[[mx.array, mx.array], tuple[mx.array, mx.array]]:
    """The custom function ``(qkv, mask float32) -> (out, lse)`` with the backward kernel as its
    gradient."""

    @mx.custom_function
    def attend(qkv: mx.array, mask: mx.array) -> tuple[mx.array, mx.array]:
        b, nw, n, _, h, d = qkv.shape
        grid, threads = launch_shape(qkv)
        out, lse = _kernels()[0](
            inputs=[qkv, mask],
            template=template(qkv, per_window),
            grid=grid,
            threadgroup=threads,
            output_shapes=[(b, nw, n, h, d), (b * nw * h, n)],
            output_dtypes=[qkv.dtype, mx.float32],
        )
        return out, lse

    @attend.vjp
    def attend_vjp(
        primals: tuple[mx.array, mx.array],
        cotangents: tuple[mx.array, mx.array],
        outputs: tuple[mx.array, mx.array],
    ) -> tuple[mx.array, mx.array]:
        qkv, mask = primals
        b, nw, n, _, h, _ = qkv.shape
        grid, threads = launch_shape(qkv)
        dqkv, dscores = _kernels()[1](
            inputs=[qkv, mask, outputs[0], cotangents[0].astype(qkv.dtype), outputs[1]],
            template=template(qkv, per_window),
            grid=grid,
            threadgroup=threads,
            output_shapes=[qkv.shape, (b * nw * h, n, n)],
            output_dtypes=[qkv.dtype, mx.float32],
        )
        groups = b * nw if per_window else b  # the mask is shared across these
        dmask = mx.sum(dscores.reshape(groups, mask.shape[1], n, n), axis=0, keepdims=True)
        return dqkv, dmask

    return attend


def kernels_apply(qkv: mx.array) -> bool:
    """Whether :func:`window_attention` runs the kernels for ``qkv``: MLX's CUDA backend, the
    kernels switched on and passing their check, a shape and dtype they take."""
    cuda = getattr(mx, "cuda", None)  # a build without the CUDA backend may lack the module
    if not (mx.default_device() == mx.gpu and cuda is not None and cuda.is_available()):
        return False
    _, _, n, _, _, d = qkv.shape
    if qkv.dtype not in _DTYPES or not fits(n, d):
        return False
    return os.environ.get("MLX_AUDIO_CUDA_KERNELS", _DEFAULT) == "1" and _checked()


def window_attention(qkv: mx.array, mask: mx.array, per_window: bool) -> mx.array:
    """Attention within each window, as :func:`reference_attention` (same shapes); the CUDA
    kernels where they apply (NOTE [window attention kernels])."""
    if not kernels_apply(qkv):
        return reference_attention(qkv, mask, per_window)
    out, _ = _attend(per_window)(qkv, mask.astype(mx.float32))
    return out


def _agreement(per_window: bool, masks: int) -> str:
    """Why the kernels disagree with MLX's formulation on one random case ("" if they agree)."""
    keys = mx.random.split(mx.random.key(0), 3)
    qkv = mx.random.normal((2, 4, 64, 3, 2, 24), key=keys[0])
    mask = mx.random.normal((1, masks, 64, 64), key=keys[1])
    cotangent = mx.random.normal((2, 4, 64, 2, 24), key=keys[2])

    def kernels(a: mx.array, m: mx.array) -> mx.array:
        return mx.sum(_attend(per_window)(a, m)[0] * cotangent)

    def reference(a: mx.array, m: mx.array) -> mx.array:
        return mx.sum(reference_attention(a, m, per_window) * cotangent)

    got = mx.value_and_grad(kernels, argnums=(0, 1))(qkv, mask)
    with mx.stream(mx.cpu):  # float32 throughout (the GPU's matmuls round through TF32)
        want = mx.value_and_grad(reference, argnums=(0, 1))(qkv, mask)
        mx.eval(want)
    for ours, theirs in [(got[0], want[0]), *zip(got[1], want[1])]:
        scale = float(mx.max(mx.abs(theirs)).item()) or 1.0
        error = float(mx.max(mx.abs(ours - theirs)).item()) / scale
        if not error <= 1e-4:
            return f"a relative difference of {error:.2e} from MLX's formulation"
    return ""


@lru_cache(maxsize=1)
def _checked() -> bool:
    """The kernels against MLX's formulation once, forward and gradient, both mask kinds."""
    try:
        detail = _agreement(True, 2) or _agreement(False, 4 * 2)
    except Exception as error:  # a JIT or launch failure: MLX's formulation instead
        detail = f"{type(error).__name__}: {error}"
    if detail:
        _log.warning(
            "mlx-audio's CUDA kernels for window attention failed their check (%s): CLAP uses "
            "MLX's attention instead (correct, slower). Please report it; "
            "MLX_AUDIO_CUDA_KERNELS=0 skips the check.",
            detail,
        )
    return not detail
