"""Collation (numpy, runs in workers) and conversion to ``mx.array`` (main process).

``default_collate`` follows torch's rules but returns numpy: arrays are stacked, Python ints
and floats become int32 / float32 arrays (MLX's defaults), bools a bool array, strings a list
of str, and tuples, namedtuples, lists and dicts are collated element by element.
"""

from __future__ import annotations

import collections.abc as abc
from collections.abc import Callable
from typing import Any

import numpy as np

from ._tree import map_leaves

Allocator = Callable[[tuple, Any], np.ndarray]

__all__ = ["default_collate", "default_convert", "to_mlx", "CollateError", "CollateTypeError"]


class CollateError(ValueError, RuntimeError):
    """Samples that cannot be collated together.

    ``positions`` are the two offending offsets within the batch; the DataLoader re-renders the
    message with dataset indices in place of ``{first}`` and ``{other}``.
    """

    def __init__(self, template: str, positions: tuple[int, int] = (0, 0), path: str = "") -> None:
        self.template = template
        self.positions = positions
        self.path = path
        super().__init__(self.render(("sample 0", f"sample {positions[1]}")))

    def render(self, labels: tuple[str, str]) -> str:
        return self.template.format(first=labels[0], other=labels[1])


class CollateTypeError(CollateError, TypeError):
    """A value default_collate does not handle (None, objects): a TypeError, as in torch."""


def _stack_arrays(batch: list[np.ndarray], path: str, alloc: Allocator | None) -> np.ndarray:
    first = batch[0].shape
    for position, array in enumerate(batch):
        if array.shape != first:
            where = f" at {path}" if path else ""
            raise CollateError(
                f"cannot stack samples{where}: {{other}} has shape {array.shape} but "
                f"{{first}} has shape {first}",
                positions=(0, position),
                path=path,
            )
    if alloc is None:
        return np.stack(batch)
    return np.stack(batch, out=alloc((len(batch), *first), np.result_type(*batch)))


def default_collate(batch: list[Any]) -> Any:
    """Merge a list of samples into a batch of numpy arrays (see the module docstring)."""
    return collate_into(batch, None)


def collate_into(batch: list[Any], alloc: Allocator | None, _path: str = "") -> Any:
    """:func:`default_collate` that stacks arrays into buffers from ``alloc(shape, dtype)``
    (workers pass shared memory, so a batch is written once, in place)."""
    if not isinstance(batch, list):
        batch = list(batch)
    if not batch:
        raise CollateError("cannot collate an empty batch ({first})")
    elem = batch[0]
    if isinstance(elem, np.ndarray):
        return _stack_arrays(batch, _path, alloc)
    if isinstance(elem, (bool, np.bool_)):
        return np.asarray(batch, dtype=np.bool_)
    if isinstance(elem, np.generic):
        return np.asarray(batch, dtype=elem.dtype)
    if isinstance(elem, int):
        return _ints(batch)
    if isinstance(elem, float):
        return np.asarray(batch, dtype=np.float32)
    if isinstance(elem, (str, bytes)):
        return list(batch)
    if isinstance(elem, abc.Mapping):
        return {
            key: collate_into([s[key] for s in batch], alloc, f"{_path}[{key!r}]") for key in elem
        }
    if isinstance(elem, tuple) and hasattr(elem, "_fields"):
        return type(elem)(
            *(
                collate_into(list(s), alloc, f"{_path}.{f}")
                for f, s in zip(elem._fields, zip(*batch))
            )
        )
    if isinstance(elem, abc.Sequence):
        size = len(elem)
        for position, sample in enumerate(batch):
            if len(sample) != size:
                raise CollateError(
                    f"cannot collate{' ' + _path if _path else ''}: {{other}} has "
                    f"{len(sample)} elements but {{first}} has {size}",
                    positions=(0, position),
                    path=_path,
                )
        columns = [
            collate_into(list(column), alloc, f"{_path}[{i}]")
            for i, column in enumerate(zip(*batch))
        ]
        return columns  # a list for tuples too, as torch's default_collate
    if elem is None:
        raise CollateTypeError(
            f"cannot collate None{' at ' + _path if _path else ''} ({{first}}); return a value or pass a collate_fn"
        )
    raise CollateTypeError(
        f"default_collate cannot collate {type(elem).__name__}{' at ' + _path if _path else ''} ({{first}}); "
        "supported: numpy arrays and scalars, int, float, bool, str, and tuples, lists and "
        "dicts of those. Pass a collate_fn for anything else."
    )


def _ints(values: Any) -> np.ndarray:
    """Python ints as int32 (MLX's default), or int64 when a value does not fit."""
    try:
        return np.asarray(values, dtype=np.int32)
    except OverflowError:
        return np.asarray(values, dtype=np.int64)


def _convert_scalar(value: Any) -> Any:
    if isinstance(value, bool):
        return np.asarray(value)
    if isinstance(value, int):
        return _ints(value)
    if isinstance(value, float):
        return np.asarray(value, dtype=np.float32)
    return value


def default_convert(sample: Any) -> Any:
    """numpy conversion for unbatched samples (``batch_size=None``): Python scalars to arrays."""
    return map_leaves(_convert_scalar, sample)


def to_mlx(tree: Any) -> Any:
    """numpy tree -> ``mx.array`` tree (tuples stay tuples, dicts dicts, strings stay str)."""
    import mlx.core as mx

    def convert(leaf: Any) -> Any:
        if isinstance(leaf, (np.ndarray, np.generic, bool, int, float)):
            return mx.array(leaf)  # type: ignore[arg-type]
        return leaf

    return map_leaves(convert, tree)
