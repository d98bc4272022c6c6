"""``pin_memory=True`` on a CUDA GPU: batches made device-resident ahead of use, on a thread.

NOTE [pin_memory on CUDA]: MLX's CUDA arrays live in managed memory. An ``mx.array`` made from a
worker's shared-memory batch is written on the host, so its pages sit in host memory until the
first GPU kernel that reads it faults them over -- inside the training step, on the training
stream (measured on an H200: ~10 ms for the 61 MB float32 CLAP batch to convert, +19 ms at
its first GPU read; docs/benchmarks.md). torch's answer is a pin-memory thread; ours is the same
shape: :class:`DevicePass` runs the worker pass on a background thread that copies each batch out
of shared memory and moves it to the GPU, ``_DEPTH`` batches ahead. How it moves is ``MODES``'s
(``MLX_AUDIO_PIN_MEMORY``, for the benchmarks that compare them; default ``_MODE``): ``copy``, a
GPU-resident copy made on a stream of the thread's own (its kernel takes the page faults);
``prefetch``, the managed pages moved in one bulk transfer (NOTE [prefetch, not page faults],
``cuda.py``), the batch itself handed out; ``prefetch+copy``, both; ``direct``, each large array
copied by a GPU kernel straight out of its page-locked shared-memory slot into device memory
(NOTE [slots copied on the GPU]). The invariants:

* the batches, their order and the errors are the inner pass's, one for one (a sample's error is
  raised for its batch and the pass goes on; a fatal one ends it);
* ``mlx_transforms`` run on the calling thread when a batch is handed out, never on the transfer
  thread (MLX's global random state and the user's transforms see what they would without it);
* ``state()`` is the inner pass's state as of the last batch handed out, never of one still
  queued: a checkpoint taken between steps resumes exactly (batches the thread fetched ahead are
  fetched again after a resume);
* the inner pass reports its end to the loader only from the calling thread (``close``/the end),
  so the loader's pools are never touched by two threads.
"""

from __future__ import annotations

import os
import queue
import threading
import warnings
import weakref
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

from . import cuda
from .passes import Pass, PassLike, PassPlan
from .settings import gpu_backend
from .tree import is_mlx_array, map_leaves
from .worker_passes import pass_class

_BATCH, _ERROR, _END = "batch", "error", "end"
_DEPTH = 2  # batches queued ahead of the consumer
_POLL_S = 0.1
_JOIN_S = 10.0
MODES = ("copy", "prefetch", "prefetch+copy", "direct")
_MODE = "copy"  # measured on an H100/H200 before it changes (docs/benchmarks.md)


def transfer_active(pin_memory: bool, pin_memory_device: str, num_workers: int) -> bool:
    """Whether a pass gets a transfer thread; torch's warnings (at ``iter()``, as torch) when
    ``pin_memory_device`` is given or ``pin_memory`` has nothing to do."""
    if not pin_memory:
        return False
    if pin_memory_device:
        warnings.warn(
            "pin_memory_device is deprecated, the current accelerator will be used as the device,"
            f"ignore pin_memory_device='{pin_memory_device}'.",
            stacklevel=3,
        )
    if not gpu_backend():
        warnings.warn(
            "'pin_memory' argument is set as true but no accelerator is found, then device pinned "
            "memory won't be used. (MLX on unified memory or the CPU: batches already are where "
            "the model reads them.)",
            stacklevel=3,
        )
        return False
    return (
        num_workers > 0
    )  # as in torch, the thread comes with workers; without, batches come in-line


def transfer_mode() -> str:
    """How the thread moves a batch (NOTE [pin_memory on CUDA]); a wrong name is an error."""
    mode = os.environ.get("MLX_AUDIO_PIN_MEMORY", _MODE)
    if mode not in MODES:
        raise ValueError(f"MLX_AUDIO_PIN_MEMORY={mode!r}: expected one of {', '.join(MODES)}")
    return mode


def device_copy(batch: Any, stream: Any, mode: str = "copy") -> Any:
    """``batch`` moved to the GPU as ``mode`` says: each ``mx.array`` prefetched, or replaced by
    a copy made on ``stream`` and evaluated, or both."""
    import mlx.core as mx

    if mode == "direct":  # the large arrays are on the device already (direct_converter)
        return batch
    if mode != "copy":
        leaves: list[Any] = []
        map_leaves(lambda leaf: leaves.append(leaf) if is_mlx_array(leaf) else None, batch)
        cuda.prefetch(leaves)
        if mode == "prefetch":
            return batch
    copies: list[Any] = []

    def copy(leaf: Any) -> Any:
        if not is_mlx_array(leaf):
            return leaf
        moved = mx.logical_or(leaf, leaf) if leaf.dtype == mx.bool_ else leaf + 0  # keeps the dtype
        copies.append(moved)
        return moved

    with mx.stream(stream):
        batch = map_leaves(copy, batch)
        mx.eval(copies)
    return batch


