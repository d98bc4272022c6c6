"""Public helpers the sibling packages (train, models, loggers, stack) share with the data package.

Importing this module imports no MLX. What it holds:

- :func:`ensure_fast_blas` / :func:`limit_blas_threads`: MLX's Linux CPU wheels bundle a slow
  reference BLAS; loading OpenBLAS before ``mlx.core`` makes CPU training ~10x faster (``_blas``).
- :func:`lazy_exports`: PEP 562 ``__getattr__``/``__dir__`` so ``import mlx_audio.<pkg>`` stays
  fast and imports MLX only when a name is used.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from ._blas import (
    ensure_fast_blas,
    find_openblas,
    limit_blas_threads,
    report_slow_blas,
    slow_blas_reason,
)

__all__ = [
    "ensure_fast_blas",
    "find_openblas",
    "limit_blas_threads",
    "report_slow_blas",
    "slow_blas_reason",
    "lazy_exports",
]


def lazy_exports(
    package: str, exports: dict[str, str], namespace: dict[str, Any]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for ``package`` resolving ``name -> submodule`` on use."""

    def __getattr__(name: str) -> Any:
        if name in exports:
            value = getattr(importlib.import_module(f"{package}.{exports[name]}"), name)
            namespace[name] = value
            return value
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        return sorted([*namespace, *exports])

    return __getattr__, __dir__
