"""mlx_audio.train: TrainModule, Trainer, callbacks, schedulers and checkpoints for MLX."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mlx_audio.data.support import ensure_fast_blas, lazy_exports  # before mlx.core

ensure_fast_blas()  # OpenBLAS on Linux CPU

__version__ = "0.1.0"

_EXPORTS = {
    "TrainModule": "module",
    "OptimizerConfig": "module",
    "Trainer": "trainer",
    "DataModule": "datamodule",
    "LightningDataModule": "datamodule",
    "CheckpointError": "checkpoint",
    "Preempted": "_lifecycle",
    "rank_zero_only": "distributed",
    "AttributeDict": "_hparams",
}
__all__ = list(_EXPORTS)

if TYPE_CHECKING:  # what the lazy exports resolve to, for type checkers
    from ._hparams import AttributeDict as AttributeDict
    from ._lifecycle import Preempted as Preempted
    from .checkpoint import CheckpointError as CheckpointError
    from .datamodule import DataModule as DataModule
    from .datamodule import LightningDataModule as LightningDataModule
    from .distributed import rank_zero_only as rank_zero_only
    from .module import OptimizerConfig as OptimizerConfig
    from .module import TrainModule as TrainModule
    from .trainer import Trainer as Trainer


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
