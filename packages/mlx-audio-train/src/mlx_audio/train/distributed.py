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

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import mlx.core as mx
from mlx.utils import tree_map

if TYPE_CHECKING:
    from .trainer import Trainer


F = TypeVar("F", bound=Callable[..., Any])

# A rank whose peer died sees one of these from the backend (ring: "connection to a peer was lost").
_PEER_LOST = ("connection to a peer was lost", "Socket", "NCCL", "peer")


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
    mx.eval(out)
    return out


def broadcast_int(value: int) -> int:
    """Rank 0's ``value`` (an int in ``[0, 2**31)``, exact in int32) on every rank."""
    if world_size() == 1:
        return value
    return int(broadcast(mx.array([value], dtype=mx.int32)).item())


def smallest(value: float) -> float:
    """The smallest ``value`` over the ranks (equal batch counts: unequal ones deadlock)."""
    if world_size() == 1:
        return value
    least = float(mx.distributed.all_min(mx.array([value], dtype=mx.float32)).item())  # type: ignore[arg-type]
    return int(least) if isinstance(value, int) else least


def largest(value: float) -> float:
    """The largest ``value`` over the ranks."""
    if world_size() == 1:
        return value
    return float(mx.distributed.all_max(mx.array([value], dtype=mx.float32)).item())  # type: ignore[arg-type]


def any_rank(flag: bool) -> bool:
    """Whether ``flag`` holds on at least one rank."""
    return largest(float(flag)) > 0


def barrier() -> None:
    if world_size() > 1:
        mx.eval(mx.distributed.all_sum(mx.array([1.0])))


def mean_across(tree: Any) -> Any:
    """Every array of ``tree`` averaged over the ranks."""
    n = world_size()
    if n == 1:
        return tree
    out = tree_map(lambda x: mx.distributed.all_sum(x) / n if isinstance(x, mx.array) else x, tree)
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
    """A clearer error for a rank whose collective failed because another rank stopped."""
    text = str(error)
    if (
        world_size() == 1
        or not isinstance(error, RuntimeError)
        or not any(k in text for k in _PEER_LOST)
    ):
        return None
    return RuntimeError(
        f"rank {global_rank()} of {world_size()}: another rank stopped during training (its own "
        f"error is in its output above); the backend said: {text}"
    )
