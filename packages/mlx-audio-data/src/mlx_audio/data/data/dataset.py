"""Tutorial import path for the datasets (``mlx_audio.data.data.dataset.Dataset``).

The implementation lives in :mod:`mlx_audio.data.dataset`; this module re-exports it.
"""

from mlx_audio.data.dataset import (  # noqa: F401
    ArrayDataset,
    ConcatDataset,
    Dataset,
    IterableDataset,
    Subset,
    random_split,
)

__all__ = ["Dataset", "IterableDataset", "ArrayDataset", "Subset", "ConcatDataset", "random_split"]
