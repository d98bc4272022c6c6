"""Messages between the main process and its workers, all in one place.

Main -> worker (task queue): :class:`MapTask`, :class:`NextTask`, :class:`ResetTask`, or
``None`` (stop). Worker -> main (result channel): :class:`Ready` first (its shared-memory slots
are open), then per task :class:`Batch`, :class:`End` (a stream is exhausted) or
:class:`Failed` (the task raised; the worker lives on), each possibly preceded by
:class:`Sizing` hints (a slot is about to grow; not a result). A task names the result slot its batch
is written to; the main process reads results of each worker in the order it sent the tasks.
"""

from __future__ import annotations

import pickle
import traceback
from dataclasses import dataclass
from typing import Any

from .adapters import DatasetAdapter
from .fetch import Fetcher, SampleError


@dataclass(frozen=True)
class MapTask:
    epoch: int
    indices: list[int]
    slot: int


@dataclass(frozen=True)
class NextTask:
    slot: int


@dataclass(frozen=True)
class ResetTask:
    """Start (or resume from ``state``) an iterable dataset's pass for ``epoch``."""

    epoch: int
    state: dict[str, Any] | None


@dataclass(frozen=True)
class Ready:
    pass


@dataclass(frozen=True)
class Sizing:
    """A worker is about to place an array of ``shape`` and ``dtype`` (a ``dtype.str``) in a slot
    it has not yet grown to that size (NOTE [warm destination], ``_loader/warm.py``)."""

    shape: tuple[int, ...]
    dtype: str


@dataclass(frozen=True)
class Batch:
    payload: Any  # the batch (threads) or its shared-memory skeleton and layout (processes)
    state: dict[str, Any] | None  # an iterable dataset's position after it


@dataclass(frozen=True)
class End:
    state: dict[str, Any] | None = None  # the stream's state after its end (torchdata's)


@dataclass(frozen=True)
class Failed:
    error: WorkerError


@dataclass
class WorkerSpec:
    """Everything a worker needs, sent once when it starts."""

    worker_id: int
    num_workers: int
    fetcher: Fetcher
    seed: int
    epoch: int
    worker_init_fn: Any
    rank: int = 0  # this process among the data-parallel processes (mlx.launch), for get_shard_info
    num_replicas: int = 1
    adapter: DatasetAdapter | None = None  # NOTE [dataset adapters]


class WorkerError:
    """A picklable record of an exception raised in a worker."""

    def __init__(self, worker_id: int, error: BaseException) -> None:
        index = None
        if isinstance(error, SampleError):
            index = error.index
            error = error.error
        self.worker_id = worker_id
        self.index = index
        self.type_name = type(error).__name__
        self.traceback = "".join(
            traceback.format_exception(type(error), error, error.__traceback__)
        )
        try:
            self.exc_type = pickle.loads(pickle.dumps(type(error)))
        except Exception:
            self.exc_type = None

    def reraise(self) -> None:
        where = f" while fetching index {self.index}" if self.index is not None else ""
        message = (
            f"Caught {self.type_name} in DataLoader worker {self.worker_id}{where}.\n"
            f"Original traceback (from the worker):\n{self.traceback}"
        )
        exc_type = self.exc_type if isinstance(self.exc_type, type) else RuntimeError
        if issubclass(exc_type, KeyError):  # KeyError prints repr(arg): keep newlines readable
            message = _PlainRepr(message)
        try:
            error = exc_type(message)
        except Exception:
            error = RuntimeError(message)
        raise error


class _PlainRepr(str):
    def __repr__(self) -> str:
        return str(self)
