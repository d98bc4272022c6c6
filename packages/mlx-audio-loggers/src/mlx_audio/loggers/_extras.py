"""Lazy imports of optional backends, with errors that name the extra to install.

The loggers' own copy of ``mlx_audio.data.support.require`` (same rule: import on use, else an
``ImportError`` naming the extra, raised from the original error): ``mlx-audio-loggers`` depends
on none of our packages, so it cannot import that one.
"""

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
