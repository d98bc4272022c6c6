"""One pass over a DataLoader (main side): one class per mode, as torch's layout --
:class:`InProcessPass` (``num_workers=0``) and :class:`WorkerPass` -- and per dataset kind, as
the plan's fetcher says (:func:`pass_class`): ``...MapPass`` for a map-style dataset (index
batches from the sampler), ``...StreamPass`` for an iterable one. A pass sees only its frozen
:class:`PassPlan`, never the loader; it reports back through the plan's callbacks."""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol, cast

import numpy.typing as npt

from .fetch import Fetcher, MapFetcher, SampleError, StreamFetcher, index_list, stream_parts
from .pool import ProcessWorker, ThreadWorker, WorkerPool, first_ready
from .protocol import End, Failed, MapTask, NextTask
from .state import jsonable, resumes_exactly


class PassLike(Iterator[Any], Protocol):
    """What the loader sees of a pass: a :class:`Pass`, or the ``DevicePass`` around one."""

    epoch: int
    finished: bool
    pool: WorkerPool | None

    def state(self) -> dict[str, Any]: ...

    def close(self, failed: bool = False) -> None: ...


@dataclass(frozen=True)
class PassPlan:
    """Everything one pass needs, fixed when ``iter(loader)`` is called."""

    epoch: int
    resume: dict[str, Any]
    fetcher: Fetcher
    dataset: Any
    index_batches: Iterable[Any] | None  # map-style: this epoch's index batches
    num_workers: int
    timeout: float | None
    in_order: bool
    to_output: Callable[[Any], Any]  # numpy batch -> what the loader yields
    collate_in_main: Callable[[Any], Any]  # a collate_fn that could not go to the workers
    view_converter: Callable[[npt.NDArray[Any]], Any]  # copies an array out of a shared slot
    acquire_pool: Callable[[], WorkerPool]  # the loader's persistent workers, or new ones
    finished: Callable[
        [PassLike, bool], None
    ]  # (this pass, whether it failed): keep or stop workers
    advise_sharding: Callable[[dict[str, Any] | None], None]  # see DataLoader._advise_sharding
    reported_length: int | None = None  # an IterableDataset's len() once len(loader) was asked
    wrapped: bool = False  # built inside a DevicePass (its warnings point one frame further out)


def _reraise_in_process(error: SampleError) -> None:
    original = error.error
    if hasattr(original, "add_note"):
        original.add_note(f"(raised by the DataLoader while fetching index {error.index})")
    raise original.with_traceback(original.__traceback__)


class Pass(Iterator[Any]):
    """Yields the batches of one epoch, starting ``batches_yielded`` batches in (resume)."""

    pool: WorkerPool | None = None

    def __init__(self, plan: PassPlan) -> None:
        self.plan = plan
        self.epoch = plan.epoch
        self.yielded = 0
        self.finished = False
        self.closed = False
        self._sample_failed = False
        self.skip = int(plan.resume.get("batches_yielded", 0))

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
            self._after_failure()
            raise
        self.yielded += 1
        if self.plan.reported_length is not None and self.yielded > self.plan.reported_length:
            self._warn_past_length()
        return self.plan.to_output(batch)

    def _warn_past_length(self) -> None:
        """NOTE [IterableDataset and __len__]: torch warns once a stream yields more than the
        length ``len(loader)`` reported (counting batches against ``len(dataset)``, as torch)."""
        message = (
            f"Length of IterableDataset {self.plan.dataset} was reported to be "
            f"{self.plan.reported_length} (when accessing len(dataloader)), but {self.yielded} "
            "samples have been fetched. "
        )
        if self.plan.num_workers > 0:
            message += (
                "For multiprocessing data-loading, this could be caused by not properly configuring "
                "the IterableDataset replica at each worker: split the stream with "
                "mlx_audio.data.get_worker_info() (or get_shard_info()) in its __iter__."
            )
        warnings.warn(message, UserWarning, stacklevel=3)

    def _next_batch(self) -> Any:
        raise NotImplementedError

    def _after_failure(self) -> None:
        pass

    # -- state and clean-up ------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        return {"batches_yielded": self.yielded}

    def close(self, failed: bool = False) -> None:
        if not self.closed:
            self.closed = True
            self.plan.finished(self, failed)

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass


def _skip_replayed(stream_pass: Pass, exact: bool) -> None:
    """Iterable datasets without a state of their own resume by replaying the stream."""
    if exact:
        stream_pass.yielded = stream_pass.skip
    else:
        for _ in range(stream_pass.skip):
            next(stream_pass, None)


class InProcessPass(Pass):
    """``num_workers=0``: fetch, transform and collate in the calling thread."""

    stream_state: dict[str, Any] | None = None


