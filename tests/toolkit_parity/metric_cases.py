"""Shared by both sides of the metrics differential test: each case is a metric (torchmetrics'
class name and arguments) and the batches it is updated with (numpy, seeded). Runs under both
interpreters: imports only numpy and the standard library."""

from __future__ import annotations

import numpy as np


def _batches(task: str, width: int, seed: int, kind: str, n: int = 3, size: int = 16) -> list:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        if task == "binary":
            target = rng.integers(0, 2, size)
            preds = rng.standard_normal(size) if kind == "logits" else rng.random(size)
            if kind == "labels":
                preds = rng.integers(0, 2, size)
            if kind == "ties":
                preds = np.round(rng.random(size) * 4) / 4
        elif task == "multiclass":
            target = rng.integers(0, width, size)
            preds = rng.standard_normal((size, width))
            if kind == "absent":  # the last class never appears in the targets
                target = rng.integers(0, width - 1, size)
            if kind == "labels":
                preds = rng.integers(0, width, size)
            if kind == "probs":
                preds = np.exp(preds) / np.exp(preds).sum(1, keepdims=True)
        else:
            target = rng.integers(0, 2, (size, width))
            target[:, -1] = 0 if kind == "absent" else target[:, -1]  # a label without positives
            preds = (
                rng.standard_normal((size, width)) if kind != "probs" else rng.random((size, width))
            )
        if kind == "ignore":
            target = np.where(rng.random(target.shape) < 0.2, -1, target)
        out.append(
            (
                np.asarray(preds, np.float32 if preds.dtype.kind == "f" else np.int64),
                target.astype(np.int64),
            )
        )
    return out


MC = {"task": "multiclass", "num_classes": 5}
ML = {"task": "multilabel", "num_labels": 4}
BI = {"task": "binary"}

# name -> (class name, kwargs, (task, width, seed, kind))
CASES: dict[str, tuple[str, dict, tuple]] = {}
for cls in ("Accuracy", "Precision", "Recall", "F1Score"):
    for average in ("micro", "macro", "weighted", "none"):
        CASES[f"{cls}-mc-{average}"] = (
            cls,
            {**MC, "average": average},
            ("multiclass", 5, 1, "logits"),
        )
        CASES[f"{cls}-mc-{average}-absent"] = (
            cls,
            {**MC, "average": average},
            ("multiclass", 5, 2, "absent"),
        )
        CASES[f"{cls}-mc-{average}-top2"] = (
            cls,
            {**MC, "average": average, "top_k": 2},
            ("multiclass", 5, 3, "absent"),
        )
        CASES[f"{cls}-mc-{average}-ignore"] = (
            cls,
            {**MC, "average": average, "ignore_index": -1},
            ("multiclass", 5, 4, "ignore"),
        )
        CASES[f"{cls}-ml-{average}"] = (
            cls,
            {**ML, "average": average},
            ("multilabel", 4, 5, "logits"),
        )
        CASES[f"{cls}-ml-{average}-absent"] = (
            cls,
            {**ML, "average": average, "threshold": 0.3},
            ("multilabel", 4, 6, "probs"),
        )
        CASES[f"{cls}-ml-{average}-ignore"] = (
            cls,
            {**ML, "average": average, "ignore_index": -1},
            ("multilabel", 4, 7, "ignore"),
        )
    CASES[f"{cls}-mc-labels"] = (cls, {**MC, "average": "macro"}, ("multiclass", 5, 8, "labels"))
    CASES[f"{cls}-bin"] = (cls, BI, ("binary", 1, 9, "logits"))
    CASES[f"{cls}-bin-threshold"] = (cls, {**BI, "threshold": 0.7}, ("binary", 1, 10, "probs"))
    CASES[f"{cls}-bin-labels"] = (cls, BI, ("binary", 1, 11, "labels"))
    CASES[f"{cls}-bin-ignore"] = (cls, {**BI, "ignore_index": -1}, ("binary", 1, 12, "ignore"))
