"""mlx_audio.train: TrainModule, Trainer, callbacks, schedulers and checkpoints for MLX."""

from __future__ import annotations

from mlx_audio.data import _blas  # OpenBLAS before mlx.core on Linux CPU

_blas.ensure_fast_blas()

__version__ = "0.1.0"

_EXPORTS = {
    "TrainModule": "module",
    "OptimizerConfig": "module",
    "Trainer": "trainer",
    "CheckpointError": "checkpoint",
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
