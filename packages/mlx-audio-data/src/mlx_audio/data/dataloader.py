"""The DataLoader: torch's arguments and semantics, numpy workers, MLX batches out."""

from __future__ import annotations

import warnings
import weakref
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, Generic, TypeVar

import numpy as np

from ._device import device_batches, device_resident
from ._loader.adapters import adapter_for
from ._loader.fetch import Fetcher, Transform, as_transform_list, compose, fetcher_class
from ._loader.passes import PassLike, PassPlan
from ._loader.pools import LoaderPools, WorkerPool
from ._loader.settings import (
    check_arguments,
    check_device_settings,
    check_int,
    check_worker_count,
    close_at_exit,
    collate_in_workers,
    default_samplers,
    index_batches,
    is_iterable_dataset,
    main_collate_advice,
    sharding_advice,
    start_workers,
)
from ._loader.state import STATE_KEYS, check_state, make_state, next_epoch_start
from ._loader.transfer import DevicePass, transfer_active
from ._loader.worker_passes import pass_class
from .collate import to_mlx

__all__ = ["DataLoader"]

T_co = TypeVar("T_co", covariant=True)


class DataLoader(Generic[T_co]):
    """Batches from a dataset, optionally produced by worker processes.

    Arguments follow ``torch.utils.data.DataLoader``; the additions are ``seed`` (epoch e's
    order is a function of (seed, e)), ``worker_type`` ("process" or "thread"),
    ``cpu_transforms`` (per-sample callables run in the workers on numpy; one that takes an
    ``rng`` keyword gets a numpy Generator seeded from (seed, epoch, index)) and
    ``mlx_transforms`` (run in the main process on each batch; their result is yielded).
    ``in_order=False`` (torch's): with workers, a batch is yielded as soon as it is ready, so
    one slow sample does not hold back the rest (the order is not kept; a state still records
    exactly which batches were handed out).
    ``state_dict()``/``load_state_dict()`` are built in (torchdata's ``StatefulDataLoader``, also
    importable under that name; its ``snapshot_every_n_steps`` is accepted: every state is exact).

    Batches are collated to numpy in the workers (``collate_fn=None``: :func:`default_collate`)
    and yielded as ``mx.array`` trees: the numpy arrays and scalars of the output become
    ``mx.array`` (Python numbers, strings and other objects pass through, as in torch), then go to
    ``mlx_transforms`` if given -- except that a user collate_fn's output reaches
    ``mlx_transforms`` unconverted (the tutorial's pattern). A collate_fn with a
    ``collate_into(samples, alloc)`` method (like :class:`PadCollate`) writes its arrays
    straight into the workers' shared memory.

    A device-resident :class:`ArrayDataset` (built from ``mx.array`` s or with ``device=True``)
    is batched on the accelerator, in the main process: see NOTE [device-resident data].
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
        snapshot_every_n_steps: int | None = 1,
        pin_memory_device: str = "",
    ) -> None:
        iterable = is_iterable_dataset(dataset)
        if snapshot_every_n_steps is not None:  # torchdata's StatefulDataLoader argument
            check_int("snapshot_every_n_steps", snapshot_every_n_steps, 0)
        batch_size = check_arguments(
            iterable,
            batch_size,
            shuffle,
            sampler,
            batch_sampler,
            num_workers,
            collate_fn,
            drop_last,
            timeout,
            worker_init_fn,
            multiprocessing_context,
            generator,
            prefetch_factor,
            persistent_workers,
            seed,
            worker_type,
        )
        shuffle = bool(shuffle)

        self.dataset = dataset
        self._adapter = adapter_for(dataset)  # NOTE [dataset adapters]
        self._fetched = dataset if self._adapter is None else self._adapter.prepare(dataset)
        self.batch_size = batch_size
        self.drop_last = drop_last
        self.num_workers = int(num_workers)
        self.collate_fn = collate_fn
        self.pin_memory = pin_memory  # NOTE [pin_memory on CUDA] (_loader/transfer.py)
        self.pin_memory_device = pin_memory_device
        self.timeout = timeout
        self.worker_init_fn = worker_init_fn
        self.multiprocessing_context = multiprocessing_context
        self.generator = generator
        self.prefetch_factor = (
            prefetch_factor if prefetch_factor is not None else (2 if num_workers else None)
        )
        self.persistent_workers = persistent_workers
        self.seed = seed
        self._given_seed = seed
        self.worker_type = worker_type
        self.cpu_transforms = as_transform_list(cpu_transforms, "cpu_transforms")
        self.mlx_transforms = as_transform_list(mlx_transforms, "mlx_transforms")
        self._mlx_transform = compose(self.mlx_transforms)
        self._iterable = iterable
        self.sampler, self.batch_sampler = default_samplers(
            dataset, iterable, shuffle, sampler, batch_sampler, batch_size, drop_last
        )
        self._next_epoch = 0
        self._resume: dict[str, Any] | None = None
        self._pass_ref: Callable[[], PassLike | None] = lambda: None
        self._last_state: tuple[int, dict[str, Any]] | None = None  # (its pass's epoch, position)
        self._pools = LoaderPools()  # see NOTE [pools stay reachable]
        self._collate_in_workers = True
        self._warned_main_collate = False
        self._sharding_advised = False
        self._reported_length: int | None = None
        self.in_order = bool(in_order)
        self._device = device_resident(self._fetched) is not None
        if self._device:
            check_device_settings(self)  # no workers: torch's worker-count warning is moot
        else:
            check_worker_count(self.num_workers)
        self._initialized = True
        close_at_exit(self)

    # NOTE [settings are fixed]: as in torch, what decides the batches cannot change once the
    # loader exists (a pass or a saved state would silently disagree with it).
    _FIXED = (
        "batch_size",
        "batch_sampler",
        "sampler",
        "drop_last",
        "dataset",
        "persistent_workers",
    )
    _initialized = False

    def __setattr__(self, name: str, value: Any) -> None:
        if self._initialized and name in self._FIXED:
            raise ValueError(
                f"{name} attribute should not be set after {type(self).__name__} is initialized"
            )
        super().__setattr__(name, value)

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
        fetcher = self._fetcher()
        batches = None
        if not self._iterable:
            batches = index_batches(self.sampler, self.batch_sampler, self._resolved_seed(), epoch)
            if self._device:  # NOTE [device index batches] (_device.py)
                batches = device_batches(self._fetched, batches)
        plan = PassPlan(
            epoch=epoch,
            resume=resume or {},
            fetcher=fetcher,
            dataset=self.dataset,
            index_batches=batches,
            num_workers=self._workers,
            timeout=self.timeout if self.timeout > 0 else None,
            in_order=self.in_order,
            to_output=self._to_output,
            collate_in_main=self._collate_in_main,
            view_converter=self._view_converter(),
            acquire_pool=lambda: self._pool(fetcher, epoch),
            finished=self._pass_closed,
            advise_sharding=self._advise_sharding,
            reported_length=self._reported_length,
        )
        pinned = transfer_active(self.pin_memory, self.pin_memory_device, self._workers)
        new_pass: PassLike = (
            DevicePass(plan, self._convert, self._mlx_transform)
            if pinned
            else pass_class(plan)(plan)
        )
        self._pass_ref = weakref.ref(new_pass)
        return new_pass

    def __len__(self) -> int:
        if self._iterable:
            n = len(self.dataset)  # TypeError for unsized streams, as in torch
            self._reported_length = n  # see NOTE [IterableDataset and __len__]
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
        check_int("epoch", epoch, 0)
        self._next_epoch = int(epoch)
        self._resume = None

    @property
    def worker_pids(self) -> list[int]:
        """Process ids of the live worker processes (empty in-process or with threads)."""
        current = self._pass_ref()
        pool = current.pool if current is not None and current.pool else self._pools.persistent
        return pool.pids if pool is not None else []

    def state_dict(self) -> dict[str, Any]:
        """Where iteration stands, as a JSON-serializable dict (Grain/torchdata style).

        Loading it into an equal loader makes the next pass yield exactly the batches this one
        had not yet yielded, and the same later epochs as an uninterrupted run.
        """
        current = self._pass_ref()
        if self._resume is not None:  # loaded and not yet iterated: report what was loaded
            position = {k: v for k, v in self._resume.items() if k not in STATE_KEYS}
            position.setdefault("epoch", self._next_epoch)
        elif current is not None and not current.finished:
            position = {"epoch": current.epoch, **current.state()}
        elif self._last_state is not None and self._last_state[0] + 1 == self._next_epoch:
            position = self._last_state[1]  # where the last pass stopped, or the next epoch
        else:
            position = {"epoch": self._next_epoch, "batches_yielded": 0}
        return make_state(self, self._resolved_seed(), position)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Resume from :meth:`state_dict`'s output at the next ``iter()``; a state from a loader
        with other batching, dataset length, sampler or seed is refused (``ValueError``)."""
        check_state(state, self, self._given_seed)
        self.seed = int(state["seed"])
        self.generator = None
        self._next_epoch = int(state["epoch"])
        self._resume = dict(state)  # also at an epoch's start: the state says where it was

    def close(self) -> None:
        """Stop workers now (they also stop when the loader is garbage-collected)."""
        current = self._pass_ref()
        if current is not None:
            current.close()
        self._pools.close()

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

    @property
    def _workers(self) -> int:
        """The worker processes a pass uses: none for device-resident data."""
        return 0 if self._device else self.num_workers

    def _fetcher(self) -> Fetcher:
        self._collate_in_workers = collate_in_workers(
            self.collate_fn, self._workers, self.worker_type, self.multiprocessing_context
        )
        if not self._collate_in_workers and not self._warned_main_collate:
            self._warned_main_collate = True
            warnings.warn(
                main_collate_advice(self.collate_fn, self.multiprocessing_context), stacklevel=4
            )
        return fetcher_class(self._iterable, self._device)(
            self._fetched,
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
        """The persistent workers, or new ones (see NOTE [pools stay reachable])."""
        pool = self._pools.reuse(self.timeout or None)
        if pool is not None:
            return pool
        return self._pools.add(
            start_workers(
                fetcher,
                self._resolved_seed(),
                epoch,
                self.num_workers,
                self.worker_init_fn,
                self._adapter,
                self.prefetch_factor,
                self.worker_type,
                self.multiprocessing_context,
            )
        )

    def _pass_closed(self, closed: PassLike, failed: bool) -> None:
        """Keep (persistent_workers) or stop the pass's workers; remember where it stopped."""
        pool = closed.pool
        closed.pool = None
        keep = self.persistent_workers and not failed
        self._pools.release(pool, keep=keep)
        position = (
            {"epoch": closed.epoch + 1, **next_epoch_start(closed.state(), self._iterable, keep)}
            if closed.finished
            else {"epoch": closed.epoch, **closed.state()}
        )
        self._last_state = (closed.epoch, position)

    def _advise_sharding(self, worker_state: dict[str, Any] | None) -> None:
        """NOTE [sharding advice]: an IterableDataset whose ``__iter__`` never asks
        ``get_worker_info()`` yields its whole stream in every worker (as in torch): each
        sample arrives ``num_workers`` times. Say so once, with the fix."""
        if (
            self._sharding_advised
            or self.num_workers < 2
            or not worker_state
            or worker_state.get("sharded", True)
        ):
            return
        self._sharding_advised = True
        warnings.warn(sharding_advice(self.dataset, self.num_workers), stacklevel=4)

    def _converts(self) -> bool:
        """NOTE [output conversion]: batches leave as ``mx.array`` trees, except that a plain
        user collate_fn's output reaches ``mlx_transforms`` as it is (numpy), as in the
        tutorial's ``collate_fn=lambda x: x`` + ``mlx_transforms`` pattern. Collates with a
        ``collate_into`` method (PadCollate) are converted like the default's."""
        if self._device and self.collate_fn is None:
            return False  # the gathered arrays are mx.arrays already
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

    def _convert(self, batch: Any) -> Any:
        return to_mlx(batch) if self._converts() else batch

    def _to_output(self, batch: Any) -> Any:
        batch = self._convert(batch)
        return self._mlx_transform(batch) if self._mlx_transform is not None else batch


StatefulDataLoader = DataLoader  # torchdata's name: state_dict()/load_state_dict() are built in
