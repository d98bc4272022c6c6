"""Public helpers the sibling packages (train, models, stack) share with the data package.

Importing this module imports neither MLX nor numpy. One home for each of these rules:

- OpenBLAS for MLX's Linux CPU wheels (:func:`ensure_fast_blas`, :func:`report_slow_blas`,
  :func:`limit_blas_threads`, ...): see NOTE [fast BLAS] below.
- :func:`lazy_exports`: PEP 562 ``__getattr__``/``__dir__`` so ``import mlx_audio.<pkg>`` stays
  fast and imports MLX only when a name is used (data, train, models and the ``mlx_audio``
  meta-package).
- :func:`require`: an optional dependency imported on use, with an error naming the extra.
- :func:`is_mlx_array`: an ``mx.array``, told apart without importing MLX (workers must not).
- :func:`global_rng_state` / :func:`set_global_rng_state`: Python's and numpy's global RNG
  states as JSON-friendly lists (DataLoader workers' stream states, the Trainer's checkpoints).

``mlx-audio-loggers`` depends on none of our packages, so it keeps its own ``require``
(``mlx_audio.loggers._extras``) and needs no lazy exports (its modules import only the standard
library; each backend is imported when its logger is created).

NOTE [fast BLAS]: MLX's Linux CPU wheels link netlib's reference BLAS; ``libmlx.so`` resolves
``cblas_sgemm`` through the dynamic linker, so a faster BLAS loaded with ``RTLD_GLOBAL``
*before* ``mlx.core`` is first imported takes over (the tutorial CNN's train step: 330 ms -> 30
ms on 2 cores). Once ``mlx.core`` is loaded it is too late: then we say once how to fix it.
Set ``MLX_AUDIO_OPENBLAS=/path/libopenblas.so`` to choose the library,
``MLX_AUDIO_NO_OPENBLAS=1`` to opt out; macOS uses Accelerate and needs none of this.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import importlib
import logging
import os
import platform
import random
import sys
from collections.abc import Callable, Iterable
from types import ModuleType
from typing import Any, cast

__all__ = [
    "ensure_fast_blas",
    "find_openblas",
    "limit_blas_threads",
    "report_slow_blas",
    "slow_blas_reason",
    "lazy_exports",
    "require",
    "is_mlx_array",
    "check_replicas",
    "global_rng_state",
    "set_global_rng_state",
]


def lazy_exports(
    package: str,
    exports: dict[str, str],
    namespace: dict[str, Any],
    submodules: Iterable[str] = (),
    missing: Callable[[str, str, Exception], str] | None = None,
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for ``package`` resolving ``name -> submodule`` on use.

    ``exports`` maps a name to the submodule of ``package`` that defines it (dotted paths allowed);
    a resolved name is cached in ``namespace`` (the package's ``globals()``). ``submodules``:
    names that are subpackages, imported on use. ``missing(name, module, error)``: when given,
    an export that fails to import (``ImportError``/``AttributeError``) raises ``ImportError``
    with this message instead (e.g. naming the distribution to install).
    """
    subpackages = tuple(submodules)

    def __getattr__(name: str) -> Any:
        if name in subpackages:
            return importlib.import_module(f"{package}.{name}")
        if name in exports:
            module = f"{package}.{exports[name]}"
            try:
                value = getattr(importlib.import_module(module), name)
            except (ImportError, AttributeError) as error:
                if missing is None:
                    raise
                raise ImportError(missing(name, module, error)) from error
            namespace[name] = value
            return value
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        return sorted([*namespace, *exports, *subpackages])

    return __getattr__, __dir__


def check_replicas(num_replicas: int, rank: int) -> None:
    """A sampler's data-parallel split: ``num_replicas`` a positive int, ``rank`` in range."""
    if isinstance(num_replicas, bool) or not isinstance(num_replicas, int) or num_replicas <= 0:
        raise ValueError(f"num_replicas must be a positive int, got {num_replicas!r}")
    if isinstance(rank, bool) or not isinstance(rank, int) or not 0 <= rank < num_replicas:
        raise ValueError(f"rank must be an int in [0, {num_replicas - 1}], got {rank!r}")


def is_mlx_array(value: Any) -> bool:
    """Whether ``value`` is an ``mx.array``, checked without importing MLX (workers must not)."""
    return type(value).__module__.split(".")[0] == "mlx" and type(value).__name__ == "array"


