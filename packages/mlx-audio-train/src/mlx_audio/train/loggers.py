"""The tutorial's import path: ``from mlx_audio.train.loggers import WandbLogger``.

Re-exports :mod:`mlx_audio.loggers` (the ``mlx-audio-loggers`` distribution).
"""

from mlx_audio.loggers import (  # noqa: F401
    CSVLogger,
    Logger,
    MLFlowLogger,
    MLflowLogger,
    TensorBoardLogger,
    WandbLogger,
)

__all__ = [
    "Logger",
    "CSVLogger",
    "TensorBoardLogger",
    "WandbLogger",
    "MLFlowLogger",
    "MLflowLogger",
]
