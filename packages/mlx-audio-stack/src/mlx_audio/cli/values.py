"""Values from YAML and flags checked against the settings' types, with errors naming the key
and what is valid (one line each): the checking half of the command line's schema (``config``)."""

from __future__ import annotations

import types
import typing
from typing import Any, Literal, get_args, get_origin

_SCALARS = (int, float, str, bool, type(None))


def expressible(kind: Any) -> bool:
    """Whether YAML and flags can give a value of ``kind`` (what :func:`check` checks)."""
    origin = get_origin(kind)
    if origin is Literal:
        return True
    if origin in (typing.Union, types.UnionType):
        return all(expressible(a) for a in get_args(kind))
    if origin is list:
        return expressible(get_args(kind)[0])
    return kind in _SCALARS


class ConfigError(ValueError):
    """A setting that is unknown, of the wrong type or not one of the valid values."""


_YAML_NAMES = {int: "int", float: "float", str: "str", bool: "bool", type(None): "null"}


def describe(kind: Any) -> str:
    """A type as YAML names it: ``int``, ``str | null``, ``list of int``, ``one of 'a', 'b'``."""
    origin = get_origin(kind)
    if origin is Literal:
        return "one of " + ", ".join(repr(v) for v in get_args(kind))
    if origin in (typing.Union, types.UnionType):
        return " | ".join(describe(a) for a in get_args(kind))
    if origin is list:
        return f"list of {describe(get_args(kind)[0])}"
    return _YAML_NAMES.get(kind, getattr(kind, "__name__", str(kind)))


def yaml_text(value: Any) -> str:
    """``value`` as written in YAML: ``null``, ``true``, ``[16, 32]``, ``runs/mlx-audio``."""
    import yaml

    text: str = yaml.safe_dump(value, default_flow_style=True, width=1000)
    return text.removesuffix("\n").removesuffix("\n...").strip()


def check(key: str, kind: Any, value: Any) -> Any:
    """``value`` as a ``kind`` (ints widened to float, a flag's ``a,b`` as a list), else a
    :class:`ConfigError` naming ``key``, what was given and what is valid."""
    origin = get_origin(kind)
    args = get_args(kind)
    if origin is Literal:
        if value not in args:
            raise ConfigError(
                f"{key}: {value!r} is not valid; valid values: {', '.join(repr(a) for a in args)}"
            )
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        if len(inner) == 1:
            return check(key, inner[0], value)
        exact = [a for a in inner if type(value) is a]  # int | float: 2 stays an int
        for kind_ in exact + [a for a in inner if a not in exact]:
            try:
                return check(key, kind_, value)
            except ConfigError:
                pass
        raise ConfigError(
            f"{key}: expected {describe(kind)}, got {value!r} ({type(value).__name__})"
        )
    if origin is list:
        if isinstance(value, str) and "," in value:  # a flag's `a,b,c`: a list of YAML values
            import yaml

            value = [yaml.safe_load(part.strip()) for part in value.split(",")]
        if isinstance(value, _SCALARS) and value is not None:  # one value: a list of one
            value = [value]
        if not isinstance(value, list):
            raise ConfigError(f"{key}: expected a list ({describe(kind)}), got {value!r}")
        return [check(f"{key}[{i}]", args[0], v) for i, v in enumerate(value)]
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if kind is float and isinstance(value, str):  # YAML 1.1 reads 3e-3 (no dot) as a string
        try:
            return float(value)
        except ValueError:
            pass
    if kind is str and isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        got = "no value" if value is None else f"{value!r} ({type(value).__name__})"
        raise ConfigError(f"{key}: expected {kind.__name__}, got {got}")
    return value


def yaml_error(error: Exception) -> tuple[str, str]:
    """(``", line L, column C"`` or ``""``, the problem) of a YAML syntax error, for one line."""
    mark = getattr(error, "problem_mark", None)
    where = f", line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    return where, getattr(error, "problem", None) or str(error).splitlines()[0]
