"""One pass with workers (main side): :class:`WorkerMapPass` and :class:`WorkerStreamPass`
hand tasks to the workers and read their results back; :func:`pass_class` picks the pass for a
plan (its fetcher's kind x in-process or workers)."""

from __future__ import annotations

import functools
import time
from collections import deque
from multiprocessing.connection import wait
from typing import Any, cast

from .fetch import DeviceFetcher, MapFetcher, StreamFetcher, index_list
from .passes import InProcessMapPass, InProcessStreamPass, Pass, PassPlan, skip_replayed
from .pool import ProcessWorker, ThreadWorker
from .protocol import End, Failed, MapTask, NextTask
from .state import Delivered, jsonable, resumes_exactly
from .warm import warmer

Worker = ProcessWorker | ThreadWorker


def first_ready(workers: list[ProcessWorker | ThreadWorker], timeout: float | None) -> Any:
    """in_order=False: the first worker with a finished batch (torch's rule: a slow sample does
    not hold back the batches behind it); after ``timeout`` the first busy one (whose
    ``take()`` then reports the timeout)."""
    busy = [w for w in workers if w.in_flight]
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        for worker in busy:
            if worker.ready():
                return worker
        conns = [w.conn for w in busy if isinstance(w, ProcessWorker)]
        if conns:
            wait(
                [*conns, *(w.process.sentinel for w in busy if isinstance(w, ProcessWorker))],
                0.05,
            )
        else:
            time.sleep(0.001)
        if deadline is not None and time.monotonic() > deadline:
            return busy[0]  # its take() reports the timeout


