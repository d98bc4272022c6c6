"""One tree walker for batches: dicts, tuples (namedtuples kept), lists; leaves mapped."""

from __future__ import annotations

import collections.abc as abc
import copy
from collections.abc import Callable
from typing import Any


def is_mlx_array(value: Any) -> bool:
    """An ``mx.array``, recognised without importing MLX (this runs in workers). In a worker
    forked from a process that had loaded MLX, raises instead (see NOTE [MLX after fork])."""
    found = type(value).__module__ == "mlx.core" and type(value).__name__ == "array"
    if found and mlx_forbidden is not None:
        raise RuntimeError(mlx_forbidden)
    return found


# NOTE [MLX after fork]: MLX's worker threads do not survive fork(), so evaluating an array in
# a forked worker of a process that had loaded MLX waits forever. Such workers set this message
# and a sample holding an mx.array raises it instead of hanging.
mlx_forbidden: str | None = None


def forbid_mlx_functions(message: str) -> None:
    """In such a worker, every function of ``mlx.core`` and its submodules (``mx.ones``,
    ``mx.fft.rfft``, ``mx.eval``, ... and so every ``mlx.nn`` layer) raises ``message`` instead
    of building work that would wait forever. The ``mx.array`` type itself is left as it is."""
    import sys

    def refuse(name: str) -> Callable[..., Any]:
        def refused(*args: Any, **kwargs: Any) -> Any:
            raise RuntimeError(f"{message} (called mlx.core.{name})")

        return refused

    seen: set[int] = set()
    pending = [sys.modules["mlx.core"]]
    while pending:
        module = pending.pop()
        if id(module) in seen:
            continue
        seen.add(id(module))
        prefix = module.__name__.removeprefix("mlx.core").lstrip(".")
        for attr, value in list(vars(module).items()):
            if attr.startswith("_") or isinstance(value, type):
                continue
            if type(value).__name__ == "module" and value.__name__.startswith("mlx.core"):
                pending.append(value)
            elif callable(value):
                setattr(module, attr, refuse(f"{prefix}.{attr}" if prefix else attr))


def map_leaves(fn: Callable[[Any], Any], tree: Any) -> Any:
    """Rebuild ``tree`` with ``fn`` applied to every leaf (anything not a container).

    A list whose first item is a string is a leaf: collated strings stay a list of str.
    """
    if isinstance(tree, abc.Mapping):
        return same_mapping(tree, {k: map_leaves(fn, v) for k, v in tree.items()})
    if isinstance(tree, tuple) and hasattr(tree, "_fields"):
        return type(tree)(*(map_leaves(fn, v) for v in tree))
    if isinstance(tree, tuple):
        return tuple(map_leaves(fn, v) for v in tree)
    if isinstance(tree, list) and not (tree and isinstance(tree[0], (str, bytes))):
        return same_sequence(tree, [map_leaves(fn, v) for v in tree])
    return fn(tree)


def same_mapping(original: abc.Mapping[Any, Any], values: dict[Any, Any]) -> Any:
    """``values`` as a mapping of ``original``'s type where it can be built (torch's rule: a
    copy updated in place, else the type called on a dict, else a dict)."""
    if type(original) is dict:
        return values
    try:
        if isinstance(original, abc.MutableMapping):
            clone = copy.copy(original)
            clone.update(values)
            return clone
        return type(original)(values)  # type: ignore[call-arg]
    except TypeError:
        return values


def same_sequence(original: abc.Sequence[Any], values: list[Any]) -> Any:
    """``values`` as a sequence of ``original``'s type (torch's rule, as for mappings)."""
    if type(original) is list:
        return values
    try:
        if isinstance(original, abc.MutableSequence):
            clone = copy.copy(original)
            for i, value in enumerate(values):
                clone[i] = value
            return clone
        return type(original)(values)  # type: ignore[call-arg]
    except TypeError:
        return values
