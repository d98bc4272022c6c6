"""mlx_audio.loggers: experiment loggers (CSV, TensorBoard, W&B, MLflow) for the Trainer.

Backends are optional extras imported only when their logger is created:
``pip install "mlx-audio-loggers[tensorboard|wandb|mlflow|all]"``. So the names below are
imported eagerly: their modules need only the standard library (no numpy, no MLX), and this
package has no lazy exports (``mlx_audio.data.support.lazy_exports`` is not a dependency of it).
"""

from __future__ import annotations

try:  # loggers need no MLX, but importing any mlx_audio package first should speed MLX up
    from mlx_audio.data.support import ensure_fast_blas

    ensure_fast_blas()
except ImportError:
    pass

from .base import Logger, flatten_params
from .csv_logger import CSVLogger
from .delivery import LoggerError, LoggerWarning, QueuedLogger, Record
from .mlflow_logger import MLFlowLogger, MLflowLogger
from .tensorboard_logger import TensorBoardLogger
from .wandb_logger import WandbLogger

__version__ = "0.1.0"

__all__ = [
    "Logger",
    "CSVLogger",
    "TensorBoardLogger",
    "WandbLogger",
    "MLFlowLogger",  # Lightning's spelling
    "MLflowLogger",
    "flatten_params",
    "QueuedLogger",
    "Record",
    "LoggerError",
    "LoggerWarning",
]