for cls in ("AveragePrecision", "AUROC"):
    for average in ("macro", "weighted", "none"):
        CASES[f"{cls}-mc-{average}"] = (
            cls,
            {**MC, "average": average},
            ("multiclass", 5, 21, "logits"),
        )
        CASES[f"{cls}-mc-{average}-absent"] = (
            cls,
            {**MC, "average": average},
            ("multiclass", 5, 20, "absent"),
        )
        CASES[f"{cls}-mc-{average}-probs"] = (
            cls,
            {**MC, "average": average},
            ("multiclass", 5, 22, "probs"),
        )
        CASES[f"{cls}-mc-{average}-ignore"] = (
            cls,
            {**MC, "average": average, "ignore_index": -1},
            ("multiclass", 5, 23, "ignore"),
        )
        CASES[f"{cls}-ml-{average}"] = (
            cls,
            {**ML, "average": average},
            ("multilabel", 4, 24, "logits"),
        )
        CASES[f"{cls}-ml-{average}-absent"] = (
            cls,
            {**ML, "average": average},
            ("multilabel", 4, 25, "absent"),
        )
        CASES[f"{cls}-ml-{average}-ignore"] = (
            cls,
            {**ML, "average": average, "ignore_index": -1},
            ("multilabel", 4, 26, "ignore"),
        )
    CASES[f"{cls}-ml-micro"] = (cls, {**ML, "average": "micro"}, ("multilabel", 4, 27, "logits"))
    CASES[f"{cls}-bin"] = (cls, BI, ("binary", 1, 28, "logits"))
    CASES[f"{cls}-bin-ties"] = (cls, BI, ("binary", 1, 29, "ties"))
    CASES[f"{cls}-bin-ignore"] = (cls, {**BI, "ignore_index": -1}, ("binary", 1, 30, "ignore"))
for normalize in (None, "true", "pred", "all"):
    CASES[f"ConfusionMatrix-mc-{normalize}"] = (
        "ConfusionMatrix",
        {**MC, "normalize": normalize},
        ("multiclass", 5, 41, "absent"),
    )
    CASES[f"ConfusionMatrix-ml-{normalize}"] = (
        "ConfusionMatrix",
        {**ML, "normalize": normalize},
        ("multilabel", 4, 42, "logits"),
    )
    CASES[f"ConfusionMatrix-bin-{normalize}"] = (
        "ConfusionMatrix",
        {**BI, "normalize": normalize},
        ("binary", 1, 43, "logits"),
    )
# the task-specific classes, with their own defaults (Multiclass*/Multilabel*: average="macro")
for cls, kwargs, data in (
    ("BinaryAccuracy", {}, ("binary", 1, 51, "logits")),
    ("MulticlassAccuracy", {"num_classes": 5}, ("multiclass", 5, 52, "absent")),
    ("MultilabelAccuracy", {"num_labels": 4}, ("multilabel", 4, 53, "logits")),
    ("BinaryPrecision", {"threshold": 0.3}, ("binary", 1, 54, "probs")),
    ("MulticlassPrecision", {"num_classes": 5, "top_k": 2}, ("multiclass", 5, 55, "logits")),
    ("MultilabelRecall", {"num_labels": 4}, ("multilabel", 4, 56, "absent")),
    ("MulticlassF1Score", {"num_classes": 5}, ("multiclass", 5, 57, "absent")),
    ("MultilabelF1Score", {"num_labels": 4, "ignore_index": -1}, ("multilabel", 4, 58, "ignore")),
    ("BinaryF1Score", {}, ("binary", 1, 59, "labels")),
    ("MulticlassConfusionMatrix", {"num_classes": 5}, ("multiclass", 5, 60, "logits")),
    ("MultilabelConfusionMatrix", {"num_labels": 4}, ("multilabel", 4, 61, "logits")),
    ("BinaryAveragePrecision", {}, ("binary", 1, 62, "ties")),
    ("MulticlassAveragePrecision", {"num_classes": 5}, ("multiclass", 5, 63, "logits")),
    ("MultilabelAveragePrecision", {"num_labels": 4}, ("multilabel", 4, 64, "absent")),
    ("BinaryAUROC", {}, ("binary", 1, 65, "logits")),
    ("MulticlassAUROC", {"num_classes": 5}, ("multiclass", 5, 66, "probs")),
    ("MultilabelAUROC", {"num_labels": 4}, ("multilabel", 4, 67, "logits")),
):
    CASES[f"{cls}-defaults"] = (cls, kwargs, data)
CASES["ConfusionMatrix-mc-ignore"] = (
    "ConfusionMatrix",
    {**MC, "ignore_index": -1},
    ("multiclass", 5, 44, "ignore"),
)


def batches(name: str) -> list:
    return _batches(*CASES[name][2])


def run_case(name: str, make, to_array, to_list) -> dict:
    """``make(class name, kwargs)`` builds the metric; every batch goes through ``forward``
    (its batch value recorded) and ``compute`` gives the epoch value."""
    cls, kwargs, _ = CASES[name]
    metric = make(cls, kwargs)
    steps = []
    for preds, target in batches(name):
        steps.append(to_list(metric(to_array(preds), to_array(target))))
    return {"epoch": to_list(metric.compute()), "steps": steps}
