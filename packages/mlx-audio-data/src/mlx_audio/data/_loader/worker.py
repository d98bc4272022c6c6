"""The worker side: process and thread worker loops, worker info and seeding.

Nothing here imports MLX: workers produce numpy only (MLX arrays sent between processes hang
on CUDA and leak semaphores on Metal, mlx#2457).
"""

from __future__ import annotations

import os
import queue
import random
import signal
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..support import global_rng_state, limit_blas_threads, set_global_rng_state
from . import tree
from .fetch import MapFetcher, SampleError, StreamFetcher, stream_parts
from .protocol import (
    Batch,
    End,
    Failed,
    MapTask,
    NextTask,
    Ready,
    ResetTask,
    Sizing,
    WorkerError,
    WorkerSpec,
)
from .shm import Arena, Slot, pack, unlink_quietly

_POLL_SECONDS = 1.0


class _ReadOnly(RuntimeError, AttributeError):
    """torch raises RuntimeError; Python's read-only attributes raise AttributeError."""


@dataclass(frozen=True)
class WorkerRNG:
    """A thread worker's own generators, seeded with its ``WorkerInfo.seed`` (torch's ``_RNG``,
    without a torch generator): threads share the process's global RNGs."""

    random_generator: random.Random
    numpy_generator: np.random.Generator


@dataclass
class WorkerInfo:
    """What a worker knows about itself: torch's ``WorkerInfo`` (its fields, in its order:
    ``rng`` is None in a process, a :class:`WorkerRNG` in a thread; ``worker_method`` is
    ``"multiprocessing"`` or ``"thread"``), then ``rank`` and ``num_replicas``; read-only."""

    id: int
    num_workers: int
    seed: int
    dataset: Any
    rng: WorkerRNG | None = None
    worker_method: str | None = "multiprocessing"
    rank: int = 0  # beyond torch's fields: the data-parallel process (see get_shard_info)
    num_replicas: int = 1

    def __post_init__(self) -> None:
        object.__setattr__(self, "_sealed", True)

    def __setattr__(self, name: str, value: Any) -> None:
        if getattr(self, "_sealed", False):
            raise _ReadOnly(f"Cannot assign attributes to {type(self).__name__} objects")
        object.__setattr__(self, name, value)

    def __delattr__(self, name: str) -> None:
        raise _ReadOnly(f"Cannot delete attributes of {type(self).__name__} objects")


_process_info: WorkerInfo | None = None
_thread_info = threading.local()


def get_worker_info() -> WorkerInfo | None:
    """Inside a DataLoader worker: its :class:`WorkerInfo`; in the main process: None."""
    info = getattr(_thread_info, "info", None) or _process_info
    if info is not None:
        _asked.add(info.id)  # the stream shards itself (see NOTE [sharding advice])
    return info


_asked: set[int] = set()  # worker ids whose dataset called get_worker_info()


def worker_seed(seed: int, epoch: int, worker_id: int) -> int:
    return int(
        np.random.SeedSequence([seed & 0xFFFFFFFFFFFFFFFF, epoch, worker_id]).generate_state(1)[0]
    )


def seed_globals(seed: int) -> None:
    """Seed Python's and numpy's global RNGs, as torch does for each worker."""
    random.seed(seed)
    np.random.seed(seed & 0xFFFFFFFF)


class _Producer:
    """Runs tasks for one worker; one subclass per fetcher (:data:`_PRODUCERS`)."""

    def __init__(self, spec: WorkerSpec, owns_globals: bool) -> None:
        self.spec = spec
        self.owns_globals = owns_globals  # threads share the process's RNGs: leave them alone
        self.position = [0]
        self.dataset = _worker_share(spec.fetcher.dataset, spec)

    def reset(self, epoch: int, state: dict[str, Any] | None) -> None:
        """Start (or resume) this worker's pass for ``epoch``: the worker's RNGs and the
        dataset's state (see NOTE [map-style dataset state]), then the kind's own start."""
        spec = self.spec
        spec.epoch = epoch
        if self.owns_globals:
            seed_globals(worker_seed(spec.seed, epoch, spec.worker_id))
        self.position = [0]
        if state is not None:
            self.position = [int(state.get("position", 0))]
            if state.get("dataset") is not None:
                self.dataset.load_state_dict(state["dataset"])
            if self.owns_globals and state.get("rng"):
                set_global_rng_state(state["rng"])
        self._start(epoch, state)

    def _start(self, epoch: int, state: dict[str, Any] | None) -> None:
        raise NotImplementedError

    def run(self, task: MapTask | NextTask) -> tuple[Any, dict[str, Any] | None]:
        """Returns (batch or StopIteration, the state after it)."""
        raise NotImplementedError