def direct_converter() -> Callable[[Any], Any]:
    """A slot's array -> ``mx.array``: large ones copied on the GPU straight from the slot
    (``cuda.to_device``), the rest (and all of them if that fails) by ``mx.array``. Its stream
    is made on first use, on the thread that converts (MLX's streams belong to a thread)."""
    import mlx.core as mx

    streams: list[Any] = []

    def convert(view: Any) -> Any:
        if not streams:
            streams.append(mx.new_stream(mx.default_device()))
        moved = cuda.to_device(view, streams[0])
        return moved if moved is not None else mx.array(view)

    return convert


def _produce(
    inner: Pass,
    out: queue.Queue[tuple[str, Any, dict[str, Any]]],
    stop: threading.Event,
    mode: str,
) -> None:
    """The transfer thread: every item of the inner pass, with the inner state right after it."""
    import mlx.core as mx

    stream = mx.new_stream(mx.default_device())  # the GPU wherever this thread is started
    while not stop.is_set():
        try:
            item: tuple[str, Any, dict[str, Any]] = (
                _BATCH,
                device_copy(next(inner), stream, mode),
                inner.state(),
            )
        except StopIteration:
            item = (_END, None, inner.state())
        except BaseException as error:  # handed to the consumer, raised there
            item = (_ERROR, error, inner.state())
        while not stop.is_set():
            try:
                out.put(item, timeout=_POLL_S)
                break
            except queue.Full:
                continue
        if item[0] == _END:
            return


class DevicePass(Iterator[Any]):
    """A worker pass iterated on a transfer thread (NOTE [pin_memory on CUDA])."""

    def __init__(
        self, plan: PassPlan, convert: Callable[[Any], Any], transform: Callable[[Any], Any] | None
    ) -> None:
        self.plan = plan
        self.epoch = plan.epoch
        self.finished = False
        self.closed = False
        self._transform = transform
        mode = transfer_mode()  # before the thread: a wrong name is raised here
        self._inner_failed: bool | None = None  # set (from the thread) once the inner pass ended
        owner = weakref.ref(self)

        def inner_ended(_inner: PassLike, failed: bool) -> None:
            outer = owner()
            if outer is not None:
                outer._inner_failed = failed

        import mlx.core as mx

        inner = replace(plan, to_output=convert, finished=inner_ended, wrapped=True)
        if mode == "direct" and plan.view_converter is mx.array:
            inner = replace(inner, view_converter=direct_converter())
        # else (a plain collate_fn's numpy batch for mlx_transforms): no mode moves it ahead,
        # as torch's thread pins only tensors; the transforms make it an mx.array when called
        self._inner = pass_class(inner)(inner)  # a worker pass of the plan's kind
        self._state = self._inner.state()
        self._queue: queue.Queue[tuple[str, Any, dict[str, Any]]] = queue.Queue(_DEPTH)
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=_produce,
            args=(self._inner, self._queue, self._stop, mode),
            name="mlx-audio-transfer",
            daemon=True,
        )
        self._thread.start()

    @property
    def pool(self) -> Any:
        return self._inner.pool

    @pool.setter
    def pool(self, value: Any) -> None:
        self._inner.pool = value

    def __next__(self) -> Any:
        if self.finished or self.closed:
            raise StopIteration
        kind, value, state = self._take()
        self._state = state
        if kind == _END:
            self.finished = True
            self.close()
            raise StopIteration
        if kind == _ERROR:
            if self._inner_failed:  # a fatal error: the inner pass has ended
                self.close(failed=True)
            raise value
        return self._transform(value) if self._transform is not None else value

    def _take(self) -> tuple[str, Any, dict[str, Any]]:
        while True:
            try:
                return self._queue.get(timeout=_POLL_S)
            except queue.Empty:
                if not self._thread.is_alive() and self._queue.empty():
                    return (_END, None, self._state)

    def state(self) -> dict[str, Any]:
        return self._state

    def close(self, failed: bool = False) -> None:
        if self.closed:
            return
        self.closed = True
        self._stop.set()
        self._drain()
        self._thread.join(self.plan.timeout or _JOIN_S)
        if self._thread.is_alive():  # stuck on a worker: stopping the workers ends its wait
            self._inner.close(failed=True)
            self._thread.join(_JOIN_S)
            failed = True
        self._inner.close(failed)
        self.plan.finished(self, bool(failed or self._inner_failed))

    def _drain(self) -> None:
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                return

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass
