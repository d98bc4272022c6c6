"""Shared-memory slots that carry batches from worker processes to the main process.

Each worker owns a few reusable slots (one per batch it may have in flight). A slot is a file
in /dev/shm that the main process creates and opens, and that the worker *unlinks as soon as it
has opened it* (the main process unlinks it too when the worker's ``Ready`` comes, or its death):
from then on it lives only as open file descriptors, so the kernel frees it when the last
process exits, however that happens (normal end, exception, Ctrl-C, SIGKILL). Segments are
managed by hand because Python 3.11's ``SharedMemory`` registers even attach-only segments
with the resource tracker (``track=False`` needs 3.13).

Only a small skeleton (tree structure, offsets, shapes, dtypes) is pickled.

NOTE [batch copies]: a batch's array bytes are copied twice, the minimum while an ``mx.array``
must own its memory (MLX cannot wrap a buffer that the worker will overwrite):

1. in the worker, each sample once, into the slot: the default collate (and ``PadCollate``)
   stacks straight into :meth:`Arena.empty` (``collate_into``), so there is no intermediate
   batch; an array the collate made elsewhere (a user ``collate_fn``) is copied in by
   :meth:`Arena.layout_of` instead, still once;
2. in the main process, once out of the slot into the ``mx.array`` (:func:`unpack`'s
   ``convert``), after which the slot is free for the worker's next batch.

Nothing else copies the bytes: the skeleton and layout are pickled, never the arrays, and the
reader maps the slot without pre-faulting or copying it.

torch's DataLoader copies once (its collate stacks into a new shared-memory tensor that the main
process maps), but pays fresh pages for every batch; a slot is reused, so after a pass's first
batches the worker writes into memory that is already mapped on both sides, and the copy into
``mx.array`` lands in MLX's cached buffers (a pass's first ones are faulted in while the main
process waits for them: NOTE [warm destination]). On a GPU, the second copy runs on the transfer
thread, off the consumer's critical path (NOTE [pin_memory on CUDA]). On the CPU it stays on the
consumer's thread, ~0.5 ms per 8 MB batch into a cached buffer: the same transfer thread was
measured there (2 workers on 2 cores, docs/benchmarks.md) and was slower, with or without a
training step to overlap -- the copy holds the GIL and the cores are the workers'.
"""

from __future__ import annotations

import errno
import mmap
import os
import secrets
import tempfile
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

from .tree import is_mlx_array, map_leaves

# where an array sits in a slot: (byte offset, shape, dtype.str)
ArrayLayout = tuple[int, tuple[int, ...], str]

_ALIGN = 64
_MIN_SIZE = 1 << 16
_PAGE = mmap.PAGESIZE
HINT_BYTES = 1 << 20  # an array this large placed in fresh slot pages is announced (Sizing)
_MADV_POPULATE_WRITE = 23  # Linux 5.14+; older kernels refuse it (the pages fault in on write)
# called with (address, size) just before a mapping is unmapped (NOTE [slots copied on the
# GPU], cuda.py: a page-locked mapping is unregistered first)
UNMAP_HOOKS: list[Callable[[int, int], None]] = []


def shm_dir() -> str:
    """Where slot files live: $MLX_AUDIO_SHM_DIR, else /dev/shm, else the temp dir (macOS)."""
    env = os.environ.get("MLX_AUDIO_SHM_DIR")
    if env:
        return env
    if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK):
        return "/dev/shm"
    return tempfile.gettempdir()


class SharedMemoryFull(RuntimeError):
    """Raised when the shared-memory filesystem has no room for a batch."""


def new_slot_paths(count: int) -> list[str]:
    """Create ``count`` empty slot files with unguessable names; return their paths."""
    directory = shm_dir()
    token = secrets.token_hex(6)
    paths = []
    for i in range(count):
        path = os.path.join(directory, f"mlx_audio_{os.getpid()}_{token}_{i}")
        os.close(os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600))
        paths.append(path)
    return paths


def unlink_quietly(paths: list[str]) -> None:
    for path in paths:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass


