"""mlx_audio.train: TrainModule, Trainer, callbacks, schedulers and checkpoints for MLX."""

from __future__ import annotations

from mlx_audio.data import _blas  # OpenBLAS before mlx.core on Linux CPU
from mlx_audio.data._lazy import lazy_exports

_blas.ensure_fast_blas()

__version__ = "0.1.0"

_EXPORTS = {
    "TrainModule": "module",
    "OptimizerConfig": "module",
    "Trainer": "trainer",
    "CheckpointError": "checkpoint",
}
__all__ = list(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