class WorkerPass(Pass):
    """Workers fetch; results come back through each worker's channel.

    NOTE [round-robin order]: map-style batch j goes to worker ``j % n`` and is read back from
    it, so the batch order never depends on worker timing. An iterable dataset's workers each
    run their own stream; their batches are taken round-robin, skipping exhausted workers, as
    torch does. ``in_order=False`` (torch's rules): a map-style batch goes to any worker with
    room and a batch is taken from whichever worker has one ready, so one worker's slow sample
    holds back only its own batches (NOTE [out-of-order resume] says what a state records).
    """

    worker_states: list[dict[str, Any] | None]

    def _after_failure(self) -> None:
        if self.pool is not None and self.pool.workers:
            self._dispatch()

    def _dispatch(self) -> None:
        raise NotImplementedError

    def _receive(self, worker: Worker) -> tuple[Any, Any]:
        message, slot = worker.take(self.plan.timeout)
        if self.pool is not None:
            self.pool.started()  # NOTE [fast start] in pools.py
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
        self.pool.use_warm(warmer(plan.view_converter))  # NOTE [warm destination]
        assert plan.index_batches is not None
        self.delivered = Delivered(plan.resume)  # NOTE [out-of-order resume]
        self.batches = self.delivered.remaining(plan.index_batches)
        self.yielded = self.skip
        self._held: tuple[int, Any] | None = None  # the next batch, waiting for room
        self.queued: list[deque[int]] = [deque() for _ in self.pool.workers]  # positions sent
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
        self.pool.launch()  # NOTE [fast start]

    def _dispatch(self) -> None:
        assert self.pool is not None
        workers = self.pool.workers
        while True:
            if self._held is None:
                self._held = next(self.batches, None)
                if self._held is None:
                    return
            position, indices = self._held
            if self.plan.in_order:  # batch j to worker j % n, also after a resume
                wid = position % len(workers)
                if not workers[wid].has_room():
                    return
            else:  # any worker with room (results are taken as they finish)
                free = [w for w in range(len(workers)) if workers[w].has_room()]
                if not free:
                    return
                wid = min(free, key=lambda w: len(workers[w].in_flight))
            workers[wid].submit(functools.partial(MapTask, self.epoch, index_list(indices)))
            self.queued[wid].append(position)
            self._held = None

    def _next_batch(self) -> Any:
        assert self.pool is not None
        workers = self.pool.workers
        busy = [w for w in range(len(workers)) if self.queued[w]]
        if not workers or not busy:  # the epoch is done, or the loader was closed under it
            raise StopIteration
        if self.plan.in_order:  # the earliest batch sent
            wid = min(busy, key=lambda w: self.queued[w][0])
        else:
            wid = workers.index(first_ready([workers[w] for w in busy], self.plan.timeout))
        position = self.queued[wid].popleft()
        try:
            message, batch = self._receive(workers[wid])
        except BaseException:
            if self._sample_failed:  # its error is raised for it: the batch is consumed
                self.delivered.mark(position)
            raise
        self.delivered.mark(position)
        if message.state is not None:
            self.worker_states[wid] = message.state
        self._dispatch()
        return self.plan.collate_in_main(batch)

    def state(self) -> dict[str, Any]:
        state = {**super().state(), **self.delivered.state()}
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
        self.pool.use_warm(warmer(plan.view_converter))  # NOTE [warm destination]
        resume = plan.resume
        states = resume.get("workers") if self.exact else None
        self.worker_states = list(states) if states else [None] * plan.num_workers
        # batches handed out per worker: a stream without a state replays each worker's own
        counts = resume.get("delivered") or []
        replay = not self.exact and len(counts) == plan.num_workers
        self.delivered = [int(c) for c in counts] if replay else [0] * plan.num_workers
        positioned = self.exact or replay  # else replayed here, from the first batch
        self.exhausted = set(resume.get("exhausted", [])) if positioned else set()
        self.cursor = int(resume.get("cursor", 0)) if positioned else 0
        for wid, worker in enumerate(self.pool.workers):
            worker.reset(self.epoch, {"skip": counts[wid]} if replay else self.worker_states[wid])
        self._dispatch()
        self.pool.launch()  # NOTE [fast start]
        if replay:
            self.yielded = self.skip
        else:
            skip_replayed(self, self.exact)

    def _dispatch(self) -> None:
        assert self.pool is not None
        for wid, worker in enumerate(self.pool.workers):
            while wid not in self.exhausted and worker.has_room():
                worker.submit(NextTask)

    def _next_batch(self) -> Any:
        assert self.pool is not None
        workers = self.pool.workers
        while workers and len(self.exhausted) < len(workers):
            if self.plan.in_order:
                wid = self.cursor % len(workers)
                self.cursor = (self.cursor + 1) % len(workers)
                if wid in self.exhausted:
                    continue
            else:  # whichever worker has a batch (or its end) ready
                live = [workers[w] for w in range(len(workers)) if w not in self.exhausted]
                wid = workers.index(first_ready(live, self.plan.timeout))
            message, batch = self._receive(workers[wid])
            if message.state is not None:
                self.worker_states[wid] = message.state
            if isinstance(message, End):
                self.exhausted.add(wid)
                workers[wid].drain(self.plan.timeout)
                # advised once a worker has gone through its stream (torch's own tests expect
                # no warning from a pass that has not)
                self.plan.advise_sharding(self.worker_states[wid])
                continue
            self.delivered[wid] += 1
            self._dispatch()
            return self.plan.collate_in_main(batch)
        raise StopIteration  # every stream is exhausted, or the loader was closed under it

    def state(self) -> dict[str, Any]:
        state = super().state()
        state.update(
            cursor=self.cursor,
            exhausted=sorted(self.exhausted),
            workers=self.worker_states,
            delivered=self.delivered,
            stream=None,
        )
        return cast("dict[str, Any]", jsonable(state))


# the pass for each (dataset kind, mode): the fetcher a DataLoader made says the kind
_PASSES: dict[tuple[type, bool], type[Pass]] = {
    (MapFetcher, False): InProcessMapPass,
    (DeviceFetcher, False): InProcessMapPass,  # NOTE [device-resident data]: never in workers
    (StreamFetcher, False): InProcessStreamPass,
    (MapFetcher, True): WorkerMapPass,
    (StreamFetcher, True): WorkerStreamPass,
}


def pass_class(plan: PassPlan) -> type[Pass]:
    """The pass for ``plan``: its fetcher's kind (map or stream) x in-process or workers."""
    return _PASSES[type(plan.fetcher), plan.num_workers > 0]
