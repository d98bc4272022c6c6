"""Collation (numpy, runs in workers) and conversion to ``mx.array`` (main process).

``default_collate`` follows torch's rules but returns numpy: arrays are stacked, Python ints
and floats become int32 / float32 arrays (MLX's defaults), bools a bool array, strings stay as
they came (a batch's list; a tuple where they come from a field of tuple samples, as torch's),
and tuples (as lists), namedtuples, lists and dicts are collated element by element,
keeping their types where they can be rebuilt (torch's rule). ``default_convert`` (no
batching) leaves Python scalars alone and keeps numpy arrays for conversion to ``mx.array``.
"""

from __future__ import annotations

import collections.abc as abc
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from ._loader.tree import is_mlx_array, map_leaves, same_mapping, same_sequence

Allocator = Callable[[tuple[int, ...], Any], npt.NDArray[Any]]

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

    def __str__(self) -> str:  # plain text, also for the KeyError flavour
        return str(self.args[0]) if self.args else ""


class CollateTypeError(CollateError, TypeError):
    """A value default_collate does not handle (None, objects, mixed types): a TypeError."""


class CollateKeyError(CollateError, KeyError):
    """A dict sample without a key the first sample has: a KeyError, as in torch."""


def _where(path: str) -> str:
    return f" at {path}" if path else ""


def _check_kinds(batch: list[Any], path: str, allowed: tuple[type, ...], name: str) -> None:
    """Every value is one of ``allowed`` (never silently coerced), else name who is not."""
    for position, value in enumerate(batch):
        if not isinstance(value, allowed) or (
            bool not in allowed and isinstance(value, (bool, np.bool_))
        ):
            raise CollateTypeError(
                f"cannot collate{_where(path)}: {{other}} has {type(value).__name__} {value!r:.40} where "
                f"{{first}} has {name}; return one type per field (or pass a collate_fn)",
                positions=(0, position),
                path=path,
            )


def _stack_arrays(batch: list[np.ndarray], path: str, alloc: Allocator | None) -> np.ndarray:
    first = batch[0].shape
    for position, array in enumerate(batch):
        if not isinstance(array, np.ndarray) or array.dtype.kind in "OSUa":
            if not isinstance(array, np.ndarray):
                kind = f"a {type(array).__name__}"
            elif array.dtype == object:
                kind = "an object-dtype array"
            else:
                kind = f"a string array ({array.dtype})"
            versus = " where {first} has an array" if position else ""
            raise CollateTypeError(
                f"cannot collate{_where(path)}: {{other}} has {kind}{versus}; "
                "default_collate stacks numeric arrays (pass a collate_fn for anything else)",
                positions=(0, position),
                path=path,
            )
        if array.shape != first:
            where = f" at {path}" if path else ""
            raise CollateError(
                f"cannot stack samples{where}: {{other}} has shape {array.shape} but "
                f"{{first}} has shape {first} (pad or crop samples to one shape: PadCollate, "
                "BucketBatchSampler, RandomCrop/PadOrCrop; or pass a collate_fn)",
                positions=(0, position),
                path=path,
            )
    if alloc is None:
        return np.stack(batch)
    return np.stack(batch, out=alloc((len(batch), *first), np.result_type(*batch)))


def _stack_mlx(batch: list[Any], path: str, alloc: Allocator | None) -> Any:
    """``mx.array`` samples: stacked by MLX in the main process (they stay on the device);
    in a worker process converted to numpy, stacked into shared memory, and turned back into
    ``mx.array`` in the main process."""
    if alloc is None:
        import mlx.core as mx

        shapes = {tuple(a.shape) for a in batch}
        if len(shapes) > 1:
            return _stack_arrays([np.asarray(a) for a in batch], path, None)  # the clear error
        return mx.stack(batch)
    return _stack_arrays([np.asarray(a) for a in batch], path, alloc)


def default_collate(batch: list[Any]) -> Any:
    """Merge a list of samples into a batch of numpy arrays (see the module docstring)."""
    return collate_into(batch, None)


