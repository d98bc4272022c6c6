"""``Trainer(sync_batchnorm=True)``: batch normalization over the global batch of a data-parallel
run (Lightning's ``SyncBatchNorm`` conversion).

NOTE [synchronized batch norm]: each ``nn.BatchNorm`` of the model becomes a
:class:`SyncBatchNorm` (its class swapped in place, weights and running statistics kept) when
``fit`` starts with several processes: its batch mean and variance are the global batch's, from
``all_sum`` of the per-rank sums (two collectives per statistic, inside the compiled step; MLX's
``all_sum`` has a gradient, so the backward pass sees the global statistics too). Its running
statistics then agree on every rank. One process: nothing to synchronize, nothing changes.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, cast

import mlx.core as mx
import mlx.nn as nn

from . import distributed

if TYPE_CHECKING:
    from .trainer import Trainer


def _all_sum(x: mx.array) -> mx.array:
    return mx.distributed.all_sum(x, group=distributed.group())


def _all_sum_vjp(primals: mx.array, cotangent: mx.array, output: mx.array) -> mx.array:
    return mx.distributed.all_sum(cotangent, group=distributed.group())


# ``all_sum`` whose gradient is summed over the ranks too: each rank's input feeds every rank's
# loss through the statistics (MLX's own ``all_sum`` passes the cotangent through unchanged).
_global = mx.custom_function(_all_sum)
_global.vjp(_all_sum_vjp)


def global_sum(x: mx.array) -> mx.array:
    return cast("mx.array", _global(x))


class SyncBatchNorm(nn.BatchNorm):
    """``nn.BatchNorm`` whose batch statistics are summed over every process of the run."""

    def _calc_stats(self, x: mx.array, ddof: int = 0) -> tuple[mx.array, mx.array]:
        axes = tuple(range(0, x.ndim - 1))
        local = mx.array([math.prod(x.shape[:-1])], dtype=x.dtype)
        packed = global_sum(mx.concatenate([mx.sum(x, axis=axes), local]))
        mean, count = packed[:-1] / packed[-1], packed[-1]
        squares = mx.sum(mx.square(x - mean), axis=axes)
        var = global_sum(squares) / (count - ddof)
        return mean, var


def sync_if_asked(trainer: Trainer, model: nn.Module) -> None:
    """At ``fit``'s start: convert under ``sync_batchnorm=True`` with several processes."""
    if trainer.sync_batchnorm and distributed.world_size() > 1:
        convert_sync_batchnorm(model)


def convert_sync_batchnorm(model: nn.Module) -> int:
    """Make every ``nn.BatchNorm`` of ``model`` a :class:`SyncBatchNorm`; how many there were."""
    converted = 0
    for _, module in model.named_modules():
        if type(module) is nn.BatchNorm:
            module.__class__ = SyncBatchNorm
            converted += 1
    return converted
