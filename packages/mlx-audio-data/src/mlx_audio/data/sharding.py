"""One rank's share of a DataLoader for data-parallel training (Lightning's sampler replacement)."""

from __future__ import annotations

from typing import Any

from ._loader.adapters import adapter_for
from .bucketing import BucketBatchSampler
from .bucketing_stream import DynamicBucketingDataset
from .dataloader import DataLoader
from .dynamic_bucketing import DynamicBucketingSampler
from .sampler import BatchSampler, DistributedSampler, RandomSampler, SequentialSampler


def shard_loader(
    loader: DataLoader[Any],
    num_replicas: int | None = None,
    rank: int | None = None,
    seed: int | None = None,
) -> DataLoader[Any]:
    """A copy of ``loader`` that yields only this rank's share of every epoch.

    A loader over the default samplers (``shuffle=True`` or ``False``) gets a
    :class:`DistributedSampler` with its settings; a :class:`BucketBatchSampler` or
    :class:`DynamicBucketingSampler` is rebuilt for the rank, and so is a
    :class:`DynamicBucketingDataset` (it keeps every ``num_replicas``-th batch); a Hugging Face ``datasets.IterableDataset`` is split with its own
    ``split_dataset_by_node``. Every rank gets the same number of batches (DistributedSampler pads by repeating
    samples, as torch's). With the same ``seed`` on every rank, batch ``b`` of all ranks together
    holds exactly the samples of batch ``b`` of the unsharded loader at ``num_replicas`` times
    the batch size. ``num_replicas``/``rank`` default to ``mx.distributed.init()``'s group.

    Raises ``ValueError`` for a loader it cannot shard (an IterableDataset, which must split its
    stream by rank itself, or a custom sampler): wrap or replace that sampler yourself.
    """
    if not isinstance(loader, DataLoader):
        raise ValueError(
            f"shard_loader needs an mlx_audio.data.DataLoader, got {type(loader).__name__}"
        )
    if num_replicas is None or rank is None:
        import mlx.core as mx

        world = mx.distributed.init()
        num_replicas = world.size() if num_replicas is None else num_replicas
        rank = world.rank() if rank is None else rank
    seed = seed if seed is not None else loader._resolved_seed()
    sampler = loader.sampler
    batch_sampler = loader.batch_sampler
    dataset = loader.dataset
    kwargs: dict[str, Any] = {}
    adapter = adapter_for(dataset)
    share = None if adapter is None else adapter.split(dataset, rank, num_replicas)
    if share is not None:  # a Hugging Face stream splits itself by node (NOTE [dataset adapters])
        dataset = share
        kwargs["batch_size"] = loader.batch_size
        kwargs["drop_last"] = loader.drop_last
    elif isinstance(batch_sampler, (BucketBatchSampler, DynamicBucketingSampler)):
        kwargs["batch_sampler"] = batch_sampler.for_rank(num_replicas, rank, seed)
    elif isinstance(dataset, DynamicBucketingDataset):  # keeps every num_replicas-th batch
        dataset = dataset.for_rank(num_replicas, rank)
        kwargs["batch_size"] = loader.batch_size
        kwargs["drop_last"] = loader.drop_last
    elif isinstance(sampler, (RandomSampler, SequentialSampler)) and (
        batch_sampler is None or type(batch_sampler) is BatchSampler
    ):
        if isinstance(sampler, RandomSampler) and (
            sampler.replacement or sampler._num_samples is not None
        ):
            raise ValueError(
                "shard_loader: a RandomSampler with replacement or num_samples cannot be split by rank; "
                "give each rank its own sampler (e.g. seeded by rank)"
            )
        shuffle = isinstance(sampler, RandomSampler)
        kwargs["sampler"] = DistributedSampler(
            loader.dataset, num_replicas, rank, shuffle=shuffle, seed=seed
        )
        kwargs["batch_size"] = loader.batch_size
        kwargs["drop_last"] = loader.drop_last
    else:
        what = (
            "an IterableDataset (other than a Hugging Face stream)"
            if sampler is None
            else f"a {type(sampler).__name__} / {type(batch_sampler).__name__}"
        )
        raise ValueError(
            f"shard_loader cannot split {what} by rank: give each rank its own share (a "
            "DistributedSampler, or an IterableDataset that yields its share from "
            "mlx_audio.data.get_shard_info()), or pass Trainer(use_distributed_sampler=False) to keep the loader as it is"
        )
    return DataLoader(
        dataset,
        num_workers=loader.num_workers,
        collate_fn=loader.collate_fn,
        timeout=loader.timeout,
        worker_init_fn=loader.worker_init_fn,
        multiprocessing_context=loader.multiprocessing_context,
        prefetch_factor=loader.prefetch_factor,
        persistent_workers=loader.persistent_workers,
        seed=seed,
        worker_type=loader.worker_type,
        cpu_transforms=loader.cpu_transforms,
        mlx_transforms=loader.mlx_transforms,
        in_order=loader.in_order,
        **kwargs,
    )