class Slot:
    """One growable shared buffer, mapped by the worker (writer) and the main process (reader).

    NOTE [slot pages]: a slot is created empty and grows on the worker's first batch into it
    (no slot costs anything before a batch needs it). The file is sized with headroom for
    ragged batches, but only the bytes a batch uses are allocated (``posix_fallocate``: a full
    /dev/shm fails here with a clear error instead of SIGBUS later) and pre-faulted into the
    writer's map in one call (``MADV_POPULATE_WRITE``), so the first batch pays for no page it
    does not write; the headroom is allocated when a larger batch needs it. The reader maps the
    file without pre-faulting and only touches what the layouts name.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self.fd = os.open(path, os.O_RDWR)
        self.size = 0  # mapped (the file's length)
        self.filled = 0  # allocated from the start (writer side)
        self._map: mmap.mmap | None = None
        self.buffer = np.zeros(0, dtype=np.uint8)

    def _unmapping(self) -> None:
        if self._map is not None and UNMAP_HOOKS:
            start = int(self.buffer.__array_interface__["data"][0])
            for hook in UNMAP_HOOKS:
                hook(start, self.size)

    def _remap(self, size: int) -> None:
        self._unmapping()
        old = self._map
        self._map = mmap.mmap(self.fd, size, flags=mmap.MAP_SHARED) if size else None
        self.buffer = (
            np.frombuffer(self._map, dtype=np.uint8) if self._map else np.zeros(0, np.uint8)
        )
        self.size = size
        if old is not None:
            try:
                old.close()
            except BufferError:  # a view is still alive; the map closes when it is collected
                pass

    def reserve(self, nbytes: int) -> None:
        """Writer side: make the first ``nbytes`` writable, keeping the contents."""
        if nbytes <= self.filled:
            return
        try:
            if nbytes > self.size:
                step = _MIN_SIZE if nbytes < (1 << 20) else (1 << 20)
                size = -(-(nbytes + nbytes // 8) // step) * step  # headroom (NOTE [slot pages])
                os.ftruncate(self.fd, size)
                self._remap(size)
            start = self.filled - self.filled % _PAGE
            end = min(-(-nbytes // _PAGE) * _PAGE, self.size)
            if hasattr(os, "posix_fallocate"):
                os.posix_fallocate(self.fd, start, end - start)
        except OSError as error:
            if error.errno in (errno.ENOSPC, errno.ENOMEM, errno.EFBIG):
                raise SharedMemoryFull(_full_message(nbytes)) from error
            raise
        if self._map is not None and hasattr(self._map, "madvise"):
            try:
                self._map.madvise(_MADV_POPULATE_WRITE, start, end - start)
            except OSError:
                pass
        self.filled = end

    def refresh(self) -> None:
        """Reader side: follow the writer's growth."""
        size = os.fstat(self.fd).st_size
        if size != self.size:
            self._remap(size)

    def close(self) -> None:
        self._unmapping()
        self.buffer = np.zeros(0, dtype=np.uint8)
        if self._map is not None:
            try:
                self._map.close()
            except BufferError:
                pass
            self._map = None
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def _full_message(nbytes: int) -> str:
    directory = shm_dir()
    try:
        stats = os.statvfs(directory)
        free = f"{stats.f_bavail * stats.f_frsize / 2**20:.1f} MiB free of {stats.f_blocks * stats.f_frsize / 2**20:.1f} MiB"
    except OSError:
        free = "free space unknown"
    return (
        f"not enough shared memory in {directory} for a batch of {nbytes / 2**20:.1f} MiB "
        f"({free}). Docker gives containers 64 MiB by default: run with --shm-size=4g (or "
        "--ipc=host), or lower batch_size, num_workers or prefetch_factor, or use "
        "DataLoader(worker_type='thread'), which needs no shared memory."
    )


class _ArrayRef:
    """Placeholder for an array in a pickled skeleton."""

    __slots__ = ("index",)

    def __init__(self, index: int) -> None:
        self.index = index

    def __reduce__(self) -> tuple[type[_ArrayRef], tuple[int]]:
        return (_ArrayRef, (self.index,))


class Arena:
    """Hands out arrays that live inside a slot, so collation can write a batch in place."""

    def __init__(
        self, slot: Slot, announce: Callable[[tuple[int, ...], str], None] | None = None
    ) -> None:
        self.slot = slot
        self.offset = 0
        self.placed: dict[int, tuple[npt.NDArray[Any], ArrayLayout]] = {}
        self.announce = announce  # NOTE [warm destination] (``_loader/warm.py``)

    def empty(self, shape: tuple[int, ...], dtype: npt.DTypeLike) -> npt.NDArray[Any]:
        dtype = np.dtype(dtype)
        nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        start = self.offset
        self.offset = start + -(-nbytes // _ALIGN) * _ALIGN
        if self.announce is not None and self.offset > self.slot.filled and nbytes >= HINT_BYTES:
            self.announce(tuple(shape), dtype.str)
        self.slot.reserve(self.offset)  # growing remaps, but earlier arrays stay valid
        view: npt.NDArray[Any] = self.slot.buffer[start : start + nbytes].view(dtype).reshape(shape)
        self.placed[id(view)] = (view, (start, tuple(shape), dtype.str))
        return view

    def layout_of(self, array: npt.NDArray[Any]) -> ArrayLayout:
        placed = self.placed.get(id(array))
        if placed is not None and placed[0] is array:
            return placed[1]
        target = self.empty(array.shape, array.dtype)
        np.copyto(target, array, casting="no")
        return self.placed[id(target)][1]


def pack(tree: Any, arena: Arena) -> tuple[Any, list[ArrayLayout]]:
    """Place the arrays of ``tree`` in the arena's slot (copying only those not already there);
    return the (skeleton, layout) to send."""
    arrays: list[npt.NDArray[Any]] = []

    def to_ref(leaf: Any) -> Any:
        if is_mlx_array(leaf):  # crosses the process boundary as numpy, back to mx in the parent
            leaf = np.asarray(leaf)
        if isinstance(leaf, np.ndarray) and leaf.dtype != object:
            arrays.append(leaf)
            return _ArrayRef(len(arrays) - 1)
        return leaf

    skeleton = map_leaves(to_ref, tree)
    return skeleton, [arena.layout_of(array) for array in arrays]


def unpack(
    skeleton: Any,
    layout: list[ArrayLayout],
    slot: Slot,
    convert: Callable[[npt.NDArray[Any]], Any],
) -> Any:
    """Rebuild the tree; ``convert(view)`` must copy each array out of the slot."""
    slot.refresh()
    buffer = slot.buffer

    def from_ref(leaf: Any) -> Any:
        if isinstance(leaf, _ArrayRef):
            start, shape, dtype = layout[leaf.index]
            count = int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
            return convert(buffer[start : start + count].view(dtype).reshape(shape))
        return leaf

    return map_leaves(from_ref, skeleton)
