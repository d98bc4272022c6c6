"""Lazy imports of optional backends, with errors that name the extra to install."""

from __future__ import annotations

import importlib
from types import ModuleType


def require(module: str, extra: str, logger: str) -> ModuleType:
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise ImportError(
            f"{logger} needs the {module!r} package: pip install 'mlx-audio-loggers[{extra}]' "
            f"(or 'mlx-audio-stack[all]')"
        ) from error
