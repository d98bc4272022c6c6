"""One pass over a DataLoader: the in-process path and the worker path, with resume state."""

from __future__ import annotations

import itertools
import sys
import time
import warnings
from collections.abc import Iterator
from multiprocessing.connection import wait
from typing import TYPE_CHECKING, Any

import numpy as np

from ._fetch import Fetcher, SampleError, index_list
from ._pool import ProcessWorker, ThreadWorker
from ._worker import WorkerError, WorkerSpec

if TYPE_CHECKING:
    from .dataloader import DataLoader


def _reraise_in_process(error: SampleError) -> None:
    original = error.error
    if hasattr(original, "add_note"):
        original.add_note(f"(raised by the DataLoader while fetching index {error.index})")
    raise original.with_traceback(original.__traceback__)


class WorkerPool:
    """The running workers of a loader (kept across passes with ``persistent_workers``)."""

    def __init__(self, loader: DataLoader, fetcher: Fetcher, epoch: int) -> None:
        n = loader.num_workers
        prefetch = loader.prefetch_factor or 2  # set whenever num_workers > 0
        iterable = loader._iterable
        self.workers: list[ProcessWorker | ThreadWorker] = []
        mlx_core = sys.modules.get("mlx.core")
        if (
            loader.worker_type == "process"
            and loader._start_method() == "fork"
            and mlx_core is not None
        ):
            # MLX's cached (free) buffers would be shared copy-on-write with the children, and
            # every batch written into them afterwards would fault page by page.
            mlx_core.clear_cache()
        try:
            for wid in range(n):
                spec = WorkerSpec(
                    wid, n, fetcher, loader._resolved_seed(), epoch, loader.worker_init_fn, iterable
                )
                if loader.worker_type == "thread":
                    self.workers.append(ThreadWorker(spec, prefetch))
                else:
                    self.workers.append(ProcessWorker(loader._mp_context(), spec, prefetch))
            for worker in self.workers:
                if isinstance(worker, ProcessWorker):
                    worker.wait_ready()
        except BaseException:
            self.close()
            raise

    @property
    def pids(self) -> list[int]:
        return [w.pid for w in self.workers if w.pid is not None]

    def drain(self, timeout: float | None) -> None:
        for worker in self.workers:
            worker.drain(timeout)

    def healthy(self) -> bool:
        return all(getattr(w, "healthy", lambda: True)() for w in self.workers)

    def close(self) -> None:
        workers = self.workers
        self.workers = []
        for worker in workers:
            worker.stop()


