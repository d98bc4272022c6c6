"""One pass over a DataLoader (main side): one class per mode, as torch's layout --
:class:`InProcessPass` (``num_workers=0``, here) and ``WorkerPass`` (``worker_passes``) -- and
per dataset kind, as the plan's fetcher says (``worker_passes.pass_class``): ``...MapPass`` for
a map-style dataset (index batches from the sampler), ``...StreamPass`` for an iterable one. A
pass sees only its frozen :class:`PassPlan`, never the loader; it reports back through the
plan's callbacks."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol, cast

import numpy.typing as npt

from .fetch import Fetcher, MapFetcher, SampleError, StreamFetcher, index_list, stream_parts
from .pools import WorkerPool
from .state import Delivered, jsonable, resumes_exactly


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


def reraise_in_process(error: SampleError) -> None:
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


def skip_replayed(stream_pass: Pass, exact: bool) -> None:
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
        self.delivered = Delivered(plan.resume)  # NOTE [out-of-order resume]
        self.batches = self.delivered.remaining(plan.index_batches)
        self.yielded = self.skip
        self.stream_state = plan.resume.get("stream")
        if self.stream_state and self.stream_state.get("dataset") is not None:
            plan.dataset.load_state_dict(
                self.stream_state["dataset"]
            )  # NOTE [map-style dataset state]
        else:
            self.stream_state = stream_parts(plan.dataset) or None  # where this pass starts

    def _next_batch(self) -> Any:
        position, indices = next(self.batches)
        self.delivered.mark(position)
        try:
            batch = self.fetcher.fetch(index_list(indices), self.epoch)
            self.stream_state = stream_parts(self.plan.dataset) or self.stream_state
            return batch
        except SampleError as error:
            self._sample_failed = True
            reraise_in_process(error)

    def state(self) -> dict[str, Any]:
        state = {**super().state(), **self.delivered.state()}
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
        skip_replayed(self, self.exact)

    def _next_batch(self) -> Any:
        try:
            batch = next(self._stream)
            self._record_stream()
            return batch
        except StopIteration:
            self._record_stream()  # the state after the end (next_epoch_start keeps it)
            raise
        except SampleError as error:
            self._sample_failed = True  # (a generator that raised simply ends at the next call)
            reraise_in_process(error)

    def _record_stream(self) -> None:
        self.stream_state = {
            "position": self._position[0],
            **stream_parts(self.plan.dataset, self._iterator),
        }

    def state(self) -> dict[str, Any]:
        state = super().state()
        state.update(cursor=0, exhausted=[], workers=[], stream=self.stream_state)
        return cast("dict[str, Any]", jsonable(state))
