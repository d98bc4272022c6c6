"""Data-parallel training on ``mx.distributed`` (ring over TCP, NCCL, MPI), launched by ``mlx.launch``.

The Trainer uses this module when more than one process takes part (docs/api/distributed.md):
the same initial weights everywhere (broadcast from rank 0), each rank its own shard of the data,
gradients averaged inside the compiled step, every logged value reduced across ranks, and rank 0
alone writing checkpoints and logs and drawing progress.

NOTE [same collectives on every rank]: a collective (``all_sum``, ``all_gather``, ...) returns only
when every rank has called it, so every rank must call the same ones in the same order, or the job
hangs. The Trainer therefore calls the functions below at points all ranks reach together (fit
start, each step inside the compiled graph, epoch and validation ends, each checkpoint), and every
decision that ends a loop (``should_stop``, the last batch of an unsized loader, batch counts) is
agreed across ranks before it is acted on.
"""

from __future__ import annotations

import contextlib
import functools
import linecache
import os
import threading
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

import mlx.core as mx
import numpy as np
from mlx.utils import tree_map

if TYPE_CHECKING:
    from .trainer import Trainer


F = TypeVar("F", bound=Callable[..., Any])


class Wait:
    """NOTE [collective waits]: a collective blocks in MLX's C++ code until every rank has
    called it (the GIL released, no Python signal handler running), so a stopped or stuck peer
    would hang this rank forever. Every place the main thread may wait for the other ranks -- the
    functions below and each training batch (its step's collectives are read by the host there)
    -- runs inside :func:`waiting`, which records what and since when (``current``, one
    attribute, so another thread reads it whole); the Trainer's watchdog thread
    (``_watchdog.py``) ends a wait that outlasts ``collective_timeout``, or a SIGTERM/Ctrl-C."""

    current: tuple[str, float] | None = None  # (what, since) of the outermost wait
    longest = 0.0  # seconds, the longest wait that ended (the watchdog's grace after a signal)
    depth = 0


wait = Wait()


@contextlib.contextmanager
def waiting(what: str) -> Iterator[None]:
    """Mark a wait for the other ranks (NOTE [collective waits]); nests, the outermost counts."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    if wait.depth == 0:
        wait.current = (what, time.monotonic())
    wait.depth += 1
    try:
        yield
    finally:
        wait.depth -= 1
        if wait.depth == 0 and wait.current is not None:
            wait.longest = max(wait.longest, time.monotonic() - wait.current[1])
            wait.current = None


def group() -> mx.distributed.Group:
    """The world group (size 1 when the process was not started by ``mlx.launch``)."""
    return mx.distributed.init()


def world_size() -> int:
    return group().size() if mx.distributed.is_available() else 1


def global_rank() -> int:
    return group().rank() if mx.distributed.is_available() else 0


def rank_zero_only(fn: F) -> F:
    """Run ``fn`` on rank 0 only (elsewhere it returns None), as Lightning's decorator."""

    @functools.wraps(fn)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if global_rank() == 0:
            return fn(*args, **kwargs)
        return None

    return wrapped  # type: ignore[return-value]


# -- host-side agreement (each is one small collective) ------------------------------------------
def broadcast(tree: Any) -> Any:
    """``tree`` with every array replaced by rank 0's (a sum where the other ranks add zeros)."""
    if world_size() == 1:
        return tree
    first = global_rank() == 0
    out = tree_map(
        lambda x: (
            mx.distributed.all_sum(x if first else mx.zeros_like(x))
            if isinstance(x, mx.array)
            else x
        ),
        tree,
    )
    with waiting("a broadcast from rank 0"):
        mx.eval(out)
    return out


def broadcast_int(value: int) -> int:
    """Rank 0's ``value`` (an int in ``[0, 2**31)``, exact in int32) on every rank."""
    if world_size() == 1:
        return value
    return int(broadcast(mx.array([value], dtype=mx.int32)).item())


def each_rank(value: float) -> list[float]:
    """``value`` of every rank, in rank order, as floats (exact for ints below 2**24)."""
    if world_size() == 1:
        return [value]
    gathered = mx.distributed.all_gather(mx.array([value], dtype=mx.float32))
    with waiting("an exchange of values between the ranks"):
        return [float(v) for v in np.asarray(gathered)]


def smallest(value: float) -> float:
    """The smallest ``value`` over the ranks (equal batch counts: unequal ones deadlock)."""
    if world_size() == 1:
        return value
    least = mx.distributed.all_min(mx.array([value], dtype=mx.float32))
    with waiting("an exchange of values between the ranks"):
        found = float(least.item())  # type: ignore[arg-type]
    return int(found) if isinstance(value, int) else found


def largest(value: float) -> float:
    """The largest ``value`` over the ranks."""
    if world_size() == 1:
        return value
    most = mx.distributed.all_max(mx.array([value], dtype=mx.float32))
    with waiting("an exchange of values between the ranks"):
        return float(most.item())  # type: ignore[arg-type]


def any_rank(flag: bool) -> bool:
    """Whether ``flag`` holds on at least one rank."""
    return largest(float(flag)) > 0


