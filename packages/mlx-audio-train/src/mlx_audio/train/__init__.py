"""mlx_audio.train: TrainModule, Trainer, callbacks, schedulers and checkpoints for MLX."""

from __future__ import annotations

from mlx_audio.data.support import ensure_fast_blas, lazy_exports  # before mlx.core

ensure_fast_blas()  # OpenBLAS on Linux CPU

__version__ = "0.1.0"

_EXPORTS = {
    "TrainModule": "module",
    "OptimizerConfig": "module",
    "Trainer": "trainer",
    "CheckpointError": "checkpoint",
    "Preempted": "_lifecycle",
    "rank_zero_only": "distributed",
}
__all__ = list(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
