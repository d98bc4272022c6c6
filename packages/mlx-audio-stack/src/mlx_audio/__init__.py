"""mlx-audio: a Lightning-like training stack for MLX, for audio models.

The `mlx_audio` import name is shared by five distributions (data, loggers, train, models and
this meta-package). The four library packages ship no ``mlx_audio/__init__.py``; this file
extends ``__path__`` so their subpackages import in wheel and editable installs alike.

Exports are lazy (PEP 562, ``mlx_audio.data.support.lazy_exports``) so ``import mlx_audio``
stays fast and works with only some of the distributions installed (``mlx-audio-data`` is
always there: this meta-package depends on it).
"""

from __future__ import annotations

from pkgutil import extend_path
from typing import TYPE_CHECKING

__path__ = extend_path(__path__, __name__)

# Importing the data package first loads OpenBLAS before anything imports mlx.core (Linux CPU
# speed; see mlx_audio.data.support). Cheap: its own exports are lazy.
from mlx_audio.data.support import lazy_exports  # noqa: E402

__version__ = "0.1.0"

_EXPORTS = {
    "DataLoader": "data",
    "TrainModule": "train",
    "OptimizerConfig": "train",
    "Trainer": "train",
    "DataModule": "train",
}
_SUBPACKAGES = ("data", "loggers", "train", "models")

__all__ = [*_EXPORTS, *_SUBPACKAGES]


if TYPE_CHECKING:  # what the lazy exports resolve to, for type checkers
    from mlx_audio.data import DataLoader as DataLoader
    from mlx_audio.train import DataModule as DataModule
    from mlx_audio.train import OptimizerConfig as OptimizerConfig
    from mlx_audio.train import Trainer as Trainer
    from mlx_audio.train import TrainModule as TrainModule


def _missing(name: str, module: str, error: Exception) -> str:
    dist = "mlx-audio-" + module.split(".")[1]
    return (
        f"mlx_audio.{name} needs the {dist!r} distribution "
        f"(pip install {dist}, or mlx-audio-stack for everything): {error}"
    )


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals(), _SUBPACKAGES, _missing)
