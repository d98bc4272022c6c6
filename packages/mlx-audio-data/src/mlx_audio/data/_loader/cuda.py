"""The CUDA driver calls of the transfer thread: a batch moved without managed-memory page faults.

NOTE [prefetch, not page faults]: an ``mx.array`` made from host data on MLX's CUDA backend is
CUDA managed memory (``cudaMallocManaged`` in MLX's allocator) written by the host, so its pages
sit in host memory until a GPU kernel touches them; each touch then faults and migrates a few
pages at a time (~13 ms for a 29 MiB int16 CLAP batch on an H100, ~21 ms for 59 MiB of float32:
docs/benchmarks.md). ``cuMemPrefetchAsync`` migrates the whole range in one call instead (~10 /
12 ms there) and leaves the memory managed: where a kernel reads a page before the prefetch has
moved it, the fault still moves it -- so a prefetch only ever changes when bytes move, never
what a kernel reads.

NOTE [slots copied on the GPU]: faster still is not to make managed memory at
all. A worker's batch sits in a shared-memory slot that the main process maps and reuses batch
after batch (shm.py). :func:`to_device` page-locks (``cuMemHostRegister``) each slot mapping
once, the first time a batch comes from it, and copies each large array with one small MLX
custom kernel that reads the slot over PCIe and writes an MLX-allocated device buffer (a GPU
kernel's output: device memory, not managed) -- no host copy into an ``mx.array``, no page
migration. The copy is evaluated (finished) before the slot goes back to its worker. A mapping
is unregistered before it is unmapped (``shm.UNMAP_HOOKS``). The slot's bytes are the
``mx.array``'s bytes: the copy reinterprets nothing but dtypes MLX holds bit for bit.

MLX exposes none of this, so it goes to the CUDA driver (``libcuda``, present wherever MLX's
CUDA backend runs) through ``ctypes``: the primary context MLX's runtime uses, its device, a
non-blocking stream of our own. Any failure (no driver, an older driver, an error code) turns
this off for the process with one warning; the batches are the same either way.
"""

from __future__ import annotations

import ctypes
import hashlib
import mmap
import threading
import warnings
from collections.abc import Callable, Iterable
from functools import lru_cache
from typing import Any

import numpy as np

from . import shm

_LOCATION_DEVICE = 1  # CU_MEM_LOCATION_TYPE_DEVICE
_POINTER_IS_MANAGED = 8  # CU_POINTER_ATTRIBUTE_IS_MANAGED
_STREAM_NON_BLOCKING = 1  # CU_STREAM_NON_BLOCKING
_REGISTER_FLAGS = 0x1 | 0x2  # CU_MEMHOSTREGISTER_PORTABLE | CU_MEMHOSTREGISTER_DEVICEMAP
DIRECT_MIN_BYTES = 1 << 16  # smaller arrays: mx.array (a kernel launch costs more than it saves)
_THREADS, _BLOCKS = 256, 264  # the copy kernel's grid-stride launch
# numpy dtypes whose bytes are the MLX dtype's bytes (float64 would become float32 in MLX)
_BITWISE = frozenset({"|b1", "|i1", "|u1", "<i2", "<u2", "<i4", "<u4", "<i8", "<u8", "<f2", "<f4"})


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


def _versioned(driver: ctypes.CDLL, name: str) -> Callable[..., int]:
    """``name_v2`` where the driver has it (what cuda.h maps ``name`` to), else ``name``."""
    versioned: Callable[..., int] | None = getattr(driver, f"{name}_v2", None)
    return versioned if versioned is not None else getattr(driver, name)


class Driver:
    """The driver calls used here, in the primary context MLX's runtime uses."""

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
        self.pinned: dict[int, tuple[int, int]] = {}  # host base -> (size, device base)

    def _enter(self) -> None:
        _check(self._driver.cuCtxSetCurrent(self._context), "cuCtxSetCurrent")  # any thread

    def _managed(self, pointer: int) -> bool:
        flag = ctypes.c_uint(0)
        code = self._driver.cuPointerGetAttribute(
            ctypes.byref(flag), _POINTER_IS_MANAGED, ctypes.c_uint64(pointer)
        )
        return code == 0 and bool(flag.value)

    def prefetch(self, arrays: Iterable[Any]) -> int:
        """Move every managed array to the GPU and wait for it; the bytes moved."""
        driver, moved = self._driver, 0
        self._enter()
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

    def pin(self, base: int, size: int) -> int:
        """Page-lock ``[base, base + size)`` for the GPU; its device address."""
        self._enter()
        _check(
            _versioned(self._driver, "cuMemHostRegister")(
                ctypes.c_void_p(base), ctypes.c_size_t(size), _REGISTER_FLAGS
            ),
            "cuMemHostRegister",
        )
        device = ctypes.c_uint64()
        _check(
            _versioned(self._driver, "cuMemHostGetDevicePointer")(
                ctypes.byref(device), ctypes.c_void_p(base), 0
            ),
            "cuMemHostGetDevicePointer",
        )
        self.pinned[base] = (size, device.value)
        return device.value

    def unpin(self, base: int) -> None:
        if self.pinned.pop(base, None) is not None:
            self._enter()
            _check(self._driver.cuMemHostUnregister(ctypes.c_void_p(base)), "cuMemHostUnregister")

    def device_address(self, pointer: int, nbytes: int) -> int | None:
        """The device address of host bytes inside a pinned range, else None."""
        for base, (size, device) in self.pinned.items():
            if base <= pointer and pointer + nbytes <= base + size:
                return device + (pointer - base)
        return None


