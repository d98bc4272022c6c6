"""Runs the body of an ``mx.fast.cuda_kernel`` on the CPU, for tests on machines without CUDA.

The body is compiled with g++ exactly as MLX's CUDA backend wraps it (``build_kernel`` in MLX's
``cuda/custom_kernel.cpp``: the signature written from the inputs' and outputs' types, template
arguments as ``constexpr int`` / ``using`` lines), with the CUDA built-ins a plain-C++ kernel
uses given their CUDA meaning: each block runs on its own, its threads as OS threads that meet
at ``__syncthreads()`` (a ``std::barrier``), ``__shared__`` arrays one per block (function-local
statics; the blocks run one after another), ``threadIdx``/``blockIdx``/``blockDim``/``gridDim``.
So a wrong index, a missing barrier's effect on the result, or wrong arithmetic shows here as it
would on a GPU (float32, int32, bool, uint8 and uint64 arrays: no ``__nv_bfloat16`` on the
CPU; a "device address" is a host address here). Grid and block
are 1-D, as the kernels under test use them. Used by the models' and the train step's kernel
tests (``test_window_kernels.py``, ``test_kernels.py``).
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
import tempfile

import numpy as np

_PRELUDE = r"""
#include <barrier>
#include <cmath>
#include <cstdint>
#include <math.h>
#include <thread>
#include <vector>
struct Dim3 { unsigned x = 0, y = 0, z = 0; };
struct uint4 { unsigned int x, y, z, w; };
thread_local Dim3 threadIdx;
Dim3 blockIdx, blockDim, gridDim;
static std::barrier<>* block_barrier = nullptr;
#define __syncthreads() block_barrier->arrive_and_wait()
#define __shared__ static
#define __device__
#define __forceinline__ inline
"""

_CTYPES = {
    np.dtype(np.float32): "float",
    np.dtype(np.int32): "int32_t",
    np.dtype(np.bool_): "bool",
    np.dtype(np.uint8): "uint8_t",
    np.dtype(np.uint64): "uint64_t",
}


def available() -> bool:
    """g++ is here, and ``MLX_AUDIO_EMULATE_CUDA=0`` (the GPU runs) does not turn it off."""
    return shutil.which("g++") is not None and os.environ.get("MLX_AUDIO_EMULATE_CUDA") != "0"


def _template_lines(template: list[tuple[str, object]]) -> str:
    lines = []
    for name, value in template:
        if isinstance(value, bool):
            lines.append(f"  constexpr bool {name} = {'true' if value else 'false'};")
        elif isinstance(value, int):
            lines.append(f"  constexpr int {name} = {value};")
        else:
            lines.append(f"  using {name} = {value};")  # a C type name, e.g. "float"
    return "\n".join(lines) + "\n\n" if lines else ""


class Kernel:
    """``Kernel(body, input_names, output_names)(inputs=..., template=..., grid=...,
    threadgroup=..., output_shapes=..., output_dtypes=...)``: ``mx.fast.cuda_kernel``'s call,
    on numpy arrays (float32 / int32), returning numpy arrays. Template dtypes are C type names."""

    def __init__(
        self, source: str, input_names: list[str], output_names: list[str], header: str = ""
    ) -> None:
        self.source, self.header = source, header
        self.input_names, self.output_names = input_names, output_names
        self._built: dict[str, ctypes.CDLL] = {}

    def _library(
        self, inputs: list[np.ndarray], out_dtypes: list[np.dtype], template
    ) -> ctypes.CDLL:
        params = [
            f"    const {_CTYPES[a.dtype]}* {name}" for name, a in zip(self.input_names, inputs)
        ] + [f"    {_CTYPES[d]}* {name}" for name, d in zip(self.output_names, out_dtypes)]
        casts = [f"(const {_CTYPES[a.dtype]}*)args[{i}]" for i, a in enumerate(inputs)] + [
            f"({_CTYPES[d]}*)args[{len(inputs) + i}]" for i, d in enumerate(out_dtypes)
        ]
        code = (
            _PRELUDE
            + self.header
            + "\nstatic void kernel(\n"
            + ",\n".join(params)
            + ") {\n"
            + _template_lines(template)
            + self.source
            + "\n}\n"
            + 'extern "C" void launch(void** args, unsigned blocks, unsigned threads) {\n'
            + "  blockDim.x = threads; gridDim.x = blocks;\n"
            + "  for (unsigned b = 0; b < blocks; ++b) {\n"
            + "    blockIdx.x = b;\n"
            + "    std::barrier<> bar(threads);\n"
            + "    block_barrier = &bar;\n"
            + "    std::vector<std::thread> pool;\n"
            + "    for (unsigned t = 0; t < threads; ++t)\n"
            + "      pool.emplace_back([=] { threadIdx.x = t; kernel("
            + ", ".join(casts)
            + "); });\n"
            + "    for (auto& th : pool) th.join();\n"
            + "  }\n}\n"
        )
        key = hashlib.sha1(code.encode()).hexdigest()[:16]
        if key not in self._built:
            folder = tempfile.mkdtemp(prefix="cuda-emulator-")
            src, lib = os.path.join(folder, "k.cpp"), os.path.join(folder, "k.so")
            with open(src, "w") as f:
                f.write(code)
            subprocess.run(
                ["g++", "-std=c++20", "-O1", "-shared", "-fPIC", "-pthread", src, "-o", lib],
                check=True,
                capture_output=True,
                text=True,
            )
            self._built[key] = ctypes.CDLL(lib)
        return self._built[key]

    def __call__(
        self,
        *,
        inputs: list[np.ndarray],
        template: list[tuple[str, object]],
        grid: tuple[int, int, int],
        threadgroup: tuple[int, int, int],
        output_shapes: list[tuple[int, ...]],
        output_dtypes: list[np.dtype],
    ) -> list[np.ndarray]:
        inputs = [np.ascontiguousarray(a) for a in inputs]
        out_dtypes = [np.dtype(d) for d in output_dtypes]
        outputs = [  # what the kernel leaves unwritten shows: NaN, or a byte pattern
            np.full(s, np.nan, d) if d.kind == "f" else np.full(s, 0x5A, d)
            for s, d in zip(output_shapes, out_dtypes)
        ]
        library = self._library(inputs, out_dtypes, template)
        pointers = (ctypes.c_void_p * (len(inputs) + len(outputs)))(
            *[a.ctypes.data for a in inputs + outputs]
        )
        threads = threadgroup[0]
        assert grid[0] % threads == 0 and grid[1:] == (1, 1) and threadgroup[1:] == (1, 1)
        library.launch(pointers, ctypes.c_uint(grid[0] // threads), ctypes.c_uint(threads))
        return outputs
