"""Custom kernels of the train step, each with the pure-MLX formulation it replaces, used
wherever the kernel cannot run (CPU, Metal, an unsupported dtype).

NOTE [one kernel for the gradients' sum of squares]: the global norm of a model's gradients,
written in MLX, is two kernels per parameter array (the square, then its sum: MLX fuses
element-wise ops, not an element-wise op into a reduction) -- 16 of the tutorial CNN's ~70
kernels per step, ~600 for CLAP. On MLX's CUDA backend a small step is bound by the host's
per-kernel cost, so :func:`sum_of_squares` reads every gradient in one custom kernel instead: a
fixed grid of blocks, each summing a fixed slice of the arrays laid end to end in float32 and
writing its partial sum, reduced in a fixed order (a tree within the block, then ``mx.sum``
over the blocks): the same gradients give the same bits every run, as the MLX formulation does
(no atomics). One block when the gradients are small (its partial is the sum: one kernel in
all), else up to 1024 blocks and one small reduction. The arrays' sizes and offsets are written
into the kernel's source, so each set of shapes is its own kernel (named by a hash of its
source: MLX caches compiled kernels by name). The result equals the MLX formulation to float32
rounding (``tests/test_kernels.py`` on CUDA).

NOTE [a custom kernel checks itself first]: the first time a process would use the kernels,
they run once on small arrays outside any trace and must agree with the MLX formulation; where
one fails to build (a toolkit MLX's JIT cannot use) or disagrees, a warning says so and the
process keeps to the MLX formulation -- slower, never wrong. ``MLX_AUDIO_CUDA_KERNELS=0`` keeps
to it from the start (NOTE [opt-in until measured]: for now, ``=1`` is what turns them on).
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable, Sequence
from functools import lru_cache

import mlx.core as mx
import numpy as np

_log = logging.getLogger(__name__)

__all__ = ["cuda_step_kernels", "sum_of_squares"]

_THREADS = 1024  # threads per block
_ONE_BLOCK = 1 << 19  # up to this many elements: one block, no second reduction
_PER_BLOCK = 1 << 16  # elements per block above it (at most _MAX_BLOCKS blocks)
_MAX_BLOCKS = 1024
_MAX_INPUTS = 256  # arrays per kernel launch (its arguments stay far below CUDA's limit)
_DTYPES = (mx.float32, mx.float16, mx.bfloat16)
# NOTE [opt-in until measured]: built and tested off CUDA (the kernels' index arithmetic from
# their source, the bookkeeping through an MLX emulation of their arithmetic) but not yet run on
# a GPU: ``MLX_AUDIO_CUDA_KERNELS=1`` turns them on; the default flips once the CUDA tests and
# the pairing have run (benchmarks/gpu/staged.sh kerneltest kernels step64 split64 cnn).
_DEFAULT = "0"


def cuda_step_kernels() -> bool:
    """Whether the step's custom CUDA kernels apply: MLX's CUDA backend is the default device,
    they are not switched off, and they passed their check (NOTE [a custom kernel checks itself
    first])."""
    cuda = getattr(mx, "cuda", None)  # a build without the CUDA backend may lack the module
    if not (mx.default_device() == mx.gpu and cuda is not None and cuda.is_available()):
        return False
    return os.environ.get("MLX_AUDIO_CUDA_KERNELS", _DEFAULT) == "1" and _checked()


@lru_cache(maxsize=1)
def _checked() -> bool:
    rng = mx.random.key(0)
    leaves = [
        mx.random.normal((3000, 700), key=rng),  # more than one block
        mx.random.normal((37,), key=rng).astype(mx.bfloat16),
        mx.zeros((0,)),
        mx.array(2.0, dtype=mx.float16),
    ]
    try:
        got = mx.sum(mx.stack([_partial_sums(leaves), _partial_sums(leaves[1:])]))
        want = reference_sum_of_squares(leaves) + reference_sum_of_squares(leaves[1:])
        ok = bool(mx.abs(got - want) <= 1e-4 * want)
        detail = f"it gave {got.item()} where MLX's ops give {want.item()}"
    except Exception as error:  # a JIT or launch failure: the MLX formulation instead
        ok, detail = False, f"{type(error).__name__}: {error}"
    if not ok:
        failed_check("the gradients' norm", detail, "MLX's ops")
    return ok


def failed_check(kernel: str, detail: str, instead: str) -> None:
    """NOTE [a custom kernel checks itself first]: the one warning of a kernel left unused."""
    _log.warning(
        "mlx-audio's CUDA kernel for %s failed its check (%s): the train step uses %s instead "
        "(correct, slower). Please report it; MLX_AUDIO_CUDA_KERNELS=0 skips the check.",
        kernel,
        detail,
        instead,
    )


def sum_of_squares(leaves: Sequence[mx.array]) -> mx.array:
    """The float32 sum of the squares of every element of ``leaves`` (a 0-d array): one custom
    kernel on CUDA (NOTE [one kernel for the gradients' sum of squares]), else per array."""
    if not leaves:
        return mx.array(0.0)
    if cuda_step_kernels() and all(g.dtype in _DTYPES for g in leaves):
        parts = [
            _partial_sums(list(leaves[i : i + _MAX_INPUTS]))
            for i in range(0, len(leaves), _MAX_INPUTS)
        ]
        total = parts[0]
        for part in parts[1:]:
            total = total + part
        return total
    return reference_sum_of_squares(leaves)


def reference_sum_of_squares(leaves: Sequence[mx.array]) -> mx.array:
    """The MLX formulation: squares summed per array in float32 (float16 would overflow), the
    per-array sums added as scalars (MLX fuses those additions into one kernel)."""
    total = mx.sum(mx.square(leaves[0].astype(mx.float32)))
    for g in leaves[1:]:
        total = total + mx.sum(mx.square(g.astype(mx.float32)))
    return total


def _partial_sums(leaves: list[mx.array]) -> mx.array:
    sizes = tuple(int(g.size) for g in leaves)
    dtypes = tuple(g.dtype for g in leaves)
    blocks, kernel = _kernel(sizes, dtypes)
    (partials,) = kernel(
        inputs=leaves,
        grid=(blocks * _THREADS, 1, 1),
        threadgroup=(_THREADS, 1, 1),
        output_shapes=[(blocks,)],
        output_dtypes=[mx.float32],
    )
    return partials.reshape(()) if blocks == 1 else mx.sum(partials)


def kernel_source(sizes: Sequence[int]) -> tuple[int, str]:
    """``(blocks, body)``: the grid size and the CUDA body summing the squares of arrays of
    these sizes (inputs ``g0``, ``g1``, ... of any float type -- MLX writes the signature from
    the inputs' dtypes; output ``out``, one float32 per block)."""
    total = sum(sizes)
    if total <= _ONE_BLOCK:
        blocks = 1
    else:
        blocks = min(_MAX_BLOCKS, -(-total // _PER_BLOCK))
    lines = sum_lines(sizes, -(-total // blocks))  # elements per block, the arrays end to end
    lines.append("  if (threadIdx.x == 0) out[blockIdx.x] = partial[0];")
    return blocks, "\n".join(lines)


def sum_lines(sizes: Sequence[int], chunk: int) -> list[str]:
    """The body's lines that leave, in ``partial[0]`` (shared), the float32 sum of the squares
    of this block's ``chunk`` of the arrays ``g0``, ``g1``, ... laid end to end: each thread's
    share, then a tree over the block's threads (a fixed order: the same bits every run)."""
    lines = ["  float acc = 0.0f;"]
    lines += block_loops(
        sizes,
        chunk,
        lambda i, offset: [
            f"      const float v = static_cast<float>(g{i}[j - {offset}LL]);",
            "      acc += v * v;",
        ],
    )
    return lines + [
        f"  __shared__ float partial[{_THREADS}];",
        "  partial[threadIdx.x] = acc;",
        "  __syncthreads();",
        f"  for (int s = {_THREADS // 2}; s > 0; s >>= 1) {{",
        "    if (threadIdx.x < s) partial[threadIdx.x] += partial[threadIdx.x + s];",
        "    __syncthreads();",
        "  }",
    ]


def block_loops(
    sizes: Sequence[int], chunk: int, element: Callable[[int, int], list[str]]
) -> list[str]:
    """The loops of a kernel whose block ``b`` takes elements ``[b * chunk, (b + 1) * chunk)``
    of the arrays laid end to end: per array ``i`` at ``offset``, each thread visits its share of
    that range as ``j`` (``j - offset`` indexes the array), running ``element(i, offset)``."""
    total = sum(sizes)
    lines = [
        f"  const long long start = (long long)blockIdx.x * {chunk}LL;",
        f"  const long long end = start + {chunk}LL < {total}LL ? start + {chunk}LL : {total}LL;",
    ]
    offset = 0
    for i, size in enumerate(sizes):
        if size:
            lines += [
                "  {",
                f"    const long long lo = start > {offset}LL ? start : {offset}LL;",
                f"    const long long hi = end < {offset + size}LL ? end : {offset + size}LL;",
                "    for (long long j = lo + threadIdx.x; j < hi; j += blockDim.x) {",
                *element(i, offset),
                "    }",
                "  }",
            ]
        offset += size
    return lines


def f32(value: float) -> str:
    """A C literal of ``value`` rounded to float32, as MLX rounds a Python scalar."""
    return f"{float(np.float32(value))!r}f"  # the shortest decimal that reads back exactly


def kernel_name(body: str, dtypes: Sequence[mx.Dtype], kind: str = "sum_of_squares") -> str:
    """A name per source and input dtypes (MLX writes those into the signature): MLX caches its
    compiled CUDA kernels by name."""
    signature = body + "".join(str(d) for d in dtypes)
    return f"mlx_audio_{kind}_{hashlib.sha1(signature.encode()).hexdigest()[:16]}"


@lru_cache(maxsize=64)
def _kernel(
    sizes: tuple[int, ...], dtypes: tuple[mx.Dtype, ...]
) -> tuple[int, Callable[..., list[mx.array]]]:
    blocks, body = kernel_source(sizes)
    return blocks, cuda_kernel(body, [f"g{i}" for i in range(len(sizes))], ["out"], dtypes)


Kernel = Callable[..., list[mx.array]]


def cuda_kernel(
    body: str,
    inputs: Sequence[str],
    outputs: Sequence[str],
    dtypes: Sequence[mx.Dtype],
    kind: str = "sum_of_squares",
) -> Kernel:
    """``mx.fast.cuda_kernel`` of ``body``, named by its source and input dtypes (``kernel_name``)."""
    kernel: Kernel = mx.fast.cuda_kernel(  # type: ignore[assignment]
        name=kernel_name(body, dtypes, kind),
        input_names=list(inputs),
        output_names=list(outputs),
        source=body,
    )
    return kernel
