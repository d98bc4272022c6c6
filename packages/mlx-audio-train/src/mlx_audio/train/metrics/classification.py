"""Counting metrics with torchmetrics' names and semantics: ``Accuracy``, ``Precision``,
``Recall``, ``F1Score``, ``FBetaScore``, ``ConfusionMatrix`` (task ``"binary"``,
``"multiclass"`` or ``"multilabel"``). Their states are counts on the device (a confusion matrix
for multiclass, true/false positives/negatives per label otherwise), summed across ranks."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import mlx.core as mx

from ._checks import (
    check_average,
    check_shapes,
    check_task,
    classes_last,
    normalize,
    safe_divide,
)
from .base import Metric

_AVERAGES = ("micro", "macro", "weighted", "none", None)


class _StatScores(Metric):
    """The counts every classification metric here derives from."""

    def __init__(
        self,
        task: str,
        threshold: float = 0.5,
        num_classes: int | None = None,
        num_labels: int | None = None,
        average: str | None = "micro",
        multidim_average: str = "global",
        top_k: int | None = 1,
        ignore_index: int | None = None,
        validate_args: bool = True,
        zero_division: float = 0.0,
        sync_on_compute: bool = True,
    ) -> None:
        super().__init__(sync_on_compute=sync_on_compute)
        owner = type(self).__name__
        self.task, self.width = check_task(owner, task, num_classes, num_labels)
        self.average = check_average(owner, average, _AVERAGES)
        if multidim_average != "global":
            raise ValueError(f"{owner}: only multidim_average='global' is supported here")
        top_k = 1 if top_k is None else top_k
        if not isinstance(top_k, int) or isinstance(top_k, bool) or top_k < 1:
            raise ValueError(f"{owner}: top_k must be an int >= 1, got {top_k!r}")
        if top_k > 1 and (self.task != "multiclass" or top_k > self.width):
            raise ValueError(
                f"{owner}: top_k={top_k} needs task='multiclass' and top_k <= num_classes"
            )
        if not 0.0 <= float(threshold) <= 1.0:
            raise ValueError(f"{owner}: threshold must be in [0, 1], got {threshold!r}")
        self.threshold = float(threshold)
        self.top_k = top_k
        self.ignore_index = ignore_index
        self.validate_args = validate_args
        self.zero_division = float(zero_division)
        if self.task == "multiclass":
            self.add_state("confmat", mx.zeros((self.width, self.width), mx.int32), "sum")
        else:
            for name in ("tp", "fp", "tn", "fn"):
                shape = (self.width,) if self.task == "multilabel" else ()
                self.add_state(name, mx.zeros(shape, mx.int32), "sum")

    # -- counting --------------------------------------------------------------------------------
    def _contribution(self, preds: mx.array, target: mx.array) -> dict[str, mx.array]:
        preds, target = mx.array(preds), mx.array(target)
        if self.validate_args:
            check_shapes(type(self).__name__, self.task, self.width, preds, target)
        if self.task == "multiclass":
            return {"confmat": self._confmat(preds, target)}
        if mx.issubdtype(preds.dtype, mx.floating):
            preds = normalize(preds, "sigmoid") > self.threshold
        if self.task == "multilabel":
            preds, target = classes_last(preds), classes_last(target)
        valid = target != (self.ignore_index if self.ignore_index is not None else -(2**31))
        p = preds.astype(mx.bool_)
        t = target == 1
        axis = 0 if self.task == "multilabel" else None
        count = lambda x: mx.sum(mx.logical_and(x, valid), axis=axis).astype(mx.int32)  # noqa: E731
        return {
            "tp": count(mx.logical_and(p, t)),
            "fp": count(mx.logical_and(p, mx.logical_not(t))),
            "tn": count(mx.logical_and(mx.logical_not(p), mx.logical_not(t))),
            "fn": count(mx.logical_and(mx.logical_not(p), t)),
        }

    def _confmat(self, preds: mx.array, target: mx.array) -> mx.array:
        c = self.width
        if preds.ndim == target.ndim + 1:
            target = target.reshape(-1)
            scores = classes_last(preds).astype(mx.float32)
            labels = mx.argmax(scores, axis=-1)
            if self.top_k > 1:  # torchmetrics' _refine_preds_oh: the target if in the top k
                top = mx.argpartition(-scores, self.top_k - 1, axis=-1)[:, : self.top_k]
                hit = mx.any(top == target[:, None], axis=-1)
                labels = mx.where(hit, target, labels)
        else:
            target, labels = target.reshape(-1), preds.reshape(-1)
        valid = target != (self.ignore_index if self.ignore_index is not None else -(2**31))
        rows = (target[:, None] == mx.arange(c)[None]) * valid[:, None]
        cols = labels[:, None] == mx.arange(c)[None]
        return mx.matmul(rows.astype(mx.float32).T, cols.astype(mx.float32)).astype(mx.int32)

    def _counts(self, states: dict[str, mx.array]) -> tuple[mx.array, ...]:
        if self.task != "multiclass":
            return states["tp"], states["fp"], states["tn"], states["fn"]
        confmat = states["confmat"]
        tp = mx.diagonal(confmat)
        fp = mx.sum(confmat, axis=0) - tp
        fn = mx.sum(confmat, axis=1) - tp
        tn = mx.sum(confmat) - (fp + fn + tp)
        return tp, fp, tn, fn

    def _score(
        self,
        states: dict[str, mx.array],
        fn: Callable[[mx.array, mx.array, mx.array, mx.array], mx.array],
        top_k: int | None = None,
    ) -> mx.array:
        """``fn(tp, fp, tn, fn)`` per class, averaged as ``self.average`` says."""
        tp, fp, tn, fn_ = self._counts(states)
        if self.task == "binary":
            return fn(tp, fp, tn, fn_)
        if self.average == "micro":
            return fn(mx.sum(tp), mx.sum(fp), mx.sum(tn), mx.sum(fn_))
        score = fn(tp, fp, tn, fn_)
        if self.average == "none":
            return score
        if self.average == "weighted":
            weights = (tp + fn_).astype(mx.float32)
        else:
            weights = mx.ones(score.shape)
            if self.task == "multiclass":  # torchmetrics: classes never seen nor predicted
                top_k = self.top_k if top_k is None else top_k
                unseen = (tp + fp + fn_ == 0) if top_k == 1 else (tp + fn_ == 0)
                weights = mx.where(unseen, 0.0, weights)
        return safe_divide(mx.sum(weights * score), mx.sum(weights))


class Accuracy(_StatScores):
    """torchmetrics' ``Accuracy``: the fraction of correct predictions (multiclass ``top_k``:
    the target among the k highest scores). ``average="micro"`` (default) counts over all
    samples, ``"macro"`` averages the per-class values (classes never seen nor predicted are
    left out), ``"weighted"`` weights them by support, ``"none"`` returns them."""

    def _compute(self, states: dict[str, mx.array]) -> mx.array:
        multilabel = self.task == "multilabel"
        if self.task == "binary" or (multilabel and self.average == "micro"):
            return self._score(
                states, lambda tp, fp, tn, fn: safe_divide(tp + tn, tp + tn + fp + fn)
            )
        if multilabel:
            return self._score(
                states, lambda tp, fp, tn, fn: safe_divide(tp + tn, tp + tn + fp + fn)
            )
        return self._score(states, lambda tp, fp, tn, fn: safe_divide(tp, tp + fn))


class Precision(_StatScores):
    """torchmetrics' ``Precision``: ``tp / (tp + fp)`` (``zero_division`` where undefined)."""

    def _compute(self, states: dict[str, mx.array]) -> mx.array:
        z = self.zero_division
        return self._score(states, lambda tp, fp, tn, fn: safe_divide(tp, tp + fp, z))