class Pass(Iterator[Any]):
    """Yields the batches of one epoch, starting ``skip`` batches in (resume)."""

    def __init__(self, loader: DataLoader, epoch: int, resume: dict | None) -> None:
        self.loader = loader
        self.epoch = epoch
        self.yielded = 0
        self.finished = False
        self.closed = False
        self.pool: WorkerPool | None = None
        self.worker_states: list[dict | None] = []
        self.exhausted: set[int] = set()
        self.cursor = 0
        self.stream_state: dict | None = None
        self._sample_failed = False
        resume = resume or {}
        skip = int(resume.get("batches_yielded", 0))
        self._timeout = loader.timeout if loader.timeout > 0 else None
        self._fetcher = loader._fetcher()
        if loader._iterable:
            self._start_iterable(resume, skip)
        else:
            self._start_map(skip)

    # -- set-up ------------------------------------------------------------------------------
    def _start_map(self, skip: int) -> None:
        batches = iter(self.loader._index_batches(self.epoch))
        self.batches = itertools.islice(batches, skip, None)
        self.yielded = self._first = skip
        if self.loader.num_workers:
            self.pool = self.loader._pool(self._fetcher, self.epoch)
            self.dispatched = 0
            self._dispatch()

    def _start_iterable(self, resume: dict, skip: int) -> None:
        loader = self.loader
        dataset = loader.dataset
        exact = skip and hasattr(dataset, "state_dict") and hasattr(dataset, "load_state_dict")
        if skip and not exact:
            warnings.warn(
                f"{type(dataset).__name__} has no state_dict()/load_state_dict(): resuming by "
                f"replaying its stream and dropping the first {skip} batches",
                stacklevel=4,
            )
        n = loader.num_workers
        states = resume.get("workers") if exact else None
        if n:
            self.pool = loader._pool(self._fetcher, self.epoch)
            self.worker_states = list(states) if states else [None] * n
            self.exhausted = set(resume.get("exhausted", [])) if exact else set()
            self.cursor = int(resume.get("cursor", 0)) if exact else 0
            for worker, state in zip(self.pool.workers, self.worker_states):
                worker.reset(self.epoch, state)
            self._dispatch()
        else:
            position = [0]
            if exact:
                stream_state = resume.get("stream") or {}
                self.stream_state = resume.get("stream")
                position[0] = int(stream_state.get("position", 0))
                if stream_state.get("dataset") is not None:
                    dataset.load_state_dict(stream_state["dataset"])
            self._position = position
            self._stream = self._fetcher.iterable_batches(iter(dataset), self.epoch, 0, position)
        if exact:
            self.yielded = skip
        else:
            for _ in range(skip):
                next(self, None)

    # -- iteration ---------------------------------------------------------------------------
    def __next__(self) -> Any:
        if self.finished or self.closed:  # closed: a newer pass took the persistent workers
            raise StopIteration
        try:
            batch = self._next_batch()
        except StopIteration:
            self.finished = True
            self.close()
            raise
        except BaseException:
            if not self._sample_failed:
                self.close(failed=True)
                raise
            # NOTE [a sample's error]: as in torch, the error is raised for its batch and the
            # pass goes on: the next call yields the next batch (the failed one is consumed).
            self._sample_failed = False
            self.yielded += 1
            if self.pool is not None and self.pool.workers:
                self._dispatch()
            raise
        self.yielded += 1
        return self.loader._to_output(batch)

    def _next_batch(self) -> Any:
        if self.pool is None:
            return self._next_in_process()
        if self.loader._iterable:
            return self._next_from_stream_workers()
        return self._next_from_map_workers()

    def _next_in_process(self) -> Any:
        try:
            if self.loader._iterable:
                batch = next(self._stream)
                self.stream_state = {"position": self._position[0]}
                if hasattr(self.loader.dataset, "state_dict"):
                    self.stream_state["dataset"] = self.loader.dataset.state_dict()
                return batch
            return self._fetcher.fetch(index_list(next(self.batches)), self.epoch)
        except SampleError as error:
            self._sample_failed = True  # (a generator that raised simply ends at the next call)
            _reraise_in_process(error)

    def _dispatch(self) -> None:
        assert self.pool is not None
        workers = self.pool.workers
        if self.loader._iterable:
            for wid, worker in enumerate(workers):
                while wid not in self.exhausted and worker.has_room():
                    worker.submit(("next",))
            return
        if not self.loader.in_order:  # any worker with room (results are taken as they finish)
            while any(w.has_room() for w in workers):
                indices = next(self.batches, None)
                if indices is None:
                    return
                worker = min((w for w in workers if w.has_room()), key=lambda w: len(w.in_flight))
                worker.submit(("map", self.epoch, index_list(indices)))
                self.dispatched += 1
            return
        while workers[self.dispatched % len(workers)].has_room():
            indices = next(self.batches, None)
            if indices is None:
                return
            workers[self.dispatched % len(workers)].submit(("map", self.epoch, index_list(indices)))
            self.dispatched += 1

    def _receive(self, worker: ProcessWorker | ThreadWorker) -> tuple[tuple, Any]:
        message, slot = worker.take(self._timeout)
        if message[0] == "error":
            worker.release(slot)
            error: WorkerError = message[1]
            self._sample_failed = True  # the worker lives on; a dead one raises WorkerDied next
            error.reraise()
        if message[0] == "end":
            worker.release(slot)
            return message, None
        batch = worker.unpack(message[1], slot, self.loader._view_converter())
        worker.release(slot)
        return message, batch

    def _next_from_map_workers(self) -> Any:
        assert self.pool is not None
        workers = self.pool.workers
        received = self.yielded - self._first  # the j-th batch dispatched went to worker j % n
        if received >= self.dispatched:
            raise StopIteration
        worker = workers[received % len(workers)] if self.loader.in_order else self._first_ready(workers)
        _, batch = self._receive(worker)
        self._dispatch()
        return self.loader._collate_in_main(batch)

    def _first_ready(self, workers: list) -> Any:
        """in_order=False: the first worker with a finished batch (torch's rule: a slow sample
        does not hold back the batches behind it)."""
        busy = [w for w in workers if w.in_flight]
        deadline = None if self._timeout is None else time.monotonic() + self._timeout
        while True:
            for worker in busy:
                if worker.ready():
                    return worker
            conns = [w.conn for w in busy if hasattr(w, "conn")]
            if conns:
                wait([*conns, *(w.process.sentinel for w in busy)], 0.05)
            else:
                time.sleep(0.001)
            if deadline is not None and time.monotonic() > deadline:
                return busy[0]  # its take() reports the timeout

    def _next_from_stream_workers(self) -> Any:
        assert self.pool is not None
        workers = self.pool.workers
        while len(self.exhausted) < len(workers):
            wid = self.cursor % len(workers)
            self.cursor = (self.cursor + 1) % len(workers)
            if wid in self.exhausted:
                continue
            message, batch = self._receive(workers[wid])
            if message[0] == "end":
                self.exhausted.add(wid)
                workers[wid].drain(self._timeout)
                continue
            self.worker_states[wid] = message[2]
            self.loader._advise_sharding(message[2])
            self._dispatch()
            return self.loader._collate_in_main(batch)
        raise StopIteration

    # -- state and clean-up ------------------------------------------------------------------
    def state(self) -> dict:
        state: dict[str, Any] = {"batches_yielded": self.yielded}
        if self.loader._iterable:
            state.update(
                cursor=self.cursor,
                exhausted=sorted(self.exhausted),
                workers=self.worker_states,
                stream=self.stream_state,
            )
        return _jsonable(state)

    def close(self, failed: bool = False) -> None:
        if not self.closed:
            self.closed = True
            self.loader._pass_closed(self, failed)

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass


def _jsonable(value: Any) -> Any:
    """numpy scalars and arrays as Python values; keys are left alone (a dataset's state comes
    back to its load_state_dict as it gave it)."""
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value