def require(module: str, message: str) -> ModuleType:
    """``module`` imported, or an ``ImportError`` saying ``message`` (which names the extra to
    install), raised from the original error: optional dependencies are imported on use."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise ImportError(message) from error


def global_rng_state() -> dict[str, Any]:
    """numpy's and Python's global RNG states as JSON-friendly lists: ``{"numpy": [...],
    "python": [...]}`` (MLX's key is not included: the Trainer saves it on its own, as
    ``"mlx_key"``: NOTE [the run's key] in ``mlx_audio.train._rng``)."""
    import numpy as np

    name, keys, pos, has_gauss, cached = cast(
        "tuple[str, np.ndarray, int, int, float]", np.random.get_state()
    )
    version, internal, gauss_next = random.getstate()
    return {
        "numpy": [name, keys.tolist(), pos, has_gauss, cached],
        "python": [version, list(internal), gauss_next],
    }


def set_global_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`global_rng_state` returned."""
    import numpy as np

    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))


# -- NOTE [fast BLAS] ------------------------------------------------------------------------
_CANDIDATES = (
    "/usr/lib/{arch}-linux-gnu/openblas-pthread/libopenblas.so.0",
    "/usr/lib/{arch}-linux-gnu/libopenblas.so.0",
    "/usr/lib64/libopenblas.so.0",
    "/usr/lib/libopenblas.so.0",
)
INSTALL_HINT = (
    "install OpenBLAS (Debian/Ubuntu: apt-get install libopenblas0-pthread) and import "
    "mlx_audio before mlx.core, or run with LD_PRELOAD=<path to libopenblas.so.0>"
)

loaded_path: str | None = None
"""Path of the OpenBLAS library this module loaded (None if it loaded none)."""


def find_openblas() -> str | None:
    """Return the path of an OpenBLAS shared library ($MLX_AUDIO_OPENBLAS first), or None."""
    override = os.environ.get("MLX_AUDIO_OPENBLAS")
    if override:
        return override if os.path.exists(override) else None
    arch = platform.machine()
    for pattern in _CANDIDATES:
        path = pattern.format(arch=arch)
        if os.path.exists(path):
            return path
    return ctypes.util.find_library("openblas")


def openblas_in_process() -> bool:
    """True when an OpenBLAS library is already mapped into this process (e.g. LD_PRELOAD)."""
    try:
        with open("/proc/self/maps") as maps:
            return any("libopenblas" in line for line in maps)
    except OSError:
        return False


def _uses_reference_blas() -> bool:
    """True when the installed MLX is a Linux CPU wheel (its ``mlx_cpu.libs`` bundles libblas)."""
    import importlib.util

    try:
        spec = importlib.util.find_spec("mlx")
    except (ImportError, ValueError):
        return False
    for location in (spec.submodule_search_locations or []) if spec else []:
        libs = os.path.join(os.path.dirname(location), "mlx_cpu.libs")
        if os.path.isdir(libs) and any(name.startswith("libblas") for name in os.listdir(libs)):
            return True
    return False


def ensure_fast_blas() -> str | None:
    """Load OpenBLAS globally if that can still take effect (before ``mlx.core`` is loaded).

    Silent: nothing is printed or warned here (imports must not warn); when it could not help,
    :func:`slow_blas_reason` says why and :func:`report_slow_blas` tells the user once, through
    ``logging``, when training starts. Returns the path loaded, if any. Safe to call many times.
    """
    global loaded_path, _reason
    if loaded_path is not None or not sys.platform.startswith("linux"):
        return loaded_path
    if os.environ.get("MLX_AUDIO_NO_OPENBLAS") or openblas_in_process():
        return None
    if not _uses_reference_blas():
        return None
    if "mlx.core" in sys.modules:
        _reason = "mlx.core was imported before mlx_audio, so it keeps its bundled reference BLAS"
        return None
    path = find_openblas()
    if path is None:
        _reason = "no OpenBLAS library was found on this machine"
        return None
    try:
        ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL)
    except OSError as error:
        _reason = f"loading {path} failed ({error})"
        return None
    loaded_path = path
    _reason = None
    return path


_reason: str | None = None
_reported = False


def slow_blas_reason() -> str | None:
    """Why MLX runs on its slow reference BLAS in this process (None when it does not)."""
    if _reason is None or openblas_in_process():
        return None
    return _reason


def report_slow_blas(logger_name: str = "mlx_audio") -> bool:
    """Log once (a ``logging`` warning) that CPU matrix products run on reference BLAS, with the
    fix. Call when CPU work starts; returns whether it logged."""
    global _reported
    reason = slow_blas_reason()
    if reason is None or _reported:
        return False
    _reported = True
    logging.getLogger(logger_name).warning(
        "MLX on Linux CPU is using its slow reference BLAS (%s); matrix products run ~10x slower. "
        "To fix: %s. Silence with MLX_AUDIO_NO_OPENBLAS=1.",
        reason,
        INSTALL_HINT,
    )
    return True


_SET_THREADS = (
    "openblas_set_num_threads",
    "scipy_openblas_set_num_threads64_",
    "openblas_set_num_threads64_",
    "scipy_openblas_set_num_threads",
)


def limit_blas_threads(count: int = 1) -> int:
    """Set every loaded OpenBLAS (numpy's bundled one included) to ``count`` threads.

    DataLoader workers call this, as torch sets one intra-op thread per worker: N workers each
    running a multi-threaded BLAS on the same cores thrash. Returns how many libraries it set.
    """
    try:
        with open("/proc/self/maps") as maps:
            paths = {line.split()[-1] for line in maps if "openblas" in line and "/" in line}
    except OSError:
        return 0
    done = 0
    for path in paths:
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for symbol in _SET_THREADS:
            setter = getattr(lib, symbol, None)
            if setter is not None:
                setter(ctypes.c_int(count))
                done += 1
                break
    return done
