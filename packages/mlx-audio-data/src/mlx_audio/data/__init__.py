"""mlx_audio.data: datasets, samplers, collate and a multiprocessing DataLoader for MLX.

Importing this package first also makes MLX's Linux CPU wheels use OpenBLAS (see ``support``).
Exports are resolved lazily so that importing it does not import ``mlx.core``.
"""

from __future__ import annotations

from .support import ensure_fast_blas, lazy_exports

ensure_fast_blas()

__version__ = "0.1.0"

_EXPORTS = {
    "Dataset": "dataset",
    "IterableDataset": "dataset",
    "ArrayDataset": "dataset",
    "TensorDataset": "dataset",
    "Subset": "dataset",
    "ConcatDataset": "dataset",
    "random_split": "dataset",
    "ChainDataset": "dataset",
    "StackDataset": "dataset",
    "SubsetRandomSampler": "sampler",
    "WeightedRandomSampler": "sampler",
    "Sampler": "sampler",
    "SequentialSampler": "sampler",
    "RandomSampler": "sampler",
    "BatchSampler": "sampler",
    "DistributedSampler": "sampler",
    "shard_loader": "sharding",
    "default_collate": "collate",
    "default_convert": "collate",
    "to_mlx": "collate",
    "get_worker_info": "_loader.worker",
    "get_shard_info": "_loader.ranks",
    "ShardInfo": "_loader.ranks",
    "sample_rng": "_loader.fetch",
    "WorkerInfo": "_loader.worker",
    "DataLoader": "dataloader",
    "StatefulDataLoader": "dataloader",
    "BucketBatchSampler": "bucketing",
    "PadCollate": "padding",
    "pad_collate": "padding",
    "RandomCrop": "padding",
    "PadOrCrop": "padding",
    "AudioFolder": "audio.datasets",
    "AudioManifest": "audio.datasets",
    "load_audio": "audio.io",
    "audio_info": "audio.io",
    "LogMel": "audio.features_mlx",
    "log_mel_spectrogram": "audio.features",
}

__all__ = list(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