_lock = threading.Lock()
_driver: Driver | None = None
_failed = False


def _load_driver() -> ctypes.CDLL:
    return ctypes.CDLL("libcuda.so.1")  # foreign calls release the GIL


def _with_driver(call: Callable[[Driver], Any], default: Any) -> Any:
    """``call(driver)`` under the lock; ``default`` (and one warning) once anything failed."""
    global _driver, _failed
    if _failed:
        return default
    try:
        with _lock:
            if _driver is None:
                _driver = Driver(_load_driver())
                shm.UNMAP_HOOKS.append(_unpin)
            return call(_driver)
    except (OSError, AttributeError, CudaError, ValueError) as error:
        _failed = True
        warnings.warn(
            f"pin_memory: batches cannot be moved to the GPU ahead of use ({error}); their pages "
            "move on first use instead (the batches are the same)",
            RuntimeWarning,
            stacklevel=3,
        )
        return default


def prefetch(arrays: Iterable[Any]) -> int:
    """Prefetch ``arrays`` to the GPU (NOTE [prefetch, not page faults]); 0 once disabled."""
    return int(_with_driver(lambda driver: driver.prefetch(arrays), 0))


def _unpin(base: int, size: int) -> None:
    """``shm.UNMAP_HOOKS``: a mapping about to be unmapped is unregistered first."""
    if _driver is not None and base in _driver.pinned:
        _with_driver(lambda driver: driver.unpin(base), None)


def _mapping(view: np.ndarray) -> mmap.mmap | None:
    base: Any = view
    while isinstance(base, np.ndarray):
        base = base.base
    if isinstance(base, memoryview):  # np.frombuffer(mapping) holds a memoryview of it
        base = base.obj
    return base if isinstance(base, mmap.mmap) else None


def _slot_address(driver: Driver, view: np.ndarray) -> int | None:
    pointer = int(view.__array_interface__["data"][0])
    found = driver.device_address(pointer, view.nbytes)
    if found is None:
        mapping = _mapping(view)
        if mapping is None:
            return None
        start = int(np.frombuffer(mapping, np.uint8).__array_interface__["data"][0])
        driver.pin(start, len(mapping))
        found = driver.device_address(pointer, view.nbytes)
    return found


def direct_applies(view: np.ndarray) -> bool:
    return (
        view.nbytes >= DIRECT_MIN_BYTES
        and view.dtype.str in _BITWISE
        and view.flags.c_contiguous
        and view.__array_interface__["data"][0] % 16 == 0
    )


def to_device(view: np.ndarray, stream: Any) -> Any:
    """The slot bytes of ``view`` as a device-resident ``mx.array``, copied by a GPU kernel
    (NOTE [slots copied on the GPU]) and finished; None where this does not
    apply (small, not in a mapping, a dtype MLX changes, or the driver failed)."""
    import mlx.core as mx

    if not direct_applies(view):
        return None
    source = _with_driver(lambda driver: _slot_address(driver, view), None)
    if source is None:
        return None
    meta = mx.array(np.array([source, view.nbytes], dtype=np.uint64))
    with mx.stream(stream):
        (raw,) = _copy_kernel()(
            inputs=[meta],
            grid=(_BLOCKS * _THREADS, 1, 1),
            threadgroup=(_THREADS, 1, 1),
            output_shapes=[(view.nbytes,)],
            output_dtypes=[mx.uint8],
        )
        out = raw.view(_mlx_dtype(view.dtype.str)).reshape(view.shape)
        mx.eval(out)  # finished before the slot goes back to its worker
    return out


@lru_cache(maxsize=32)
def _mlx_dtype(dtype: str) -> Any:
    import mlx.core as mx

    return mx.array(np.zeros(1, dtype)).dtype


COPY = r"""
  const unsigned long long source = meta[0], n = meta[1];
  const unsigned long long first = (unsigned long long)blockIdx.x * blockDim.x + threadIdx.x;
  const unsigned long long stride = (unsigned long long)gridDim.x * blockDim.x;
  const uint4* from16 = reinterpret_cast<const uint4*>(source);
  uint4* to16 = reinterpret_cast<uint4*>(out);
  const unsigned long long n16 = n / 16;
  for (unsigned long long i = first; i < n16; i += stride) to16[i] = from16[i];
  const unsigned char* from = reinterpret_cast<const unsigned char*>(source);
  for (unsigned long long i = n16 * 16 + first; i < n; i += stride) out[i] = from[i];
"""


@lru_cache(maxsize=1)
def _copy_kernel() -> Callable[..., list[Any]]:
    import mlx.core as mx

    name = f"mlx_audio_host_copy_{hashlib.sha1(COPY.encode()).hexdigest()[:16]}"
    kernel: Callable[..., list[Any]] = mx.fast.cuda_kernel(  # type: ignore[assignment]
        name=name, input_names=["meta"], output_names=["out"], source=COPY
    )
    return kernel
