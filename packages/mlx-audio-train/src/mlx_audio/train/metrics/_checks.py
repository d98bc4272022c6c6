"""Argument checks and input formatting shared by the metrics (torchmetrics' rules and words)."""

from __future__ import annotations

import mlx.core as mx

TASKS = ("binary", "multiclass", "multilabel")


def check_task(
    owner: str, task: str, num_classes: int | None, num_labels: int | None
) -> tuple[str, int]:
    """``(task, width)``: the number of classes (multiclass), labels (multilabel) or 1."""
    if task not in TASKS:
        raise ValueError(f"{owner}: task must be one of {TASKS}, got {task!r}")
    if task == "multiclass":
        if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 2:
            raise ValueError(
                f"{owner}: task='multiclass' needs num_classes, an int >= 2, got {num_classes!r}"
            )
        return task, num_classes
    if task == "multilabel":
        if not isinstance(num_labels, int) or isinstance(num_labels, bool) or num_labels < 1:
            raise ValueError(
                f"{owner}: task='multilabel' needs num_labels, an int >= 1, got {num_labels!r}"
            )
        return task, num_labels
    return task, 1


def check_average(owner: str, average: str | None, allowed: tuple[str | None, ...]) -> str:
    if average not in allowed:
        raise ValueError(f"{owner}: average must be one of {allowed}, got {average!r}")
    return "none" if average is None else average


def check_shapes(owner: str, task: str, width: int, preds: mx.array, target: mx.array) -> None:
    """The shapes torchmetrics accepts: binary ``(N, ...)`` both; multiclass preds ``(N, C, ...)``
    scores or ``(N, ...)`` labels with target ``(N, ...)``; multilabel ``(N, L, ...)`` both."""
    p, t = tuple(preds.shape), tuple(target.shape)
    if task == "multiclass":
        ok = p == t or (len(p) == len(t) + 1 and p[0] == t[0] and p[1] == width and p[2:] == t[1:])
        want = f"preds (N, {width}, ...) scores or (N, ...) labels, and target (N, ...)"
    elif task == "multilabel":
        ok = p == t and len(p) >= 2 and p[1] == width
        want = f"preds and target of one shape (N, {width}, ...)"
    else:
        ok = p == t
        want = "preds and target of one shape (N, ...)"
    if not ok:
        raise ValueError(f"{owner}: expected {want}; got preds {p} and target {t}")
    if mx.issubdtype(target.dtype, mx.floating):
        raise ValueError(f"{owner}: target must hold integer labels, got dtype {target.dtype}")


def normalize(preds: mx.array, how: str, axis: int = 1) -> mx.array:
    """torchmetrics' ``normalize_logits_if_needed``: scores outside [0, 1] are logits (sigmoid
    or softmax over ``axis``); decided on the device, per batch."""
    preds = preds.astype(mx.float32)
    outside = mx.any(mx.logical_or(preds < 0, preds > 1))
    done = mx.sigmoid(preds) if how == "sigmoid" else mx.softmax(preds, axis=axis)
    return mx.where(outside, done, preds)


def safe_divide(num: mx.array, denom: mx.array, zero_division: float = 0.0) -> mx.array:
    num = num.astype(mx.float32)
    denom = denom.astype(mx.float32)
    return mx.where(denom != 0, num / mx.where(denom != 0, denom, 1), zero_division)


def classes_last(x: mx.array) -> mx.array:
    """``(N, C, ...)`` -> ``(N * ..., C)``."""
    if x.ndim > 2:
        x = mx.moveaxis(x, 1, -1)
    return x.reshape(-1, x.shape[-1])
