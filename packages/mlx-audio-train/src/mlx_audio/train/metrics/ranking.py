"""Ranking metrics with torchmetrics' names and semantics, exact (``thresholds=None``):
``AveragePrecision`` (mAP for multi-label, AudioSet-style with ``average="macro"``) and
``AUROC``. Their states are the scores and targets seen ("cat" states, gathered across ranks);
the curves are computed on the device, every label at once (one sort per ``compute``)."""

from __future__ import annotations

import warnings
from typing import Any

import mlx.core as mx

from ._checks import check_average, check_shapes, check_task, classes_last, normalize, safe_divide
from .base import Metric, tracing


class _Ranking(Metric):
    def __init__(
        self,
        task: str,
        thresholds: Any = None,
        num_classes: int | None = None,
        num_labels: int | None = None,
        average: str | None = "macro",
        ignore_index: int | None = None,
        validate_args: bool = True,
        sync_on_compute: bool = True,
    ) -> None:
        super().__init__(sync_on_compute=sync_on_compute)
        owner = type(self).__name__
        self.task, self.width = check_task(owner, task, num_classes, num_labels)
        allowed: tuple[str | None, ...] = ("macro", "weighted", "none", None)
        if self.task == "multilabel":
            allowed = ("micro", *allowed)
        self.average = check_average(owner, average, allowed)
        if thresholds is not None:
            raise ValueError(
                f"{owner}: only thresholds=None (the exact curve) is supported here, got {thresholds!r}"
            )
        self.ignore_index = ignore_index
        self.validate_args = validate_args
        columns = 1 if self.task == "binary" else self.width
        self.add_state("preds", [], "cat", row_shape=(columns,))
        self.add_state(
            "target", [], "cat", row_shape=() if self.task == "multiclass" else (columns,)
        )

    def _contribution(self, preds: mx.array, target: mx.array) -> dict[str, mx.array]:
        preds, target = mx.array(preds), mx.array(target)
        if self.validate_args:
            check_shapes(type(self).__name__, self.task, self.width, preds, target)
            if not mx.issubdtype(preds.dtype, mx.floating):
                raise ValueError(
                    f"{type(self).__name__}: preds must be floating scores, got dtype {preds.dtype}"
                )
        if self.task == "multiclass":
            return {
                "preds": classes_last(normalize(preds, "softmax", axis=1)),
                "target": target.reshape(-1).astype(mx.int32),
            }
        preds = normalize(preds, "sigmoid")
        if self.task == "multilabel":
            return {"preds": classes_last(preds), "target": classes_last(target).astype(mx.int32)}
        return {"preds": preds.reshape(-1, 1), "target": target.reshape(-1, 1).astype(mx.int32)}

    def _columns(self, states: dict[str, mx.array]) -> tuple[mx.array, mx.array, mx.array]:
        """``(scores, positives, weights)``, each ``(N, K)``: one column per binary problem."""
        preds, target = states["preds"], states["target"]
        if preds is None or preds.shape[0] == 0:
            raise ValueError(f"{type(self).__name__}.compute() called before any update")
        ignore = self.ignore_index if self.ignore_index is not None else -(2**31)
        if self.task == "multiclass":
            valid = (target != ignore)[:, None] * mx.ones((1, self.width))
            positive = target[:, None] == mx.arange(self.width)[None]
        else:
            valid = target != ignore
            positive = target == 1
        if self.task == "multilabel" and self.average == "micro":
            preds, positive, valid = (x.reshape(-1, 1) for x in (preds, positive, valid))
        return preds, positive.astype(mx.float32), valid.astype(mx.float32)

    def _reduce(self, per: mx.array, positive: mx.array, weight: mx.array) -> mx.array:
        if self.task == "binary" or (self.task == "multilabel" and self.average == "micro"):
            return per[0]
        if self.average == "none":
            return per
        keep = mx.logical_not(mx.isnan(per))
        if not tracing() and not bool(mx.all(keep).item()):  # no host sync inside a step
            warnings.warn(
                f"{type(self).__name__} for one or more classes was `nan`. Ignoring these classes "
                f"in {self.average}-average",
                UserWarning,
                stacklevel=3,
            )
        values = mx.where(keep, per, 0.0)
        if self.average == "macro":
            return safe_divide(mx.sum(values), mx.sum(keep))
        support = mx.sum(positive * weight, axis=0) * keep
        return mx.sum(values * safe_divide(support, mx.sum(support)))