class _MapProducer(_Producer):
    """Map-style: the batch of each task's indices."""

    def _start(self, epoch: int, state: dict[str, Any] | None) -> None:
        spec = self.spec
        if state is None and spec.worker_init_fn is not None:  # restarted as a new worker
            spec.worker_init_fn(spec.worker_id)

    def run(self, task: MapTask | NextTask) -> tuple[Any, dict[str, Any] | None]:
        assert isinstance(task, MapTask) and isinstance(self.spec.fetcher, MapFetcher)
        batch = self.spec.fetcher.fetch(task.indices, task.epoch)
        return batch, self._map_state()

    def _map_state(self) -> dict[str, Any] | None:
        """NOTE [map-style dataset state]: a map-style dataset with ``state_dict()`` (torchdata's
        ``Stateful``) has it saved after every batch, with the worker's global RNGs, so a
        dataset drawing from them in ``__getitem__`` resumes exactly (batch j of an epoch always
        goes to worker j % n, also after a resume)."""
        state = stream_parts(self.spec.fetcher.dataset)
        if not state:
            return None
        if self.owns_globals:
            state["rng"] = global_rng_state()
        return state


class _StreamProducer(_Producer):
    """Iterable: the next batch of this worker's stream for each task."""

    stream: Iterator[Any] | None = None
    iterator: Any = None

    def _start(self, epoch: int, state: dict[str, Any] | None) -> None:
        spec = self.spec
        assert isinstance(spec.fetcher, StreamFetcher)
        self.iterator = iter(self.dataset)
        if state is not None and state.get("iterator") is not None:
            self.iterator.load_state_dict(state["iterator"])
        self.stream = spec.fetcher.batches(self.iterator, epoch, spec.worker_id, self.position)
        for _ in range(int((state or {}).get("skip", 0))):  # a replay: batches handed out before
            try:
                next(self.stream, None)
            except SampleError:  # raised to the user then
                pass

    def run(self, task: MapTask | NextTask) -> tuple[Any, dict[str, Any] | None]:
        assert self.stream is not None
        batch = next(self.stream, StopIteration)
        parts = stream_parts(self.dataset, self.iterator)
        state: dict[str, Any] = {
            "position": self.position[0],
            "sharded": self.spec.worker_id in _asked,
            **parts,
        }
        if self.owns_globals and parts:
            state["rng"] = (
                global_rng_state()
            )  # a stream drawing from the worker's RNGs resumes exactly
        return batch, state


# the worker's code for each dataset kind, chosen by the fetcher it was sent (see fetcher_class)
_PRODUCERS: dict[type, type[_Producer]] = {MapFetcher: _MapProducer, StreamFetcher: _StreamProducer}


def _producer(spec: WorkerSpec, owns_globals: bool) -> _Producer:
    return _PRODUCERS[type(spec.fetcher)](spec, owns_globals)


def _worker_share(dataset: Any, spec: WorkerSpec) -> Any:
    """This worker's share of a stream that cannot split itself under our workers (a Hugging
    Face ``datasets.IterableDataset``): its adapter splits it (NOTE [dataset adapters])."""
    if spec.num_workers < 2 or spec.adapter is None:
        return dataset
    share = spec.adapter.split(dataset, spec.worker_id, spec.num_workers)
    if share is None:
        return dataset
    _asked.add(spec.worker_id)  # sharded: no advice needed
    return share


def _worker_info(spec: WorkerSpec, thread: bool = False) -> WorkerInfo:
    """What ``get_worker_info()`` returns in this worker (process or thread)."""
    seed = worker_seed(spec.seed, spec.epoch, spec.worker_id)
    return WorkerInfo(
        spec.worker_id,
        spec.num_workers,
        seed,
        spec.fetcher.dataset,
        WorkerRNG(random.Random(seed), np.random.default_rng(seed)) if thread else None,
        "thread" if thread else "multiprocessing",
        spec.rank,
        spec.num_replicas,
    )