class Recall(_StatScores):
    """torchmetrics' ``Recall``: ``tp / (tp + fn)`` (``zero_division`` where undefined)."""

    def _compute(self, states: dict[str, mx.array]) -> mx.array:
        z = self.zero_division
        return self._score(states, lambda tp, fp, tn, fn: safe_divide(tp, tp + fn, z))


class FBetaScore(_StatScores):
    """torchmetrics' ``FBetaScore``: ``(1 + b^2) tp / ((1 + b^2) tp + b^2 fn + fp)``."""

    def __init__(self, task: str, beta: float = 1.0, **kwargs: Any) -> None:
        if not isinstance(beta, (int, float)) or isinstance(beta, bool) or beta <= 0:
            raise ValueError(f"{type(self).__name__}: beta must be a float > 0, got {beta!r}")
        super().__init__(task, **kwargs)
        self.beta = float(beta)

    def _compute(self, states: dict[str, mx.array]) -> mx.array:
        b2, z = self.beta**2, self.zero_division
        return self._score(
            states,
            lambda tp, fp, tn, fn: safe_divide((1 + b2) * tp, (1 + b2) * tp + b2 * fn + fp, z),
            top_k=1,  # torchmetrics' _fbeta_reduce weighs classes as for top_k=1, whatever top_k
        )


class F1Score(FBetaScore):
    """torchmetrics' ``F1Score``: the harmonic mean of precision and recall (``beta=1``)."""

    def __init__(self, task: str, **kwargs: Any) -> None:
        super().__init__(task, beta=1.0, **kwargs)


class ConfusionMatrix(_StatScores):
    """torchmetrics' ``ConfusionMatrix``: rows are targets, columns predictions; binary
    ``(2, 2)``, multiclass ``(C, C)``, multilabel ``(L, 2, 2)``. ``normalize``: ``"true"``
    (rows sum to 1), ``"pred"`` (columns), ``"all"`` or None (counts)."""

    def __init__(
        self,
        task: str,
        threshold: float = 0.5,
        num_classes: int | None = None,
        num_labels: int | None = None,
        normalize: str | None = None,
        ignore_index: int | None = None,
        validate_args: bool = True,
        sync_on_compute: bool = True,
    ) -> None:
        if normalize not in ("true", "pred", "all", "none", None):
            raise ValueError(
                "Argument `normalize` needs to one of the following: "
                f"('true', 'pred', 'all', 'none', None), got {normalize!r}"
            )
        super().__init__(
            task,
            threshold=threshold,
            num_classes=num_classes,
            num_labels=num_labels,
            ignore_index=ignore_index,
            validate_args=validate_args,
            sync_on_compute=sync_on_compute,
        )
        self.normalize = None if normalize == "none" else normalize

    def _compute(self, states: dict[str, mx.array]) -> mx.array:
        if self.task == "multiclass":
            confmat = states["confmat"]
        else:
            tp, fp, tn, fn = self._counts(states)
            confmat = mx.stack([mx.stack([tn, fp], -1), mx.stack([fn, tp], -1)], -2)
        if self.normalize is None:
            return confmat.astype(mx.int32)
        confmat = confmat.astype(mx.float32)
        if self.normalize == "true":
            confmat = confmat / mx.sum(confmat, axis=-1, keepdims=True)
        elif self.normalize == "pred":
            confmat = confmat / mx.sum(confmat, axis=-2, keepdims=True)
        else:
            confmat = confmat / mx.sum(confmat, axis=(-2, -1), keepdims=True)
        return mx.where(mx.isnan(confmat), 0.0, confmat)
