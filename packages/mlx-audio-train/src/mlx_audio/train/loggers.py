"""The tutorial's import path: ``from mlx_audio.train.loggers import WandbLogger``.

Re-exports :mod:`mlx_audio.loggers` (the ``mlx-audio-loggers`` distribution).
"""

from mlx_audio.loggers import CSVLogger, Logger, MLflowLogger, TensorBoardLogger, WandbLogger  # noqa: F401

__all__ = ["Logger", "CSVLogger", "TensorBoardLogger", "WandbLogger", "MLflowLogger"]
