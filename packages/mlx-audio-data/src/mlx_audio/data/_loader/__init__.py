"""The DataLoader's engine (private; the public face is :mod:`mlx_audio.data.dataloader`).

Torch's two levels: the public modules at the top of ``mlx_audio.data`` say *what* a loader
does; this package does it, across a process boundary. Which module runs where:

Main process (the loader and its passes; may import MLX)
    ``settings``   what the loader's settings decide: arguments checked, torch's default
                   samplers, the epoch's index batches, where the collate runs, the start method,
                   how worker processes start (``start_workers``)
    ``passes``     one pass (epoch) per ``iter()``: the pass's plan and base, the in-process
                   passes, and their resumable position
    ``worker_passes`` the passes with workers, map-style or stream, and ``pass_class``
    ``pool``       handles on the workers (processes or threads); ``pools``: a pass's and a
                   loader's pools of them
    ``warm``       a worker's Sizing hint: MLX memory faulted in before its batch comes
    ``transfer``   ``pin_memory`` on CUDA: a pass iterated on a transfer thread
    ``state``      the loader's versioned ``state_dict`` and its checks, which batches a pass
                   has handed out, where the next epoch starts
Both sides (imported by workers too: no MLX)
    ``protocol``   the messages between the main process and its workers, ``WorkerSpec``
    ``tree``       the one tree walker for batches; MLX forbidden after fork
    ``shm``        shared-memory slots: batches written by workers, read by the main process
    ``adapters``   dataset adapters (Hugging Face ``datasets``), looked up in the main process,
                   sent to the workers
    ``ranks``      ``get_shard_info``: which share of the data this code produces
Worker processes (and the main process when ``num_workers=0``; no MLX)
    ``worker``     the worker loops (process and thread), ``get_worker_info``, seeding
    ``fetch``      fetch, transform and collate: ``MapFetcher`` / ``StreamFetcher``, one per
                   dataset kind (torch's ``_DatasetKind``), chosen once by ``fetcher_class``

The ``NOTE [...]`` blocks (written once, referred to by name elsewhere):

==============================  =====================================
NOTE                            where
==============================  =====================================
a sample's error                ``_loader/passes.py``
batch copies                    ``_loader/shm.py``
bucketer state                  ``_bucketer.py``
dataset adapters                ``_loader/adapters.py``
device augmentation RNG         ``audio/augment_mlx.py``
device index batches            ``_device.py``
device-resident data            ``_loader/settings.py``
fast BLAS                       ``support.py``
fast start                      ``_loader/pools.py``
finalizers after fork           ``_loader/pools.py``
Hugging Face Audio              ``audio/huggingface.py``
Hugging Face streams            ``audio/huggingface.py``
integer PCM                     ``audio/features.py``
IterableDataset and __len__     ``_loader/passes.py``
loader seed                     ``_loader/settings.py``
map-style dataset state         ``_loader/worker.py``
MLX after fork                  ``_loader/tree.py``
one pass per iter()             ``dataloader.py``
out-of-order resume             ``_loader/state.py``
output conversion               ``dataloader.py``
pin_memory on CUDA              ``_loader/transfer.py``
pools stay reachable            ``_loader/pools.py``
prefetch, not page faults       ``_loader/cuda.py``
queue teardown                  ``_loader/pool.py``
round-robin order               ``_loader/worker_passes.py``
seeded augmentation             ``audio/augment.py``
settings are fixed              ``dataloader.py``
signals across fork             ``_loader/pool.py``
slot pages                      ``_loader/shm.py``
slots copied on the GPU         ``_loader/cuda.py``
sharding advice                 ``dataloader.py``
source positions                ``_streams.py``
stream bucketing state          ``bucketing_stream.py``
warm destination                ``_loader/warm.py``
worker watchdog                 ``_loader/worker.py``
==============================  =====================================

(paths relative to ``mlx_audio/data/``; ``tests/test_import_paths.py`` of this package checks
this index against the sources.)
"""
