"""``mlx.utils.tree_flatten`` typed for the list form this package uses (mlx annotates a union)."""

from __future__ import annotations

from typing import Any, cast

from mlx.utils import tree_flatten


def flatten(tree: Any) -> list[tuple[str, Any]]:
    """``[(dotted.name, leaf), ...]`` of a nested dict/list tree of arrays."""
    return cast("list[tuple[str, Any]]", tree_flatten(tree))