def barrier(what: str = "a barrier") -> None:
    if world_size() > 1:
        with waiting(what):
            mx.eval(mx.distributed.all_sum(mx.array([1.0])))


def mean_across(tree: Any) -> Any:
    """Every array of ``tree`` averaged over the ranks."""
    n = world_size()
    if n == 1:
        return tree
    out = tree_map(lambda x: mx.distributed.all_sum(x) / n if isinstance(x, mx.array) else x, tree)
    with waiting("a mean across the ranks"):
        mx.eval(out)  # now, on every rank: a lazy collective run later by one rank alone would hang
    return out


# -- inside the compiled step ---------------------------------------------------------------------
def reduce_columns(values: mx.array, modes: list[str]) -> mx.array:
    """``values[i]`` reduced over the ranks by ``modes[i]`` ("mean", "sum", "max" or "min") with
    one ``all_gather``; usable inside ``mx.compile``."""
    n = world_size()
    if n == 1 or values.size == 0:
        return values
    table = mx.distributed.all_gather(values[None].astype(mx.float32)).reshape(n, -1)
    reduce = {"mean": mx.mean, "sum": mx.sum, "max": mx.max, "min": mx.min}
    return mx.stack([reduce[mode](table[:, i]) for i, mode in enumerate(modes)]).astype(
        values.dtype
    )


def all_ranks(flag: mx.array) -> mx.array:
    """Whether ``flag`` (a 0-d bool) holds on every rank; usable inside ``mx.compile``."""
    if world_size() == 1:
        return flag
    return mx.distributed.all_min(flag.astype(mx.float32).reshape(1)).reshape(()) > 0


# -- the epoch reductions ---------------------------------------------------------------------------
def reduce_totals(totals: list[tuple[str, Any, int]]) -> list[tuple[Any, int]]:
    """Running reductions ``(reduce_fx, total, weight)`` of one rank -> the whole job's, in order
    (means weighted by each rank's sample count, so the result is the mean over all samples)."""
    n = world_size()
    if n == 1 or not totals:
        return [(total, weight) for _, total, weight in totals]
    values = mx.stack([mx.array(total).astype(mx.float32).reshape(()) for _, total, _ in totals])
    weights = mx.array([float(weight) for _, _, weight in totals], dtype=mx.float32)
    table = mx.distributed.all_gather(mx.concatenate([values, weights])[None]).reshape(
        n, 2, len(totals)
    )
    with waiting("the epoch's metrics from every rank"):
        mx.eval(table)
    out: list[tuple[Any, int]] = []
    for i, (mode, _, _) in enumerate(totals):
        column = table[:, 0, i]
        weight = int(mx.sum(table[:, 1, i]).item())  # type: ignore[arg-type]
        if mode in ("mean", "sum"):
            total = mx.sum(column)
        else:
            total = mx.max(column) if mode == "max" else mx.min(column)
        out.append((total, weight))
    return out


def shard_loaders(trainer: Trainer, *loaders: Any) -> list[Any]:
    """Each rank's share of the fit's loaders (Lightning's ``use_distributed_sampler``)."""
    from mlx_audio.data import DataLoader, shard_loader

    out = []
    for loader in loaders:
        if isinstance(loader, DataLoader) and trainer.use_distributed_sampler:
            try:
                loader = shard_loader(loader, seed=loader.seed)
            except ValueError as error:  # a sampler or stream it cannot split: say so, keep it
                trainer.warn_once(
                    f"the Trainer did not split this DataLoader across the {world_size()} ranks: {error}"
                )
        elif loader is not None and trainer.use_distributed_sampler:
            trainer.warn_once(
                f"{type(loader).__name__} is not an mlx_audio.data.DataLoader, so the Trainer cannot "
                f"split it across the {world_size()} ranks: each rank trains on all of it unless it yields "
                "that rank's share itself (see docs/api/distributed.md)"
            )
        out.append(loader)
    return out


def explain_lost_peer(error: BaseException) -> BaseException | None:
    """A clearer error for a rank whose collective failed because another rank stopped.

    Decided on the error's type and origin, never on its text (a rank's own error may well
    mention a "peer" or "NCCL"): a ``RuntimeError`` (what MLX raises from C++) that MLX raised
    while this package evaluated arrays -- the innermost frame of its traceback is one of ours,
    calling, not a ``raise`` statement -- in a run of several processes. Such an error on a
    rank that is itself failing (out of memory in a step) is relabelled too; the message keeps
    MLX's words."""
    if world_size() == 1 or type(error) is not RuntimeError or not _raised_by_mlx(error):
        return None
    return RuntimeError(
        f"rank {global_rank()} of {world_size()}: another rank stopped during training (its own "
        f"error is in its output above), so a collective failed; MLX said: {error}"
    )


def _raised_by_mlx(error: BaseException) -> bool:
    trace = error.__traceback__
    if trace is None:
        return False
    while trace.tb_next is not None:
        trace = trace.tb_next
    file = trace.tb_frame.f_code.co_filename
    ours = os.path.dirname(os.path.abspath(file)).startswith(_HERE)
    return ours and not linecache.getline(file, trace.tb_lineno).lstrip().startswith("raise")


_HERE = os.path.dirname(os.path.abspath(__file__))