class InProcessMapPass(InProcessPass):
    def __init__(self, plan: PassPlan) -> None:
        super().__init__(plan)
        assert plan.index_batches is not None and isinstance(plan.fetcher, MapFetcher)
        self.fetcher = plan.fetcher
        self.batches = itertools.islice(iter(plan.index_batches), self.skip, None)
        self.yielded = self.skip
        self.stream_state = plan.resume.get("stream")
        if self.stream_state and self.stream_state.get("dataset") is not None:
            plan.dataset.load_state_dict(
                self.stream_state["dataset"]
            )  # NOTE [map-style dataset state]
        else:
            self.stream_state = stream_parts(plan.dataset) or None  # where this pass starts

    def _next_batch(self) -> Any:
        try:
            batch = self.fetcher.fetch(index_list(next(self.batches)), self.epoch)
            self.stream_state = stream_parts(self.plan.dataset) or self.stream_state
            return batch
        except SampleError as error:
            self._sample_failed = True
            _reraise_in_process(error)

    def state(self) -> dict[str, Any]:
        state = super().state()
        if self.stream_state is not None:
            state.update(stream=self.stream_state)
        return cast("dict[str, Any]", jsonable(state))


class InProcessStreamPass(InProcessPass):
    def __init__(self, plan: PassPlan) -> None:
        self.exact = resumes_exactly(plan.resume, plan.dataset, plan.wrapped)
        super().__init__(plan)
        assert isinstance(plan.fetcher, StreamFetcher)
        position = [0]
        if self.exact:
            stream_state = plan.resume.get("stream") or {}
            self.stream_state = plan.resume.get("stream")
            position[0] = int(stream_state.get("position", 0))
            if stream_state.get("dataset") is not None:
                plan.dataset.load_state_dict(stream_state["dataset"])
        self._position = position
        self._iterator = iter(plan.dataset)
        if self.exact and (plan.resume.get("stream") or {}).get("iterator") is not None:
            self._iterator.load_state_dict(plan.resume["stream"]["iterator"])
        self._stream = plan.fetcher.batches(self._iterator, self.epoch, 0, position)
        if self.stream_state is None:
            self._record_stream()  # where this pass starts (a state taken before any batch)
        _skip_replayed(self, self.exact)

    def _next_batch(self) -> Any:
        try:
            batch = next(self._stream)
            self._record_stream()
            return batch
        except SampleError as error:
            self._sample_failed = True  # (a generator that raised simply ends at the next call)
            _reraise_in_process(error)

    def _record_stream(self) -> None:
        self.stream_state = {
            "position": self._position[0],
            **stream_parts(self.plan.dataset, self._iterator),
        }

    def state(self) -> dict[str, Any]:
        state = super().state()
        state.update(cursor=0, exhausted=[], workers=[], stream=self.stream_state)
        return cast("dict[str, Any]", jsonable(state))


class WorkerPass(Pass):
    """Workers fetch; results come back through each worker's channel.

    NOTE [round-robin order]: map-style batch j goes to worker ``j % n`` and is read back from
    it, so the batch order never depends on worker timing (``in_order=False`` reads whichever
    worker is ready). An iterable dataset's workers each run their own stream; their batches
    are taken round-robin, skipping exhausted workers, as torch does.
    """

    worker_states: list[dict[str, Any] | None]

    def _after_failure(self) -> None:
        if self.pool is not None and self.pool.workers:
            self._dispatch()

    def _dispatch(self) -> None:
        raise NotImplementedError

    def _receive(self, worker: ProcessWorker | ThreadWorker) -> tuple[Any, Any]:
        message, slot = worker.take(self.plan.timeout)
        if isinstance(message, Failed):
            worker.release(slot)
            self._sample_failed = True  # the worker lives on; a dead one raises WorkerDied next
            message.error.reraise()
        if isinstance(message, End):
            worker.release(slot)
            return message, None
        batch = worker.unpack(message.payload, slot, self.plan.view_converter)
        worker.release(slot)
        return message, batch


