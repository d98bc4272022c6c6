"""mlx_audio.data: datasets, samplers, collate and a multiprocessing DataLoader for MLX.

Importing this package first also makes MLX's Linux CPU wheels use OpenBLAS (see ``_blas``).
Exports are resolved lazily so that importing it does not import ``mlx.core``.
"""

from __future__ import annotations

from . import _blas

_blas.ensure_fast_blas()

__version__ = "0.1.0"

_EXPORTS = {
    "Dataset": "dataset",
    "IterableDataset": "dataset",
    "ArrayDataset": "dataset",
    "Subset": "dataset",
    "ConcatDataset": "dataset",
    "random_split": "dataset",
    "Sampler": "sampler",
    "SequentialSampler": "sampler",
    "RandomSampler": "sampler",
    "BatchSampler": "sampler",
    "DistributedSampler": "sampler",
    "default_collate": "collate",
    "default_convert": "collate",
    "to_mlx": "collate",
    "get_worker_info": "_worker",
    "WorkerInfo": "_worker",
    "DataLoader": "dataloader",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        import importlib

        value = getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
