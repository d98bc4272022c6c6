"""The CUDA driver calls of the transfer thread: a batch's managed pages moved in one bulk copy.

NOTE [prefetch, not page faults]: an ``mx.array`` made from host data on MLX's CUDA backend is
CUDA managed memory (``cudaMallocManaged`` in MLX's allocator) written by the host, so its pages
sit in host memory until a GPU kernel touches them; each touch then faults and migrates a few
pages at a time, a few GB/s (~19 ms for a 59 MiB float32 CLAP batch on an H200:
docs/benchmarks.md). ``cuMemPrefetchAsync`` migrates the whole range in one bulk transfer at the
link's speed instead, and leaves the memory managed: where a kernel reads a page before the
prefetch has moved it, the fault still moves it -- so a prefetch only ever changes when bytes
move, never what a kernel reads. The transfer thread prefetches every array of a batch on a
stream of its own and waits for it there (the wait releases the GIL), before the batch is queued.

MLX exposes no prefetch, so this goes to the CUDA driver (``libcuda``, present wherever MLX's
CUDA backend runs) through ``ctypes``: the array's address from its buffer (no copy: the array is
evaluated and host-made), the primary context MLX's runtime uses, the device of that context.
Any failure (no driver, an older driver without the call, an error code) disables the prefetch
for the process with one warning; the batches are the same either way.
"""

from __future__ import annotations

import ctypes
import threading
import warnings
from collections.abc import Iterable
from typing import Any

import numpy as np

_LOCATION_DEVICE = 1  # CU_MEM_LOCATION_TYPE_DEVICE
_POINTER_IS_MANAGED = 8  # CU_POINTER_ATTRIBUTE_IS_MANAGED
_STREAM_NON_BLOCKING = 1  # CU_STREAM_NON_BLOCKING


class _Location(ctypes.Structure):  # CUmemLocation
    _fields_ = [("type", ctypes.c_int), ("id", ctypes.c_int)]


class CudaError(RuntimeError):
    pass


def _check(code: int, call: str) -> None:
    if code != 0:
        raise CudaError(f"{call} returned CUDA error {code}")


def address(array: Any) -> tuple[int, int]:
    """The address and byte size of an evaluated, host-made ``mx.array`` (a view, never a copy)."""
    view = np.array(array, copy=False)  # numpy 2 raises rather than copy
    return int(view.__array_interface__["data"][0]), int(view.nbytes)


class Prefetcher:
    """``cuMemPrefetchAsync`` to the GPU of MLX's context, on a non-blocking stream of its own."""

    def __init__(self, driver: ctypes.CDLL) -> None:  # libcuda (tests: a recording stand-in)
        self._driver = driver
        self._context = ctypes.c_void_p()
        _check(driver.cuCtxGetCurrent(ctypes.byref(self._context)), "cuCtxGetCurrent")
        if not self._context.value:  # no runtime call on this thread yet: the primary context
            device = ctypes.c_int()
            _check(driver.cuInit(0), "cuInit")
            _check(driver.cuDeviceGet(ctypes.byref(device), 0), "cuDeviceGet")
            _check(
                driver.cuDevicePrimaryCtxRetain(ctypes.byref(self._context), device),
                "cuDevicePrimaryCtxRetain",
            )
            _check(driver.cuCtxSetCurrent(self._context), "cuCtxSetCurrent")
        device = ctypes.c_int()
        _check(driver.cuCtxGetDevice(ctypes.byref(device)), "cuCtxGetDevice")
        self.device = device.value
        self._stream = ctypes.c_void_p()
        _check(
            driver.cuStreamCreate(ctypes.byref(self._stream), _STREAM_NON_BLOCKING),
            "cuStreamCreate",
        )
        self._v2 = hasattr(driver, "cuMemPrefetchAsync_v2")  # CUDA >= 12.2: a CUmemLocation

    def _managed(self, pointer: int) -> bool:
        flag = ctypes.c_uint(0)
        code = self._driver.cuPointerGetAttribute(
            ctypes.byref(flag), _POINTER_IS_MANAGED, ctypes.c_uint64(pointer)
        )
        return code == 0 and bool(flag.value)

    def prefetch(self, arrays: Iterable[Any]) -> int:
        """Move every managed array to the GPU and wait for it; the bytes moved."""
        driver, moved = self._driver, 0
        _check(driver.cuCtxSetCurrent(self._context), "cuCtxSetCurrent")  # any calling thread
        for array in arrays:
            pointer, size = address(array)
            if size == 0 or not self._managed(pointer):  # e.g. pinned host memory on Tegra
                continue
            if self._v2:
                location = _Location(_LOCATION_DEVICE, self.device)
                code = driver.cuMemPrefetchAsync_v2(
                    ctypes.c_uint64(pointer), ctypes.c_size_t(size), location, 0, self._stream
                )
            else:
                code = driver.cuMemPrefetchAsync(
                    ctypes.c_uint64(pointer), ctypes.c_size_t(size), self.device, self._stream
                )
            _check(code, "cuMemPrefetchAsync")
            moved += size
        if moved:
            _check(driver.cuStreamSynchronize(self._stream), "cuStreamSynchronize")
        return moved


_lock = threading.Lock()
_prefetcher: Prefetcher | None = None
_failed = False


def _load_driver() -> ctypes.CDLL:
    return ctypes.CDLL("libcuda.so.1")  # foreign calls release the GIL


def prefetch(arrays: Iterable[Any]) -> int:
    """Prefetch ``arrays`` to the GPU (NOTE [prefetch, not page faults]); 0 once disabled."""
    global _prefetcher, _failed
    if _failed:
        return 0
    try:
        with _lock:
            if _prefetcher is None:
                _prefetcher = Prefetcher(_load_driver())
            return _prefetcher.prefetch(arrays)
    except (OSError, AttributeError, CudaError, ValueError) as error:
        _failed = True
        warnings.warn(
            f"pin_memory: the batches' pages cannot be prefetched to the GPU ({error}); they move "
            "on first use instead (the batches are the same)",
            RuntimeWarning,
            stacklevel=2,
        )
        return 0