class WorkerMapPass(WorkerPass):
    def __init__(self, plan: PassPlan) -> None:
        super().__init__(plan)
        self.worker_states = []
        self.pool = plan.acquire_pool()
        assert plan.index_batches is not None
        self.batches = itertools.islice(iter(plan.index_batches), self.skip, None)
        self.yielded = self.skip
        self._first = 0  # batch j of the epoch goes to worker j % n, also after a resume
        self.dispatched = self.skip
        states = plan.resume.get("workers") or []
        self.worker_states = (
            list(states) if len(states) == plan.num_workers else [None] * plan.num_workers
        )
        reused = self.pool.passes > 0
        self.pool.passes += 1
        if plan.resume:  # a loaded state: each worker from its saved state, or restarted as new
            for worker, state in zip(self.pool.workers, self.worker_states):
                if state is not None or reused:  # NOTE [map-style dataset state]
                    worker.reset(self.epoch, state)
        self._dispatch()

    def _dispatch(self) -> None:
        assert self.pool is not None
        workers = self.pool.workers
        if not self.plan.in_order:  # any worker with room (results are taken as they finish)
            while any(w.has_room() for w in workers):
                indices = next(self.batches, None)
                if indices is None:
                    return
                worker = min((w for w in workers if w.has_room()), key=lambda w: len(w.in_flight))
                self._submit(worker, indices)
            return
        while workers[self.dispatched % len(workers)].has_room():
            indices = next(self.batches, None)
            if indices is None:
                return
            self._submit(workers[self.dispatched % len(workers)], indices)

    def _submit(self, worker: ProcessWorker | ThreadWorker, indices: Any) -> None:
        epoch = self.epoch
        batch = index_list(indices)
        worker.submit(lambda slot: MapTask(epoch, batch, slot))
        self.dispatched += 1

    def _next_batch(self) -> Any:
        assert self.pool is not None
        workers = self.pool.workers
        if not workers:  # the loader was closed under this pass
            raise StopIteration
        received = self.yielded - self._first  # the j-th batch dispatched went to worker j % n
        if received >= self.dispatched:
            raise StopIteration
        worker = (
            workers[received % len(workers)]
            if self.plan.in_order
            else first_ready(workers, self.plan.timeout)
        )
        message, batch = self._receive(worker)
        if message.state is not None:
            self.worker_states[workers.index(worker)] = message.state
        self._dispatch()
        return self.plan.collate_in_main(batch)

    def state(self) -> dict[str, Any]:
        state = super().state()
        if any(s is not None for s in self.worker_states):
            state.update(workers=self.worker_states)
        return cast("dict[str, Any]", jsonable(state))


class WorkerStreamPass(WorkerPass):
    def __init__(self, plan: PassPlan) -> None:
        self.exact = resumes_exactly(plan.resume, plan.dataset, plan.wrapped)
        super().__init__(plan)
        self.worker_states = []
        self.exhausted: set[int] = set()
        self.cursor = 0
        self.pool = plan.acquire_pool()
        resume = plan.resume
        states = resume.get("workers") if self.exact else None
        self.worker_states = list(states) if states else [None] * plan.num_workers
        self.exhausted = set(resume.get("exhausted", [])) if self.exact else set()
        self.cursor = int(resume.get("cursor", 0)) if self.exact else 0
        for worker, state in zip(self.pool.workers, self.worker_states):
            worker.reset(self.epoch, state)
        self._dispatch()
        _skip_replayed(self, self.exact)

    def _dispatch(self) -> None:
        assert self.pool is not None
        for wid, worker in enumerate(self.pool.workers):
            while wid not in self.exhausted and worker.has_room():
                worker.submit(NextTask)

    def _next_batch(self) -> Any:
        assert self.pool is not None
        workers = self.pool.workers
        if not workers:  # the loader was closed under this pass
            raise StopIteration
        return self._next_from_streams(workers)

    def _next_from_streams(self, workers: list[ProcessWorker | ThreadWorker]) -> Any:
        while len(self.exhausted) < len(workers):
            wid = self.cursor % len(workers)
            self.cursor = (self.cursor + 1) % len(workers)
            if wid in self.exhausted:
                continue
            message, batch = self._receive(workers[wid])
            if isinstance(message, End):
                self.exhausted.add(wid)
                workers[wid].drain(self.plan.timeout)
                # advised once a worker has gone through its stream (torch's own tests expect
                # no warning from a pass that has not)
                self.plan.advise_sharding(self.worker_states[wid])
                continue
            self.worker_states[wid] = message.state
            self._dispatch()
            return self.plan.collate_in_main(batch)
        raise StopIteration

    def state(self) -> dict[str, Any]:
        state = super().state()
        state.update(
            cursor=self.cursor,
            exhausted=sorted(self.exhausted),
            workers=self.worker_states,
            stream=None,
        )
        return cast("dict[str, Any]", jsonable(state))


# the pass for each (dataset kind, mode): the fetcher a DataLoader made says the kind
_PASSES: dict[tuple[type, bool], type[Pass]] = {
    (MapFetcher, False): InProcessMapPass,
    (StreamFetcher, False): InProcessStreamPass,
    (MapFetcher, True): WorkerMapPass,
    (StreamFetcher, True): WorkerStreamPass,
}


def pass_class(plan: PassPlan) -> type[Pass]:
    """The pass for ``plan``: its fetcher's kind (map or stream) x in-process or workers."""
    return _PASSES[type(plan.fetcher), plan.num_workers > 0]