def collate_into(batch: Sequence[Any], alloc: Allocator | None, _path: str = "") -> Any:
    """:func:`default_collate` that stacks arrays into buffers from ``alloc(shape, dtype)``
    (workers pass shared memory, so a batch is written once, in place)."""
    given = batch
    if not isinstance(batch, list):
        batch = list(batch)
    if not batch:
        raise CollateError("cannot collate an empty batch ({first})")
    elem = batch[0]
    if is_mlx_array(elem):
        return _stack_mlx(batch, _path, alloc)
    if isinstance(elem, np.ndarray):
        return _stack_arrays(batch, _path, alloc)
    if isinstance(elem, (bool, np.bool_)):
        _check_kinds(batch, _path, (bool, np.bool_), "a bool")
        return np.asarray(batch, dtype=np.bool_)
    if isinstance(elem, np.generic):
        _check_kinds(batch, _path, (np.generic, int, float), f"a numpy {elem.dtype}")
        return np.asarray(batch, dtype=elem.dtype)
    if isinstance(elem, (int, float)):
        _check_kinds(batch, _path, (int, float, np.integer, np.floating), type(elem).__name__)
        if any(isinstance(v, (float, np.floating)) for v in batch):
            return np.asarray(batch, dtype=np.float32)  # ints and floats mixed: floats, as torch
        return _ints(batch)
    if isinstance(elem, (str, bytes)):  # as torch: the values as they came (a tuple from a
        return given if isinstance(given, tuple) else batch  # transposed sample, else a list)
    if isinstance(elem, abc.Mapping):
        for position, sample in enumerate(batch):
            missing = [
                key for key in elem if not isinstance(sample, abc.Mapping) or key not in sample
            ]
            if missing:
                raise CollateKeyError(
                    f"cannot collate{_where(_path)}: {{other}} has no key {missing[0]!r} that {{first}} has",
                    positions=(0, position),
                    path=_path,
                )
        return same_mapping(
            elem,
            {
                key: collate_into([s[key] for s in batch], alloc, f"{_path}[{key!r}]")
                for key in elem
            },
        )
    if isinstance(elem, tuple) and hasattr(elem, "_fields"):
        return type(elem)(
            *(collate_into(s, alloc, f"{_path}.{f}") for f, s in zip(elem._fields, zip(*batch)))
        )
    if isinstance(elem, abc.Sequence):
        size = len(elem)
        for position, sample in enumerate(batch):
            if len(sample) != size:
                raise CollateError(
                    f"each element in list of batch should be of equal size: cannot collate"
                    f"{' ' + _path if _path else ''}: {{other}} has "
                    f"{len(sample)} elements but {{first}} has {size}",
                    positions=(0, position),
                    path=_path,
                )
        columns = [
            collate_into(column, alloc, f"{_path}[{i}]") for i, column in enumerate(zip(*batch))
        ]
        if isinstance(elem, tuple):
            return columns  # a list for tuples, as torch's default_collate
        return same_sequence(elem, columns)
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


def default_convert(data: Any) -> Any:
    """An unbatched sample (``batch_size=None``) as torch converts it: numpy arrays and scalars
    are kept for conversion to ``mx.array`` (string and object arrays stay as they are), Python
    scalars and strings stay, tuples become lists and other containers keep their types."""
    if isinstance(data, abc.Mapping):
        return same_mapping(data, {key: default_convert(data[key]) for key in data})
    if isinstance(data, tuple) and hasattr(data, "_fields"):
        return type(data)(*(default_convert(d) for d in data))
    if isinstance(data, tuple):
        return [default_convert(d) for d in data]
    if isinstance(data, abc.Sequence) and not isinstance(data, (str, bytes)):
        return same_sequence(data, [default_convert(d) for d in data])
    return data


def to_mlx(tree: Any) -> Any:
    """numpy arrays and scalars in a tree -> ``mx.array`` (containers keep their types; Python
    scalars, strings and other objects stay as they are)."""
    import mlx.core as mx

    def convert(leaf: Any) -> Any:
        if isinstance(leaf, np.ndarray) and leaf.dtype.kind not in "OSUaV":
            return mx.array(leaf)
        if isinstance(leaf, (np.number, np.bool_)):
            return mx.array(leaf)  # type: ignore[arg-type]
        return leaf  # Python scalars, strings and anything else as they are (torch)

    return map_leaves(convert, tree)
