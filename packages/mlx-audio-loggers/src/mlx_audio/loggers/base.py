"""The Logger protocol the Trainer calls, and the value handling every backend shares."""

from __future__ import annotations

import json
import os
import re
from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any

STATUSES = ("success", "failed", "interrupted")


def rank() -> int:
    """This process's rank in a distributed launch (``mlx.launch``, MPI), else 0."""
    for variable in ("MLX_RANK", "OMPI_COMM_WORLD_RANK", "PMI_RANK", "RANK"):
        value = os.environ.get(variable)
        if value is not None and value.strip().isdigit():
            return int(value)
    return 0


def to_scalar(value: Any, key: str = "value") -> float | int:
    """An ``mx.array``, numpy scalar or Python number as a Python number (NaN/inf kept)."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, (int, float)):
        return value
    size = getattr(value, "size", None)
    if size == 1 and hasattr(value, "item"):  # mx.array, numpy scalar or array of one element
        item = value.item()
        return int(item) if isinstance(item, bool) else item
    raise ValueError(
        f"metric {key!r} must be a scalar (Python number, numpy scalar or one-element mx.array), "
        f"got {type(value).__name__}{'' if size is None else f' with {size} elements'}"
    )


def scalars(metrics: Mapping[str, Any]) -> dict[str, float | int]:
    return {str(k): to_scalar(v, str(k)) for k, v in metrics.items()}


def flatten_params(params: Mapping[str, Any] | Any, separator: str = "/") -> dict[str, Any]:
    """Nested dicts flattened with ``/``; values that are not JSON scalars become strings.

    Accepts a mapping, an ``argparse.Namespace`` or a dataclass instance.
    """
    if not isinstance(params, Mapping):
        params = vars(params) if hasattr(params, "__dict__") else {"params": params}
    flat: dict[str, Any] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, Mapping):
            for k, v in value.items():
                walk(f"{prefix}{separator}{k}" if prefix else str(k), v)
        elif value is None or isinstance(value, (bool, int, float, str)):
            flat[prefix] = value
        elif hasattr(value, "item") and getattr(value, "size", None) == 1:
            flat[prefix] = value.item()
        else:
            flat[prefix] = str(value)

    walk("", params)
    return flat


def next_version(root: str) -> int:
    """The first N such that ``root/version_N`` does not exist yet."""
    taken = [
        int(m.group(1))
        for d in (os.listdir(root) if os.path.isdir(root) else [])
        if (m := re.fullmatch(r"version_(\d+)", d))
    ]
    return max(taken, default=-1) + 1


def dump_json(path: str, payload: Any) -> None:
    """Write JSON atomically (temporary file + rename): readers never see half a file."""
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump(payload, f, indent=2, sort_keys=True, allow_nan=True)
    os.replace(tmp, path)


class Logger(ABC):
    """What the Trainer calls. Subclasses write only on rank 0 (see :func:`rank`).

    ``log_metrics`` always receives the trainer's optimizer-step counter as ``step``;
    epoch-level metrics carry an ``epoch`` entry. ``finalize(status)`` is called once with
    ``"success"``, ``"failed"`` (an exception) or ``"interrupted"`` (Ctrl-C).
    """

    @property
    @abstractmethod
    def name(self) -> str | None: ...

    @property
    @abstractmethod
    def version(self) -> int | str | None: ...

    @property
    def save_dir(self) -> str | None:
        return None

    @property
    def log_dir(self) -> str | None:
        return self.save_dir

    @property
    def is_writer(self) -> bool:
        return rank() == 0

    @abstractmethod
    def log_hyperparams(self, params: Mapping[str, Any] | Any) -> None: ...

    @abstractmethod
    def log_metrics(self, metrics: Mapping[str, Any], step: int) -> None: ...

    @property
    def undelivered(self) -> str | None:
        """After :meth:`finalize`: what this logger could not deliver, why, and where it was
        kept instead; ``None`` when everything was written."""
        return getattr(self, "_undelivered", None)

    def save(self) -> None:  # noqa: B027  (optional hook)
        """Flush buffered data to storage."""

    def finalize(self, status: str = "success") -> None:
        """Close the run with ``status`` (one of ``success``, ``failed``, ``interrupted``)."""
        self._check_status(status)

    @staticmethod
    def _check_status(status: str) -> None:
        if status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {status!r}")

    @staticmethod
    def _check_step(step: Any) -> int:
        if isinstance(step, bool) or not isinstance(step, int) or step < 0:
            try:
                step = int(step)
            except (TypeError, ValueError):
                raise ValueError(f"step must be a non-negative int, got {step!r}") from None
            if step < 0:
                raise ValueError(f"step must be a non-negative int, got {step!r}")
        return step


class VersionedDir:
    """``save_dir/name/version_N`` bookkeeping shared by the file-based loggers."""

    _save_dir: str
    _name: str
    _version: int | str | None

    @property
    def name(self) -> str:
        return self._name

    @property
    def version(self) -> int | str:
        if self._version is None:
            self._version = next_version(os.path.join(self._save_dir, self._name))
        return self._version

    @property
    def save_dir(self) -> str:
        return self._save_dir

    @property
    def log_dir(self) -> str:
        version = self.version if isinstance(self.version, str) else f"version_{self.version}"
        return os.path.join(self._save_dir, self._name, version)
