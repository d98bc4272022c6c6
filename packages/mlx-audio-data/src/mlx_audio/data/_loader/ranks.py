"""Which share of the data this code should produce: the data-parallel rank (``mlx.launch``) and
the DataLoader worker within it -- the documented hook for an ``IterableDataset`` that splits its
own stream (map-style datasets are split by ``shard_loader`` / the Trainer instead)."""

from __future__ import annotations

import os
from dataclasses import dataclass

from .worker import get_worker_info


def launch_ranks() -> tuple[int, int]:
    """``(rank, world size)`` of this process: ``(0, 1)`` unless it was started as one of several
    (``mlx.launch`` or a scheduler setting ``MLX_RANK``); then MLX's distributed group says."""
    if "MLX_RANK" not in os.environ:
        return 0, 1
    import mlx.core as mx  # the main process only (workers get it in their WorkerSpec)

    group = mx.distributed.init()
    return group.rank(), group.size()


@dataclass(frozen=True)
class ShardInfo:
    """``rank``/``num_replicas``: the data-parallel process; ``worker_id``/``num_workers``: the
    DataLoader worker within it (0/1 in the main process). ``index`` of ``count``: this code's
    share when both are split, e.g. ``itertools.islice(stream, info.index, None, info.count)``."""

    rank: int
    num_replicas: int
    worker_id: int
    num_workers: int

    @property
    def index(self) -> int:
        return self.rank * self.num_workers + self.worker_id

    @property
    def count(self) -> int:
        return self.num_replicas * self.num_workers


def get_shard_info() -> ShardInfo:
    """Where this code runs among the data-parallel processes and DataLoader workers (in a worker
    or in the main process, with or without ``mlx.launch``)."""
    info = get_worker_info()
    if info is None:
        rank, replicas = launch_ranks()
        return ShardInfo(rank, replicas, 0, 1)
    return ShardInfo(info.rank, info.num_replicas, info.id, info.num_workers)