def _sorted_counts(
    scores: mx.array, positive: mx.array, weight: mx.array
) -> tuple[mx.array, mx.array, mx.array]:
    """Per column, at each distinct score from high to low: the weighted true and false
    positives at or above it (``tps``, ``fps``) and ``last``: where a run of equal scores ends
    (torchmetrics' ``_binary_clf_curve``; other positions are not points of the curve)."""
    order = mx.argsort(-scores, axis=0)
    s = mx.take_along_axis(scores, order, axis=0)
    p = mx.take_along_axis(positive, order, axis=0)
    w = mx.take_along_axis(weight, order, axis=0)
    tps = mx.cumsum(p * w, axis=0)
    fps = mx.cumsum((1 - p) * w, axis=0)
    ends = s[1:] != s[:-1]
    last = mx.concatenate([ends, mx.ones((1, s.shape[1]), dtype=mx.bool_)], axis=0)
    return tps, fps, last


def _previous(values: mx.array, last: mx.array) -> mx.array:
    """At each position, ``values`` at the previous curve point (0 before the first); exact
    because the counts never decrease."""
    held = mx.cummax(mx.where(last, values, 0.0), axis=0)
    return mx.concatenate([mx.zeros((1, values.shape[1])), held[:-1]], axis=0)


class AveragePrecision(_Ranking):
    """torchmetrics' ``AveragePrecision``: the area under the precision-recall curve as
    ``sum_n (R_n - R_{n-1}) P_n`` at every distinct score. Multilabel ``average="macro"`` is
    the AudioSet mAP. As torchmetrics: a multilabel label (or binary problem) without positives
    scores 0 and counts in the average; a multiclass class without positives is NaN and is
    left out of it (with torchmetrics' warning)."""

    def _compute(self, states: dict[str, mx.array]) -> mx.array:
        scores, positive, weight = self._columns(states)
        tps, fps, last = _sorted_counts(scores, positive, weight)
        total = tps[-1]
        precision = safe_divide(tps, tps + fps)
        gain = mx.where(last, (tps - _previous(tps, last)) * precision, 0.0)
        # torchmetrics: a class without positives is NaN for multiclass (left out of the
        # average), 0 for binary and multilabel (counted in it)
        empty = mx.nan if self.task == "multiclass" else 0.0
        per = mx.where(total > 0, mx.sum(gain, axis=0) / mx.where(total > 0, total, 1), empty)
        return self._reduce(per, positive, weight)


class AUROC(_Ranking):
    """torchmetrics' ``AUROC``: the area under the ROC curve (trapezoids through every distinct
    score). As torchmetrics, a problem without positives (or without negatives) has a zero
    true (false) positive rate, so its area is 0."""

    def __init__(self, task: str, max_fpr: float | None = None, **kwargs: Any) -> None:
        if max_fpr is not None:
            raise ValueError(
                f"{type(self).__name__}: max_fpr is not supported here, got {max_fpr!r}"
            )
        super().__init__(task, **kwargs)

    def _compute(self, states: dict[str, mx.array]) -> mx.array:
        scores, positive, weight = self._columns(states)
        tps, fps, last = _sorted_counts(scores, positive, weight)
        tpr = safe_divide(tps, tps[-1:])
        fpr = safe_divide(fps, fps[-1:])
        area = (fpr - _previous(fpr, last)) * (tpr + _previous(tpr, last)) / 2
        per = mx.sum(mx.where(last, area, 0.0), axis=0)
        return self._reduce(per, positive, weight)
