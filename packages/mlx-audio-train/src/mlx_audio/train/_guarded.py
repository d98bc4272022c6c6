"""Pieces of the guarded update (NOTE [non-finite steps] and NOTE [one fused guarded update] in
``_step.py``): the gradients' global norm, and the selections that keep a bad step's update out
of the weights and the optimizer state."""

from __future__ import annotations

from typing import Any

import mlx.core as mx

from ._kernels import sum_of_squares
from ._tree import flatten

__all__ = ["clip_scale", "global_norm", "select_in_place", "state_at", "tied"]


def global_norm(grads: Any) -> mx.array:
    """The gradients' global L2 norm, squares summed in float32 (float16 would overflow): one
    custom kernel on CUDA, two per array elsewhere (NOTE [one kernel for the gradients' sum of
    squares] in ``_kernels.py``)."""
    return mx.sqrt(sum_of_squares([g for _, g in flatten(grads)]))


def clip_scale(norm: mx.array, clip: float | None) -> mx.array:
    """What the gradients are multiplied by to clip their global norm to ``clip`` (1 where it is
    within, or without clipping), NaN where the norm is not finite (the update is then skipped)."""
    bound = mx.array(1.0) if clip is None else mx.minimum(1.0, clip / (norm + 1e-6))
    return mx.where(mx.isfinite(norm), bound, mx.nan)


def tied(old: mx.array, own: Any) -> mx.array:
    """``old``, made to read the (selected) optimizer state arrays of its shape: an inert
    ``where(s == s, old, old)`` per array (NaN-safe: both branches are ``old``), so MLX fuses the
    weight's update, its state's and their selections into one kernel (NOTE [one fused guarded
    update])."""
    kept = old
    for _, value in flatten(own if isinstance(own, (dict, list)) else [own]):
        if isinstance(value, mx.array) and value.shape == old.shape:
            kept = mx.where(value == value, kept, old)
    return kept


def state_at(state: Any, path: str) -> Any:
    """The optimizer state kept for the parameter at ``path`` (``"layers.0.weight"``), or None
    where the state is not laid out like the parameters (``MultiOptimizer``: nothing is tied)."""
    node = state
    for part in path.split("."):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return None
    return node


def select_in_place(tree: Any, old: Any, keep_new: mx.array) -> None:
    """``tree[k] = where(keep_new, tree[k], old[k])`` for every array leaf, mutating the dicts
    and lists of ``tree`` themselves (the compiled step's captured state is those objects)."""
    items = tree.items() if isinstance(tree, dict) else enumerate(tree)
    for key, value in list(items):
        if isinstance(value, (dict, list)):
            select_in_place(value, old[key], keep_new)
        elif isinstance(value, mx.array) and value is not old[key]:  # unchanged: nothing to pick
            tree[key] = mx.where(keep_new, value, old[key])
