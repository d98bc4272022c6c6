"""mlx-audio: a Lightning-like training stack for MLX, for audio models.

The `mlx_audio` import name is shared by five distributions (data, loggers, train, models and
this meta-package). The four library packages ship no ``mlx_audio/__init__.py``; this file
extends ``__path__`` so their subpackages import in wheel and editable installs alike.

Exports are lazy (PEP 562) so ``import mlx_audio`` stays fast and works with only some of the
distributions installed.
"""

from __future__ import annotations

from pkgutil import extend_path

__path__ = extend_path(__path__, __name__)

try:  # Load OpenBLAS before anything imports mlx.core (Linux CPU speed; see mlx_audio.data.support).
    import mlx_audio.data  # noqa: F401  (cheap: its own exports are lazy)
except ImportError:  # mlx-audio-data not installed: nothing of ours will import mlx.
    pass

__version__ = "0.1.0"

_EXPORTS = {
    "DataLoader": "mlx_audio.data",
    "TrainModule": "mlx_audio.train",
    "OptimizerConfig": "mlx_audio.train",
    "Trainer": "mlx_audio.train",
}
_SUBPACKAGES = ("data", "loggers", "train", "models")

__all__ = [*_EXPORTS, *_SUBPACKAGES]


def __getattr__(name: str):
    import importlib

    if name in _SUBPACKAGES:
        return importlib.import_module(f"mlx_audio.{name}")
    if name in _EXPORTS:
        module = _EXPORTS[name]
        try:
            return getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError) as error:
            dist = "mlx-audio-" + module.split(".")[1]
            raise ImportError(
                f"mlx_audio.{name} needs the {dist!r} distribution "
                f"(pip install {dist}, or mlx-audio-stack for everything): {error}"
            ) from error
    raise AttributeError(f"module 'mlx_audio' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
