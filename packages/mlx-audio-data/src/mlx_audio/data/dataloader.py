"""The DataLoader: torch's arguments and semantics, numpy workers, MLX batches out."""

from __future__ import annotations

import multiprocessing
import os
import pickle
import sys
import warnings
import weakref
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, Generic, TypeVar

import numpy as np

from ._fetch import Fetcher, Transform, as_transform_list, compose
from ._iterator import Pass, WorkerPool
from .collate import to_mlx
from .dataset import IterableDataset
from .sampler import BatchSampler, RandomSampler, SequentialSampler

__all__ = ["DataLoader"]

_STATE_VERSION = 1
T_co = TypeVar("T_co", covariant=True)


def _picklable(obj: Any) -> bool:
    try:
        pickle.dumps(obj)
        return True
    except Exception:
        return False


def _check_int(name: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")


class DataLoader(Generic[T_co]):
    """Batches from a dataset, optionally produced by worker processes.

    Arguments follow ``torch.utils.data.DataLoader``; the additions are ``seed`` (epoch e's
    order is a function of (seed, e)), ``worker_type`` ("process" or "thread"),
    ``cpu_transforms`` (per-sample callables run in the workers on numpy; one that takes an
    ``rng`` keyword gets a numpy Generator seeded from (seed, epoch, index)) and
    ``mlx_transforms`` (run in the main process on each batch; their result is yielded).
    ``in_order=False`` (torch's): with workers, a batch is yielded as soon as it is ready, so
    one slow sample does not hold back the rest (order, and so exact resume, not kept).

    Batches are collated to numpy in the workers (``collate_fn=None``: :func:`default_collate`)
    and yielded as ``mx.array`` trees: the numpy arrays and Python numbers of the output become
    ``mx.array`` (strings and other objects pass through, ``mx.array`` leaves too), then go to
    ``mlx_transforms`` if given -- except that a user collate_fn's output reaches
    ``mlx_transforms`` unconverted (the tutorial's pattern). A collate_fn with a
    ``collate_into(samples, alloc)`` method (like :class:`PadCollate`) writes its arrays
    straight into the workers' shared memory.
    """

    def __init__(
        self,
        dataset: Any,
        batch_size: int | None = 1,
        shuffle: bool | None = False,
        sampler: Iterable[int] | None = None,
        batch_sampler: Iterable[Sequence[int]] | None = None,
        num_workers: int = 0,
        collate_fn: Callable[[list[Any]], Any] | None = None,
        pin_memory: bool = False,
        drop_last: bool = False,
        timeout: float = 0,
        worker_init_fn: Callable[[int], None] | None = None,
        multiprocessing_context: str | Any | None = None,
        generator: np.random.Generator | None = None,
        *,
        prefetch_factor: int | None = None,
        persistent_workers: bool = False,
        seed: int | None = None,
        worker_type: str = "process",
        cpu_transforms: Transform | Sequence[Transform] | None = None,
        mlx_transforms: Callable[[Any], Any] | Sequence[Callable[[Any], Any]] | None = None,
        in_order: bool = True,
    ) -> None:
        _check_int("num_workers", num_workers, 0)
        if batch_size is not None:
            _check_int("batch_size", batch_size, 1)
        if not isinstance(timeout, (int, float)) or isinstance(timeout, bool) or timeout < 0:
            raise ValueError(
                f"timeout must be a number >= 0 (seconds; 0 waits forever), got {timeout!r}"
            )
        if prefetch_factor is not None:
            if num_workers == 0:
                raise ValueError(
                    "prefetch_factor only applies with num_workers > 0; leave it as None for num_workers=0"
                )
            _check_int("prefetch_factor", prefetch_factor, 1)
        if persistent_workers and num_workers == 0:
            raise ValueError("persistent_workers=True needs num_workers > 0")
        if worker_type not in ("process", "thread"):
            raise ValueError(f"worker_type must be 'process' or 'thread', got {worker_type!r}")
        if seed is not None and generator is not None:
            raise ValueError(
                "pass seed or generator, not both (a generator draws the seed at first iteration)"
            )
        if seed is not None:
            _check_int("seed", seed, 0)
        if generator is not None and not isinstance(generator, np.random.Generator):
            raise ValueError(
                f"generator must be a numpy.random.Generator, got {type(generator).__name__}"
            )
        for name, fn in (("collate_fn", collate_fn), ("worker_init_fn", worker_init_fn)):
            if fn is not None and not callable(fn):
                raise ValueError(f"{name} must be callable or None, got {fn!r}")
        if (
            isinstance(multiprocessing_context, str)
            and multiprocessing_context not in multiprocessing.get_all_start_methods()
        ):
            raise ValueError(
                f"multiprocessing_context {multiprocessing_context!r} is not available here; "
                f"valid: {multiprocessing.get_all_start_methods()}"
            )
        shuffle = bool(shuffle)
        iterable = isinstance(dataset, IterableDataset)
        if iterable and (shuffle or sampler is not None or batch_sampler is not None):
            raise ValueError(
                "an IterableDataset defines its own order: shuffle, sampler and batch_sampler are "
                "not supported (shuffle inside the dataset's __iter__)"
            )
        if sampler is not None and shuffle:
            raise ValueError(
                "sampler and shuffle=True are mutually exclusive (the sampler decides the order)"
            )
        if batch_sampler is not None:
            if batch_size != 1 or shuffle or sampler is not None or drop_last:
                raise ValueError(
                    "batch_sampler is mutually exclusive with batch_size, shuffle, sampler and "
                    "drop_last (leave those at their defaults)"
                )
            batch_size = None
        elif batch_size is None and drop_last:
            raise ValueError("batch_size=None (no batching) is incompatible with drop_last=True")
        if pin_memory:
            warnings.warn(
                "pin_memory has no effect with MLX (unified memory); ignoring it", stacklevel=2
            )

        self.dataset = dataset
        self.batch_size = batch_size
        self.drop_last = drop_last
        self.num_workers = int(num_workers)
        self.collate_fn = collate_fn
        self.pin_memory = False
        self.timeout = timeout
        self.worker_init_fn = worker_init_fn
        self.multiprocessing_context = multiprocessing_context
        self.generator = generator
        self.prefetch_factor = (
            prefetch_factor if prefetch_factor is not None else (2 if num_workers else None)
        )
        self.persistent_workers = persistent_workers
        self.seed = seed
        self.worker_type = worker_type
        self.cpu_transforms = as_transform_list(cpu_transforms, "cpu_transforms")
        self.mlx_transforms = as_transform_list(mlx_transforms, "mlx_transforms")
        self._mlx_transform = compose(self.mlx_transforms)
        self._iterable = iterable
        if iterable:
            self.sampler = None
            self.batch_sampler = None
        else:
            if sampler is None:
                sampler = RandomSampler(dataset) if shuffle else SequentialSampler(dataset)
            self.sampler = sampler
            if batch_sampler is None and batch_size is not None:
                batch_sampler = BatchSampler(sampler, batch_size, drop_last)
            self.batch_sampler = batch_sampler
        self._next_epoch = 0
        self._resume: dict | None = None
        self._pass_ref: Callable[[], Pass | None] = lambda: None
        self._last_state: dict | None = None
        self._persistent_pool: WorkerPool | None = None
        # NOTE [pools stay reachable]: the loader holds every pool a pass is using. A pass
        # dropped inside a reference cycle is finalized by the cyclic GC together with what
        # only it references, and a finalized multiprocessing Connection has closed its fd
        # without knowing it (EBADF later). Held here, the pool is never in that set.
        self._pools_in_use: list[WorkerPool] = []
        self._collate_in_workers = True
        self._warned_main_collate = False
        self._sharding_advised = False
        self.in_order = bool(in_order)
        self._check_worker_count()
        self._initialized = True

    # NOTE [settings are fixed]: as in torch, what decides the batches cannot change once the
    # loader exists (a pass or a saved state would silently disagree with it).
    _FIXED = ("batch_size", "batch_sampler", "sampler", "drop_last", "dataset", "persistent_workers")
    _initialized = False

    def __setattr__(self, name: str, value: Any) -> None:
        if self._initialized and name in self._FIXED:
            raise ValueError(f"{name} attribute should not be set after {type(self).__name__} is initialized")
        super().__setattr__(name, value)

    def _check_worker_count(self) -> None:
        """torch's warning when ``num_workers`` exceeds the CPUs this process may use."""
        try:
            cpus = len(os.sched_getaffinity(0))
        except AttributeError:  # macOS
            cpus = os.cpu_count() or 1
        if self.num_workers > cpus:
            warnings.warn(
                f"This DataLoader will create {self.num_workers} worker processes in total. Our suggested "
                f"max number of worker in current system is {cpus}, which is smaller than what this "
                "DataLoader is going to create. Please be aware that excessive worker creation might get "
                "DataLoader running slow or even freeze, lower the worker number to avoid potential "
                "slowness/freeze if necessary.",
                stacklevel=3,
            )

    # -- public API --------------------------------------------------------------------------
    def __iter__(self) -> Iterator[Any]:
        # NOTE [one pass per iter()]: as in torch, every iter() is a new pass (epoch). Without
        # persistent workers passes are independent (each has its own workers), so nested
        # loops or one loader for train and val lose nothing. With persistent_workers the new
        # pass takes the workers over and an unfinished older pass ends (torch resets its one
        # iterator the same way); its in-flight batches are drained, never handed out late.
        current = self._pass_ref()
        if current is not None and self.persistent_workers and not current.finished:
            current.close()
        epoch = self._next_epoch
        resume = self._resume
        self._resume = None
        self._next_epoch = epoch + 1
        new_pass = Pass(self, epoch, resume)
        self._pass_ref = weakref.ref(new_pass)
        return new_pass

    def __len__(self) -> int:
        if self._iterable:
            n = len(self.dataset)  # TypeError for unsized streams, as in torch
            if self.batch_size is None:
                return n
            return n // self.batch_size if self.drop_last else -(-n // self.batch_size)
        if self.batch_sampler is not None:
            return len(self.batch_sampler)  # type: ignore[arg-type]
        return len(self.sampler)  # type: ignore[arg-type]

    @property
    def epoch(self) -> int:
        """The epoch the next pass will run (the current one while iterating)."""
        current = self._pass_ref()
        return current.epoch if current is not None and not current.finished else self._next_epoch

    def set_epoch(self, epoch: int) -> None:
        """Make the next pass epoch ``epoch`` (from its start; cancels a pending resume)."""
        _check_int("epoch", epoch, 0)
        self._next_epoch = int(epoch)
        self._resume = None

    @property
    def worker_pids(self) -> list[int]:
        """Process ids of the live worker processes (empty in-process or with threads)."""
        current = self._pass_ref()
        pool = current.pool if current is not None and current.pool else self._persistent_pool
        return pool.pids if pool is not None else []

    def state_dict(self) -> dict[str, Any]:
        """Where iteration stands, as a JSON-serializable dict (Grain/torchdata style).

        Loading it into an equal loader makes the next pass yield exactly the batches this one
        had not yet yielded, and the same later epochs as an uninterrupted run.
        """
        current = self._pass_ref()
        if self._resume is not None:  # loaded and not yet iterated: report what was loaded
            position = {k: v for k, v in self._resume.items() if k not in ("version", "seed", "num_workers")}
            position.setdefault("epoch", self._next_epoch)
        elif current is not None and not current.finished:
            position = {"epoch": current.epoch, **current.state()}
        elif self._last_state is not None and self._last_state["epoch"] + 1 == self._next_epoch:
            position = self._last_state
        else:
            position = {"epoch": self._next_epoch, "batches_yielded": 0}
        return {
            "version": _STATE_VERSION,
            "seed": self._resolved_seed(),
            "num_workers": self.num_workers,
            **position,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Resume from :meth:`state_dict`'s output at the next ``iter()``."""
        if not isinstance(state, dict) or state.get("version") != _STATE_VERSION:
            raise ValueError(f"not a DataLoader state (version {_STATE_VERSION}): {state!r:.200}")
        for key in ("epoch", "batches_yielded", "seed"):
            if key not in state:
                raise ValueError(f"DataLoader state is missing {key!r}: {state!r:.200}")
        self.seed = int(state["seed"])
        self.generator = None
        self._next_epoch = int(state["epoch"])
        resume = dict(state)
        if (
            self._iterable
            and state.get("num_workers") != self.num_workers
            and state["batches_yielded"]
        ):
            warnings.warn(
                f"the state was saved with num_workers={state.get('num_workers')} and this loader "
                f"has {self.num_workers}: an IterableDataset's stream is split per worker, so "
                "resuming replays it instead",
                stacklevel=2,
            )
            resume = {"batches_yielded": state["batches_yielded"]}
        self._resume = resume if state["batches_yielded"] else None

    def close(self) -> None:
        """Stop workers now (they also stop when the loader is garbage-collected)."""
        current = self._pass_ref()
        if current is not None:
            current.close()
        pools = [*self._pools_in_use, *([self._persistent_pool] if self._persistent_pool else [])]
        self._pools_in_use = []
        self._persistent_pool = None
        for pool in pools:  # older passes' workers too (each pass ends at its next())
            pool.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass

    # -- used by Pass ------------------------------------------------------------------------
    def _resolved_seed(self) -> int:
        if self.seed is None:
            if self.generator is not None:
                self.seed = int(self.generator.integers(0, 2**31 - 1))
            else:
                self.seed = int(np.random.randint(0, 2**31 - 1))
        return self.seed

    def _index_batches(self, epoch: int) -> Iterable[Any]:
        seed = self._resolved_seed()
        samplers: tuple[Any, ...] = (self.sampler, self.batch_sampler, getattr(self.batch_sampler, "sampler", None))
        for sampler in samplers:
            # NOTE [loader seed]: a seeded sampler left at seed=None (RandomSampler,
            # BucketBatchSampler, ...) takes the loader's seed, so one seed fixes every order.
            if getattr(sampler, "seed", 0) is None and getattr(sampler, "generator", None) is None:
                sampler.seed = seed
        source: Any = self.batch_sampler if self.batch_sampler is not None else self.sampler
        if hasattr(source, "set_epoch"):
            source.set_epoch(epoch)
        if self.batch_sampler is None:
            indices = source.indices().tolist() if hasattr(source, "indices") else source
            return ([i] for i in indices)
        if hasattr(self.batch_sampler, "index_batches") and (
            not isinstance(self.batch_sampler, BatchSampler) or hasattr(self.batch_sampler.sampler, "indices")
        ):
            return self.batch_sampler.index_batches()
        return self.batch_sampler

    def _start_method(self) -> str:
        ctx = self.multiprocessing_context
        if ctx is None:
            return "fork" if sys.platform.startswith("linux") and not _gpu_backend() else "spawn"
        return ctx if isinstance(ctx, str) else ctx.get_start_method()

    def _mp_context(self) -> Any:
        ctx = self.multiprocessing_context
        return (
            ctx
            if ctx is not None and not isinstance(ctx, str)
            else multiprocessing.get_context(self._start_method())
        )

    def _fetcher(self) -> Fetcher:
        pickled = (
            self.num_workers and self.worker_type == "process" and self._start_method() != "fork"
        )
        self._collate_in_workers = not (
            pickled and self.collate_fn is not None and not _picklable(self.collate_fn)
        )
        if not self._collate_in_workers and not self._warned_main_collate:
            self._warned_main_collate = True
            warnings.warn(
                f"collate_fn {getattr(self.collate_fn, '__qualname__', self.collate_fn)!r} cannot be "
                f"pickled for '{self._start_method()}' workers, so it runs in the main process on the "
                "samples they send; define it at module level to collate in the workers",
                stacklevel=4,
            )
        return Fetcher(
            self.dataset,
            self.batch_size,
            self.drop_last,
            self.collate_fn if self._collate_in_workers else None,
            self.cpu_transforms,
            self._resolved_seed(),
            collate=self._collate_in_workers,
            batched=self._batched,
        )

    @property
    def _batched(self) -> bool:
        return self.batch_sampler is not None or (self._iterable and self.batch_size is not None)

    def _pool(self, fetcher: Fetcher, epoch: int) -> WorkerPool:
        pool = self._persistent_pool
        self._persistent_pool = None
        if pool is not None:
            try:
                if pool.healthy():
                    pool.drain(self.timeout or None)
                    self._pools_in_use.append(pool)
                    return pool
            except Exception:
                pass
            pool.close()
        try:
            pool = WorkerPool(self, fetcher, epoch)
            self._pools_in_use.append(pool)
            return pool
        except (pickle.PicklingError, AttributeError, TypeError) as error:
            if self._start_method() == "fork" or self.worker_type == "thread":
                raise
            raise TypeError(
                f"with the '{self._start_method()}' start method each worker receives a pickled copy "
                f"of the dataset, cpu_transforms and worker_init_fn, and pickling failed: {error}. "
                "Define them at module level (no lambdas or local functions), or use "
                "multiprocessing_context='fork' (Linux) or worker_type='thread'."
            ) from error

    def _pass_closed(self, closed: Pass, failed: bool) -> None:
        """Keep (persistent_workers) or stop the pass's workers; remember where it stopped."""
        pool = closed.pool
        closed.pool = None
        self._pools_in_use = [p for p in self._pools_in_use if p is not pool]
        if pool is not None:
            if (
                self.persistent_workers
                and not failed
                and self._persistent_pool is None
                and pool.workers
            ):
                self._persistent_pool = pool
            else:
                pool.close()
        self._last_state = None if closed.finished else {"epoch": closed.epoch, **closed.state()}

    def _advise_sharding(self, worker_state: dict | None) -> None:
        """NOTE [sharding advice]: an IterableDataset whose ``__iter__`` never asks
        ``get_worker_info()`` yields its whole stream in every worker (as in torch): each
        sample arrives ``num_workers`` times. Say so once, with the fix."""
        if self._sharding_advised or self.num_workers < 2 or not worker_state or worker_state.get("sharded", True):
            return
        self._sharding_advised = True
        warnings.warn(
            f"{type(self.dataset).__name__}.__iter__ did not call get_worker_info(): each of the "
            f"{self.num_workers} workers iterates the whole dataset, so every sample arrives "
            f"{self.num_workers} times. Shard the stream per worker, e.g. "
            "`info = get_worker_info(); it = itertools.islice(stream, info.id, None, info.num_workers)`",
            stacklevel=4,
        )

    def _converts(self) -> bool:
        """NOTE [output conversion]: batches leave as ``mx.array`` trees, except that a plain
        user collate_fn's output reaches ``mlx_transforms`` as it is (numpy), as in the
        tutorial's ``collate_fn=lambda x: x`` + ``mlx_transforms`` pattern. Collates with a
        ``collate_into`` method (PadCollate) are converted like the default's."""
        plain = self.collate_fn is not None and not hasattr(self.collate_fn, "collate_into")
        return not plain or self._mlx_transform is None

    def _view_converter(self) -> Callable[[np.ndarray], Any]:
        if self._converts():
            import mlx.core as mx

            return mx.array  # copies out of the shared slot
        return np.array

    def _collate_in_main(self, batch: Any) -> Any:
        if self._collate_in_workers:
            return batch
        assert (
            self.collate_fn is not None
        )  # only a user collate_fn is ever moved to the main process
        return self.collate_fn(batch if self._batched else batch[0])

    def _to_output(self, batch: Any) -> Any:
        if self._converts():
            batch = to_mlx(batch)
        return self._mlx_transform(batch) if self._mlx_transform is not None else batch


def _gpu_backend() -> bool:
    """True when MLX runs on a GPU here (forking after GPU init is unsafe)."""
    try:
        import mlx.core as mx

        return bool(getattr(mx, "cuda", None) and mx.cuda.is_available())
    except Exception:
        return False
