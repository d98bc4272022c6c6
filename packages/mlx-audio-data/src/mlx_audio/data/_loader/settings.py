"""What a DataLoader's settings decide (main side): its arguments checked, the epoch's index
batches, where the collate runs, how worker processes start. Plain functions of the settings."""

from __future__ import annotations

import atexit
import multiprocessing
import os
import pickle
import sys
import warnings
import weakref
from collections.abc import Iterable, Sequence
from typing import Any, cast

import numpy as np

from ..dataset import IterableDataset
from ..sampler import BatchSampler, RandomSampler, SequentialSampler, batch_size_error
from .adapters import DatasetAdapter
from .fetch import Fetcher
from .pools import WorkerPool
from .protocol import WorkerSpec
from .ranks import launch_ranks


def check_int(name: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")


def is_iterable_dataset(dataset: Any) -> bool:
    """Ours or any framework's ``IterableDataset`` (torch's, Hugging Face's), or any object that
    can be iterated but not indexed."""
    if isinstance(dataset, IterableDataset):
        return True
    if any(cls.__name__ == "IterableDataset" for cls in type(dataset).__mro__):
        return True
    return hasattr(dataset, "__iter__") and not hasattr(dataset, "__getitem__")


def check_arguments(
    iterable: bool,
    batch_size: int | None,
    shuffle: Any,
    sampler: Any,
    batch_sampler: Any,
    num_workers: int,
    collate_fn: Any,
    drop_last: bool,
    timeout: Any,
    worker_init_fn: Any,
    multiprocessing_context: Any,
    generator: Any,
    prefetch_factor: int | None,
    persistent_workers: bool,
    seed: int | None,
    worker_type: str,
) -> int | None:
    """``ValueError`` naming the argument and what is valid; returns the effective batch_size
    (None with a batch_sampler)."""
    if (
        isinstance(num_workers, (int, np.integer))
        and not isinstance(num_workers, bool)
        and num_workers < 0
    ):
        raise ValueError(
            "num_workers option should be non-negative; use num_workers=0 to disable multiprocessing."
        )
    check_int("num_workers", num_workers, 0)
    if batch_size is not None:
        if (
            isinstance(batch_size, bool)
            or not isinstance(batch_size, (int, np.integer))
            or batch_size < 1
        ):
            raise batch_size_error(batch_size)
    if not isinstance(timeout, (int, float)) or isinstance(timeout, bool) or timeout < 0:
        raise ValueError(
            f"timeout option should be non-negative: a number of seconds (0 waits forever), got {timeout!r}"
        )
    if prefetch_factor is not None:
        if num_workers == 0:
            raise ValueError(
                "prefetch_factor option could only be specified in multiprocessing: let num_workers > 0 "
                "to enable multiprocessing, otherwise set prefetch_factor to None."
            )
        check_int("prefetch_factor", prefetch_factor, 1)
    if persistent_workers and num_workers == 0:
        raise ValueError("persistent_workers option needs num_workers > 0")
    if worker_type not in ("process", "thread"):
        raise ValueError(f"worker_type must be 'process' or 'thread', got {worker_type!r}")
    if seed is not None and generator is not None:
        raise ValueError(
            "pass seed or generator, not both (a generator draws the seed at first iteration)"
        )
    if seed is not None:
        check_int("seed", seed, 0)
    if generator is not None and not isinstance(generator, np.random.Generator):
        raise ValueError(
            f"generator must be a numpy.random.Generator, got {type(generator).__name__}"
        )
    for name, fn in (("collate_fn", collate_fn), ("worker_init_fn", worker_init_fn)):
        if fn is not None and not callable(fn):
            raise ValueError(f"{name} must be callable or None, got {fn!r}")
    check_context(multiprocessing_context, num_workers)
    if iterable:
        for name, value, given in (
            ("shuffle", shuffle, shuffle not in (None, False)),
            ("sampler", sampler, sampler is not None),
            ("batch_sampler", batch_sampler, batch_sampler is not None),
        ):
            if given:
                raise ValueError(
                    f"DataLoader with IterableDataset: expected unspecified {name} option, but got "
                    f"{name}={value!r} (an IterableDataset defines its own order: shuffle inside "
                    "its __iter__)"
                )
    if sampler is not None and shuffle:
        raise ValueError(
            "sampler option is mutually exclusive with shuffle (the sampler decides the order)"
        )
    if batch_sampler is not None:
        if batch_size != 1 or shuffle or sampler is not None or drop_last:
            raise ValueError(
                "batch_sampler option is mutually exclusive with batch_size, shuffle, sampler, "
                "and drop_last (leave those at their defaults)"
            )
        batch_size = None
    elif batch_size is None and drop_last:
        raise ValueError(
            "batch_size=None option disables auto-batching and is mutually exclusive with drop_last"
        )
    return batch_size


def default_samplers(
    dataset: Any,
    iterable: bool,
    shuffle: bool,
    sampler: Iterable[int] | None,
    batch_sampler: Iterable[Sequence[int]] | None,
    batch_size: int | None,
    drop_last: bool,
) -> tuple[Iterable[int] | None, Iterable[Sequence[int]] | None]:
    """``(sampler, batch_sampler)`` as torch makes them: none for an iterable dataset; else the
    given sampler or a Random/Sequential one, and the given batch_sampler or a BatchSampler
    over it (none without auto-batching)."""
    if iterable:
        return None, None
    if sampler is None:
        sampler = RandomSampler(dataset) if shuffle else SequentialSampler(dataset)
    if batch_sampler is None and batch_size is not None:
        batch_sampler = BatchSampler(sampler, batch_size, drop_last)
    return sampler, batch_sampler


def check_context(context: Any, num_workers: int) -> None:
    """torch's checks of ``multiprocessing_context``: a start method name or a context object,
    and only with worker processes."""
    if context is None:
        return
    if num_workers == 0:
        raise ValueError(
            "multiprocessing_context can only be used with multi-process loading "
            f"(num_workers > 0), but got num_workers={num_workers}"
        )
    methods = multiprocessing.get_all_start_methods()
    if isinstance(context, str):
        if context not in methods:
            raise ValueError(
                f"multiprocessing_context option should specify a valid start method in {methods!r}, "
                f"but got multiprocessing_context={context!r}"
            )
    elif not isinstance(context, multiprocessing.context.BaseContext):
        raise TypeError(
            "multiprocessing_context option should be a valid context object or a string "
            f"specifying the start method, but got multiprocessing_context={context!r}"
        )


def index_batches(sampler: Any, batch_sampler: Any, seed: int, epoch: int) -> Iterable[Any]:
    """The epoch's index batches (lists, or numpy arrays when the sampler can slice them)."""
    candidates: tuple[Any, ...] = (sampler, batch_sampler, getattr(batch_sampler, "sampler", None))
    for candidate in candidates:
        # NOTE [loader seed]: a seeded sampler left at seed=None (RandomSampler,
        # BucketBatchSampler, ...) takes the loader's seed, so one seed fixes every order.
        if getattr(candidate, "seed", 0) is None and getattr(candidate, "generator", None) is None:
            candidate.seed = seed
    source: Any = batch_sampler if batch_sampler is not None else sampler
    if hasattr(source, "set_epoch"):
        source.set_epoch(epoch)
    if batch_sampler is None:
        indices = source.indices().tolist() if hasattr(source, "indices") else source
        return ([i] for i in indices)
    if hasattr(batch_sampler, "index_batches") and (
        not isinstance(batch_sampler, BatchSampler) or hasattr(batch_sampler.sampler, "indices")
    ):
        return cast("Iterable[Any]", batch_sampler.index_batches())
    return cast("Iterable[Any]", batch_sampler)


def start_method(context: Any) -> str:
    """fork on Linux CPU; spawn elsewhere and when MLX runs on a CUDA GPU (forking after the
    GPU is initialised is unsafe); or what the user chose."""
    if context is None:
        return "fork" if sys.platform.startswith("linux") and not gpu_backend() else "spawn"
    return context if isinstance(context, str) else context.get_start_method()


def picklable(obj: Any) -> bool:
    try:
        pickle.dumps(obj)
        return True
    except Exception:
        return False


def mp_context(context: Any) -> Any:
    if context is not None and not isinstance(context, str):
        return context
    return multiprocessing.get_context(start_method(context))


def collate_in_workers(collate_fn: Any, num_workers: int, worker_type: str, context: Any) -> bool:
    """Whether the user's collate_fn can run in the workers: not when they receive pickled
    copies (spawn/forkserver processes) and it cannot be pickled; it then runs in the main
    process on the samples they send."""
    pickled = num_workers and worker_type == "process" and start_method(context) != "fork"
    return not (pickled and collate_fn is not None and not picklable(collate_fn))


def main_collate_advice(collate_fn: Any, context: Any) -> str:
    return (
        f"collate_fn {getattr(collate_fn, '__qualname__', collate_fn)!r} cannot be "
        f"pickled for '{start_method(context)}' workers, so it runs in the main process on the "
        "samples they send; define it at module level to collate in the workers"
    )


def start_workers(
    fetcher: Fetcher,
    seed: int,
    epoch: int,
    num_workers: int,
    worker_init_fn: Any,
    adapter: DatasetAdapter | None,
    prefetch_factor: int | None,
    worker_type: str,
    context: Any,
) -> WorkerPool:
    """New workers for a pass, each sent its :class:`WorkerSpec`; with spawn/forkserver, a
    pickling failure says what to define at module level."""
    try:
        rank, replicas = launch_ranks()
        specs = [
            WorkerSpec(
                wid, num_workers, fetcher, seed, epoch, worker_init_fn, rank, replicas, adapter
            )
            for wid in range(num_workers)
        ]
        return WorkerPool(specs, prefetch_factor or 2, worker_type, mp_context(context))
    except (pickle.PicklingError, AttributeError, TypeError) as error:
        if start_method(context) == "fork" or worker_type == "thread":
            raise
        # as torch: its warning, then the pickling error itself (same class), with our advice
        advice = (
            f"With the '{start_method(context)}' start method each worker receives a pickled copy "
            "of the dataset, cpu_transforms and worker_init_fn: define them at module level (no "
            "lambdas or local functions), or use multiprocessing_context='fork' (Linux) or "
            "worker_type='thread'."
        )
        warnings.warn(
            "Got pickle error when attempting to start a worker Process. This might be because "
            f"the worker Process arguments are not picklable. {advice}",
            stacklevel=6,
        )
        try:
            explained = type(error)(f"{error}. {advice}")
        except Exception:
            raise error from None
        raise explained from error


def gpu_backend() -> bool:
    """True when MLX runs on a GPU here."""
    try:
        import mlx.core as mx

        return bool(getattr(mx, "cuda", None) and mx.cuda.is_available())
    except Exception:
        return False


def check_worker_count(num_workers: int) -> None:
    """torch's warning when ``num_workers`` exceeds the CPUs this process may use."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS
        cpus = os.cpu_count() or 1
    if num_workers > cpus:
        warnings.warn(
            f"This DataLoader will create {num_workers} worker processes in total. Our suggested "
            f"max number of worker in current system is {cpus}, which is smaller than what this "
            "DataLoader is going to create. Please be aware that excessive worker creation might get "
            "DataLoader running slow or even freeze, lower the worker number to avoid potential "
            "slowness/freeze if necessary.",
            stacklevel=4,
        )


def sharding_advice(dataset: Any, num_workers: int) -> str:
    return (
        f"{type(dataset).__name__}.__iter__ did not call get_worker_info(): each of the "
        f"{num_workers} workers iterates the whole dataset, so every sample arrives "
        f"{num_workers} times. Shard the stream per worker, e.g. "
        "`info = get_worker_info(); it = itertools.islice(stream, info.id, None, info.num_workers)`"
    )


# Loaders still holding workers at interpreter exit close them first (atexit runs this before
# multiprocessing's own exit handler, registered earlier), so exit never waits on a worker.
_LIVE: weakref.WeakSet[Any] = weakref.WeakSet()


def close_at_exit(loader: Any) -> None:
    _LIVE.add(loader)


@atexit.register
def _close_live_loaders() -> None:
    for loader in list(_LIVE):
        try:
            loader.close()
        except Exception:
            pass


def check_device_settings(loader: Any) -> None:
    """NOTE [device-resident data]: an ``ArrayDataset`` whose arrays are ``mx.array`` s (or
    ``device=True``) lives in the accelerator's memory; the loader keeps the sampler's index
    batches exactly as for host data (shuffle, samplers, ``DistributedSampler``,
    ``BucketBatchSampler``, seeds: same batches, order and ``state_dict()``), and the gather is
    one ``mx.take`` per array inside MLX's graph (``DeviceFetcher``). Nothing is copied on the
    host per step, so there is nothing for worker processes to do -- and MLX arrays cannot cross
    into them: ``num_workers`` is ignored (said once, here), and ``cpu_transforms`` (numpy, per
    sample) cannot run; ``mlx_transforms`` run on the device batch as always."""
    name = type(loader.dataset).__name__
    if loader.cpu_transforms:
        raise ValueError(
            f"cpu_transforms run per sample on numpy arrays, but this {name}'s arrays are on the "
            "device (mx.array or device=True) and are batched there: use mlx_transforms (run on "
            "each batch on the device), or keep the data on the host (numpy arrays, device=False)"
        )
    if loader.num_workers > 0:
        warnings.warn(
            f"num_workers={loader.num_workers} is not used: this {name}'s arrays are on the "
            "device (mx.array or device=True), so each batch is one mx.take there, in the main "
            "process, with nothing for worker processes to do (and MLX arrays cannot be sent "
            "to them); pass num_workers=0 to silence this",
            UserWarning,
            stacklevel=3,  # the line that made the DataLoader
        )
