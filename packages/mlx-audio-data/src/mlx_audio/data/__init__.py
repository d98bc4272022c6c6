"""mlx_audio.data: datasets, samplers, collate and a multiprocessing DataLoader for MLX.

Importing this package first also makes MLX's Linux CPU wheels use OpenBLAS (see ``support``).
Exports are resolved lazily so that importing it does not import ``mlx.core``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

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
    "DynamicBucketingSampler": "dynamic_bucketing",
    "estimate_duration_buckets": "dynamic_bucketing",
    "DynamicBucketingDataset": "bucketing_stream",
    "Mux": "interleave",
    "mux": "interleave",
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


if TYPE_CHECKING:  # what the lazy exports resolve to, for type checkers
    from ._loader.fetch import sample_rng as sample_rng
    from ._loader.ranks import ShardInfo as ShardInfo
    from ._loader.ranks import get_shard_info as get_shard_info
    from ._loader.worker import WorkerInfo as WorkerInfo
    from ._loader.worker import get_worker_info as get_worker_info
    from .audio.datasets import AudioFolder as AudioFolder
    from .audio.datasets import AudioManifest as AudioManifest
    from .audio.features import log_mel_spectrogram as log_mel_spectrogram
    from .audio.features_mlx import LogMel as LogMel
    from .audio.io import audio_info as audio_info
    from .audio.io import load_audio as load_audio
    from .bucketing import BucketBatchSampler as BucketBatchSampler
    from .bucketing_stream import DynamicBucketingDataset as DynamicBucketingDataset
    from .collate import default_collate as default_collate
    from .collate import default_convert as default_convert
    from .collate import to_mlx as to_mlx
    from .dataloader import DataLoader as DataLoader
    from .dataloader import StatefulDataLoader as StatefulDataLoader
    from .dataset import ArrayDataset as ArrayDataset
    from .dataset import ChainDataset as ChainDataset
    from .dataset import ConcatDataset as ConcatDataset
    from .dataset import Dataset as Dataset
    from .dataset import IterableDataset as IterableDataset
    from .dataset import StackDataset as StackDataset
    from .dataset import Subset as Subset
    from .dataset import TensorDataset as TensorDataset
    from .dataset import random_split as random_split
    from .dynamic_bucketing import DynamicBucketingSampler as DynamicBucketingSampler
    from .dynamic_bucketing import estimate_duration_buckets as estimate_duration_buckets
    from .interleave import Mux as Mux
    from .interleave import mux as mux
    from .padding import PadCollate as PadCollate
    from .padding import PadOrCrop as PadOrCrop
    from .padding import RandomCrop as RandomCrop
    from .padding import pad_collate as pad_collate
    from .sampler import BatchSampler as BatchSampler
    from .sampler import DistributedSampler as DistributedSampler
    from .sampler import RandomSampler as RandomSampler
    from .sampler import Sampler as Sampler
    from .sampler import SequentialSampler as SequentialSampler
    from .sampler import SubsetRandomSampler as SubsetRandomSampler
    from .sampler import WeightedRandomSampler as WeightedRandomSampler
    from .sharding import shard_loader as shard_loader


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
