"""Helpers shared by the data tests (importable by test modules and spawned scripts)."""

from __future__ import annotations

import gc
import os
import threading
import time
from collections.abc import Iterable

import numpy as np

from mlx_audio.data import Dataset
from mlx_audio.data._loader.shm import shm_dir


def shm_segments(owners: Iterable[int] | None = None) -> set[str]:
    """Our shared-memory segments (``mlx_audio_<creator pid>_...``), only ``owners``' if given,
    so a concurrent test run's segments never count as a leak of this one."""
    names = {name for name in os.listdir(shm_dir()) if name.startswith("mlx_audio_")}
    if owners is None:
        return names
    prefixes = tuple(f"mlx_audio_{pid}_" for pid in owners)
    return {name for name in names if name.startswith(prefixes)}


def _is_multiprocessing_helper(pid: str) -> bool:
    """multiprocessing's own long-lived helpers (resource tracker, forkserver) are not ours."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmdline = f.read()
    except OSError:
        return False
    return b"resource_tracker" in cmdline or b"forkserver" in cmdline


def child_processes() -> dict[int, str]:
    """pid -> state letter of this process's direct children (Z = zombie)."""
    children = {}
    me = os.getpid()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == me and not _is_multiprocessing_helper(entry):
            children[int(entry)] = fields[0]
    return children


def open_fds() -> dict[int, str]:
    """fd -> what it points at, for this process's open file descriptors (Linux)."""
    fds = {}
    for entry in os.listdir("/proc/self/fd"):
        try:
            fds[int(entry)] = os.readlink(f"/proc/self/fd/{entry}")
        except OSError:  # the listing's own descriptor, already closed
            pass
    return fds


def _helper_fds() -> set[int]:
    """Descriptors of multiprocessing's per-process helpers (resource tracker, fork server):
    opened once by the first spawn/forkserver worker and kept for the process's life."""
    import multiprocessing.forkserver as forkserver
    import multiprocessing.resource_tracker as resource_tracker

    fds = {getattr(resource_tracker._resource_tracker, "_fd", None)}
    server = forkserver._forkserver
    fds |= {getattr(server, "_forkserver_alive_fd", None)}
    return {fd for fd in fds if isinstance(fd, int)}


class LeakCheck:
    """What a test started and left behind of the kinds a DataLoader makes: shared-memory
    segments (those named after ``owners``' pids -- this process by default, so a concurrent
    run never counts), child processes, threads (a loader's: worker and transfer threads,
    queue feeders -- not a library's process-wide helper such as tqdm's monitor) and file
    descriptors (slot files, pipes and sockets). ``check()`` waits a few seconds for them to
    go, then fails naming what is left."""

    thread_names = ("mlx_audio", "mlx-audio", "QueueFeederThread")
    fd_kinds = ("pipe:", "socket:", os.path.join(shm_dir(), "mlx_audio_"))

    def __init__(self, owners: Iterable[int] | None = None) -> None:
        self.owners = set(owners) if owners is not None else {os.getpid()}
        self.segments = shm_segments(self.owners)
        self.children = set(child_processes())
        self.threads = set(threading.enumerate())
        self.fds = open_fds()

    def own(self, *pids: int) -> None:
        """Count the segments that processes ``pids`` create too (a script run by the test)."""
        self.owners.update(pids)

    def leaks(self) -> dict[str, object]:
        gc.collect()
        threads = [
            t
            for t in threading.enumerate()
            if t not in self.threads and t.is_alive() and t.name.startswith(self.thread_names)
        ]
        fds = {
            fd: target
            for fd, target in open_fds().items()
            if self.fds.get(fd) != target
            and target.startswith(self.fd_kinds)
            and fd not in _helper_fds()
        }
        found = {
            "shared memory": shm_segments(self.owners) - self.segments,
            "child processes": {
                pid: state for pid, state in child_processes().items() if pid not in self.children
            },
            "threads": [t.name for t in threads],
            "file descriptors": fds,
        }
        return {kind: what for kind, what in found.items() if what}

    def check(self, seconds: float = 5.0) -> None:
        wait_until(lambda: not self.leaks(), seconds)
        left = self.leaks()
        assert not left, f"left behind: {left}"


def wait_until(predicate, seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


class ImageDataset(Dataset):
    """The tutorial's per-sample dataset: (28x28 float32, int label)."""

    def __init__(self, size: int = 256, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.images = rng.standard_normal((size, 28, 28), dtype=np.float32)
        self.labels = rng.integers(0, 10, size=size)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple:
        return self.images[index], int(self.labels[index])


def as_numpy(tree):
    """mx.array tree -> numpy tree, for comparisons."""
    import mlx.core as mx

    if isinstance(tree, mx.array):
        return np.array(tree)
    if isinstance(tree, dict):
        return {k: as_numpy(v) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return type(tree)(as_numpy(v) for v in tree)
    return tree


def assert_same_batches(a, b) -> None:
    assert len(a) == len(b), (len(a), len(b))
    for x, y in zip(a, b):
        _assert_same(as_numpy(x), as_numpy(y))


def _assert_same(x, y) -> None:
    if isinstance(x, dict):
        assert x.keys() == y.keys()
        for k in x:
            _assert_same(x[k], y[k])
    elif isinstance(x, (list, tuple)):
        assert len(x) == len(y)
        for u, v in zip(x, y):
            _assert_same(u, v)
    elif isinstance(x, np.ndarray):
        np.testing.assert_array_equal(x, y)
    else:
        assert x == y