def process_worker_loop(
    spec: WorkerSpec,
    tasks: Any,
    results: Any,
    slot_paths: list[str],
    parent_pid: int,
    start_method: str = "fork",
    mlx_has_run: bool = True,
    initial: list[Any] | None = None,
) -> None:
    """Entry point of a worker process.

    Messages: see ``protocol`` (tasks in -- the first ones in ``initial`` for a forked worker --,
    Ready then Batch / End / Failed out).
    """
    global _process_info
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the main process's to handle
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a forked child may inherit a trainer's handler
    signal.pthread_sigmask(
        signal.SIG_UNBLOCK, (signal.SIGINT, signal.SIGTERM)
    )  # NOTE [signals across fork]
    if start_method == "fork" and mlx_has_run:  # NOTE [MLX after fork]
        tree.mlx_forbidden = (
            f"DataLoader worker {spec.worker_id} was forked from a process that had loaded MLX, and "
            "MLX cannot compute in a forked process (its threads do not survive fork: it would hang). "
            "Return numpy from the dataset (MLX work belongs in mlx_transforms), or use "
            "multiprocessing_context='spawn' (or 'forkserver'), or worker_type='thread'"
        )
        tree.forbid_mlx_functions(tree.mlx_forbidden)
    limit_blas_threads(1)  # N workers x multi-threaded BLAS on the same cores would thrash
    slots = [Slot(path) for path in slot_paths]
    unlink_quietly(slot_paths)  # open on both sides now: only descriptors (NOTE [fast start])
    results.send(Ready())
    _process_info = _worker_info(spec)
    producer = _producer(spec, owns_globals=True)
    try:
        seed_globals(_process_info.seed)
        if spec.worker_init_fn is not None:
            spec.worker_init_fn(spec.worker_id)
    except Exception as error:
        results.send(Failed(WorkerError(spec.worker_id, error)))
    watched = _parent_watch(parent_pid)

    def announce(shape: tuple[int, ...], dtype: str) -> None:  # NOTE [warm destination]
        try:
            results.send(Sizing(shape, dtype))
        except (BrokenPipeError, EOFError, OSError):  # the next send notices
            pass

    pending = list(initial or ())[::-1]  # tasks sent with the start (NOTE [fast start])
    while True:
        try:
            task = pending.pop() if pending else tasks.get(timeout=_POLL_SECONDS)
        except queue.Empty:
            if not watched():  # the main process died: do not linger
                return
            continue
        if task is None:
            return
        message = _run_task(
            producer,
            task,
            None if isinstance(task, ResetTask) else Arena(slots[task.slot], announce),
        )
        if message is None:
            continue
        try:
            results.send(message)
        except (BrokenPipeError, EOFError, OSError):  # the main process stopped listening
            return


def _parent_watch(parent_pid: int) -> Callable[[], bool]:
    """NOTE [worker watchdog]: an idle worker checks, once per poll, that the process it serves
    still exists. Its parent is not always that process: a ``forkserver`` worker is forked by
    the fork server, so ``os.getppid()`` never equals the main process's pid. Comparing the two
    (as this loop once did) made every forkserver worker idle for one poll (a slow sample on
    another worker, the other workers still starting, a pause between two batches) exit with
    code 0 while its loader was alive: ``WorkerDied ... exit code 0``, more often on a busy
    machine. As torch's ``ManagerWatchdog``: the parent seen at start must stay the parent (an
    orphan is re-parented), and the main process must still exist."""
    start_parent = os.getppid()

    def alive() -> bool:
        if os.getppid() != start_parent:
            return False
        try:
            os.kill(parent_pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:  # exists (another user's by now: pid reuse, accepted)
            pass
        return True

    return alive


def thread_worker_loop(
    spec: WorkerSpec,
    tasks: queue.Queue[MapTask | NextTask | ResetTask | None],
    results: queue.Queue[Batch | End | Failed],
    stop: threading.Event,
) -> None:
    """Entry point of a worker thread: same protocol, batches passed by reference."""
    _thread_info.info = _worker_info(spec, thread=True)
    producer = _producer(spec, owns_globals=False)
    if spec.worker_init_fn is not None:
        try:
            spec.worker_init_fn(spec.worker_id)
        except Exception as error:
            results.put(Failed(WorkerError(spec.worker_id, error)))
    while not stop.is_set():
        try:
            task = tasks.get(timeout=_POLL_SECONDS)
        except queue.Empty:
            continue
        if task is None:
            return
        message = _run_task(producer, task, None)
        if message is not None:
            results.put(message)


def _run_task(producer: _Producer, task: Any, arena: Arena | None) -> Batch | End | Failed | None:
    """Run one task; return the message to send back (None for a reset).

    With an ``arena`` (process workers) the batch is collated straight into the task's
    shared-memory slot and only its skeleton is sent; threads pass the batch itself.
    """
    fetcher = producer.spec.fetcher
    try:
        if isinstance(task, ResetTask):
            producer.reset(task.epoch, task.state)
            return None
        fetcher.alloc = arena.empty if arena is not None else None
        batch, state = producer.run(task)
        if batch is StopIteration:
            return End(state)
        return Batch(pack(batch, arena) if arena is not None else batch, state)
    except Exception as error:
        return Failed(WorkerError(producer.spec.worker_id, error))
    finally:
        fetcher.alloc = None
