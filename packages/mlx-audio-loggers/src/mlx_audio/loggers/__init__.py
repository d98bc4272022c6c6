"""mlx_audio.loggers: experiment loggers (CSV, TensorBoard, W&B, MLflow) for the Trainer.

Backends are optional extras imported only when their logger is created:
``pip install "mlx-audio-loggers[tensorboard|wandb|mlflow|all]"``.
"""

from __future__ import annotations

try:  # loggers need no MLX, but importing any mlx_audio package first should speed MLX up
    from mlx_audio.data.support import ensure_fast_blas

    ensure_fast_blas()
except ImportError:
    pass

__version__ = "0.1.0"

_EXPORTS = {
    "Logger": "base",
    "CSVLogger": "csv_logger",
    "TensorBoardLogger": "tensorboard_logger",
    "WandbLogger": "wandb_logger",
    "MLFlowLogger": "mlflow_logger",  # Lightning's spelling
    "MLflowLogger": "mlflow_logger",
    "flatten_params": "base",
    "QueuedLogger": "delivery",
    "Record": "delivery",
    "LoggerError": "delivery",
    "LoggerWarning": "delivery",
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
