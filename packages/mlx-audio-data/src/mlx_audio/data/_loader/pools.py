"""The pools of one DataLoader: the passes' and the one kept for the next pass."""

from __future__ import annotations

from .pool import WorkerPool


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
