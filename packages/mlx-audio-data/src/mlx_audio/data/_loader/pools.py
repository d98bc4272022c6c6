"""A pass's running workers (:class:`WorkerPool`) and a DataLoader's pools (the passes' and the
one kept for the next pass)."""

from __future__ import annotations

import os
import sys
from typing import Any

from .pool import ProcessWorker, ThreadWorker
from .protocol import WorkerSpec
from .warm import Warm


class WorkerPool:
    """The running workers of a loader (kept across passes with ``persistent_workers``)."""

    def __init__(
        self,
        specs: list[WorkerSpec],
        prefetch: int,
        worker_type: str,
        context: Any,
    ) -> None:
        self.workers: list[ProcessWorker | ThreadWorker] = []
        self.owner = os.getpid()  # only this process stops them (NOTE [finalizers after fork])
        self.passes = 0  # map-style passes run on these workers (persistent ones run several)
        self.starting = True  # until every worker's Ready is read (NOTE [fast start])
        mlx_core = sys.modules.get("mlx.core")
        if (
            worker_type == "process"
            and context.get_start_method() == "fork"
            and mlx_core is not None
        ):
            # MLX's cached (free) buffers would be shared copy-on-write with the children, and
            # every batch written into them afterwards would fault page by page.
            mlx_core.clear_cache()
        try:
            # NOTE [fast start]: the workers are not waited for here. The pass sends its first
            # tasks at once, while they start (queued in their task queues), so a worker's start
            # overlaps the others' and the first batch comes one round trip sooner. A forked
            # worker is started only after the pass has sent its first tasks (``launch``), which
            # it then finds in its memory: no wait for the task queue's feeder thread, nor for
            # the other workers' fork; a spawned one is started here (a pickling error is
            # explained at the start) and reads them from its queue. A worker
            # unlinks its slots' names once it has opened them, then says Ready; the main process
            # reads a worker's Ready before its first result, and every worker's once the pass
            # has its first result (``started``), so from then on the slots live only as
            # descriptors, as before. A worker that dies while starting is reported by that read
            # (its slot names unlinked then, if it had not).
            for spec in specs:
                if worker_type == "thread":
                    self.workers.append(ThreadWorker(spec, prefetch))
                else:
                    self.workers.append(ProcessWorker(context, spec, prefetch))
        except BaseException:
            self.close()
            raise

    @property
    def pids(self) -> list[int]:
        return [w.pid for w in self.workers if w.pid is not None]

    def launch(self) -> None:
        """Start the workers not started yet (fork), each with the tasks the pass has already
        sent it (NOTE [fast start])."""
        try:
            for worker in self.workers:
                if isinstance(worker, ProcessWorker):
                    worker.launch()
        except BaseException:
            self.close()
            raise

    def use_warm(self, warm: Warm | None) -> None:
        """How this pass's batches leave their slots (NOTE [warm destination])."""
        for worker in self.workers:
            if isinstance(worker, ProcessWorker):
                worker.warm = warm

    def started(self) -> None:
        """After a pass's first result: every worker has opened its slots (NOTE [fast start])."""
        if self.starting:
            self.starting = False
            for worker in self.workers:
                if isinstance(worker, ProcessWorker):
                    worker.wait_ready()

    def drain(self, timeout: float | None) -> None:
        for worker in self.workers:
            worker.drain(timeout)

    def healthy(self) -> bool:
        return all(getattr(w, "healthy", lambda: True)() for w in self.workers)

    def close(self) -> None:
        workers = self.workers
        self.workers = []
        if os.getpid() != self.owner:
            # NOTE [finalizers after fork]: a forked child inherits the parent's garbage, and a
            # collection there (one runs in multiprocessing's after-fork hooks) finalizes a
            # loader it never ran. Its queues' locks may have been held at the fork by a feeder
            # thread that does not exist here: touching them hangs the child forever. The
            # workers are the parent's to stop; here they are only forgotten.
            return
        for worker in workers:
            worker.stop()


class LoaderPools:
    """The pools of one DataLoader: those its passes are using, and the one kept for the next
    pass (``persistent_workers``).

    NOTE [pools stay reachable]: the loader holds every pool a pass is using (here). A pass
    dropped inside a reference cycle is finalized by the cyclic GC together with what only it
    references, and a finalized multiprocessing Connection has closed its fd without knowing it
    (EBADF later). Held here, the pool is never in that set.
    """

    def __init__(self) -> None:
        self.in_use: list[WorkerPool] = []
        self.persistent: WorkerPool | None = None

    def reuse(self, timeout: float | None) -> WorkerPool | None:
        """The kept pool, drained, for a new pass; None (and the pool stopped) when there is
        none or it is no longer healthy."""
        pool = self.persistent
        self.persistent = None
        if pool is not None:
            try:
                if pool.healthy():
                    pool.drain(timeout)
                    self.in_use.append(pool)
                    return pool
            except Exception:
                pass
            pool.close()
        return None

    def add(self, pool: WorkerPool) -> WorkerPool:
        self.in_use.append(pool)
        return pool

    def release(self, pool: WorkerPool | None, keep: bool) -> None:
        """A pass is done with ``pool``: kept for the next pass (``keep``, none kept yet, and it
        has workers), else stopped."""
        self.in_use = [p for p in self.in_use if p is not pool]
        if pool is not None:
            if keep and self.persistent is None and pool.workers:
                self.persistent = pool
            else:
                pool.close()

    def close(self) -> None:
        pools = [*self.in_use, *([self.persistent] if self.persistent else [])]
        self.in_use = []
        self.persistent = None
        for pool in pools:  # older passes' workers too (each pass ends at its next())
            pool.close()
