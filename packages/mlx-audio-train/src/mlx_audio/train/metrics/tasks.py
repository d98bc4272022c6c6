"""torchmetrics' task-specific classes (``MulticlassAccuracy(num_classes)``, ...): the metrics of
classification.py / ranking.py with the task fixed and torchmetrics' defaults for it (note:
``Multiclass*`` and ``Multilabel*`` average ``"macro"`` by default, the task wrappers
``"micro"``)."""

from __future__ import annotations

from typing import Any

from .classification import Accuracy, ConfusionMatrix, F1Score, Precision, Recall
from .ranking import AUROC, AveragePrecision

_MACRO = "macro"


class BinaryAccuracy(Accuracy):
    def __init__(self, threshold: float = 0.5, ignore_index: int | None = None, **kwargs: Any):
        super().__init__("binary", threshold=threshold, ignore_index=ignore_index, **kwargs)


class MulticlassAccuracy(Accuracy):
    def __init__(
        self, num_classes: int, top_k: int = 1, average: str | None = _MACRO, **kwargs: Any
    ) -> None:
        super().__init__(
            "multiclass", num_classes=num_classes, top_k=top_k, average=average, **kwargs
        )


class MultilabelAccuracy(Accuracy):
    def __init__(
        self, num_labels: int, threshold: float = 0.5, average: str | None = _MACRO, **kwargs: Any
    ) -> None:
        super().__init__(
            "multilabel", num_labels=num_labels, threshold=threshold, average=average, **kwargs
        )


class BinaryPrecision(Precision):
    def __init__(self, threshold: float = 0.5, ignore_index: int | None = None, **kwargs: Any):
        super().__init__("binary", threshold=threshold, ignore_index=ignore_index, **kwargs)


class MulticlassPrecision(Precision):
    def __init__(
        self, num_classes: int, top_k: int = 1, average: str | None = _MACRO, **kwargs: Any
    ) -> None:
        super().__init__(
            "multiclass", num_classes=num_classes, top_k=top_k, average=average, **kwargs
        )


class MultilabelPrecision(Precision):
    def __init__(
        self, num_labels: int, threshold: float = 0.5, average: str | None = _MACRO, **kwargs: Any
    ) -> None:
        super().__init__(
            "multilabel", num_labels=num_labels, threshold=threshold, average=average, **kwargs
        )


class BinaryRecall(Recall):
    def __init__(self, threshold: float = 0.5, ignore_index: int | None = None, **kwargs: Any):
        super().__init__("binary", threshold=threshold, ignore_index=ignore_index, **kwargs)


class MulticlassRecall(Recall):
    def __init__(
        self, num_classes: int, top_k: int = 1, average: str | None = _MACRO, **kwargs: Any
    ) -> None:
        super().__init__(
            "multiclass", num_classes=num_classes, top_k=top_k, average=average, **kwargs
        )


class MultilabelRecall(Recall):
    def __init__(
        self, num_labels: int, threshold: float = 0.5, average: str | None = _MACRO, **kwargs: Any
    ) -> None:
        super().__init__(
            "multilabel", num_labels=num_labels, threshold=threshold, average=average, **kwargs
        )


class BinaryF1Score(F1Score):
    def __init__(self, threshold: float = 0.5, ignore_index: int | None = None, **kwargs: Any):
        super().__init__("binary", threshold=threshold, ignore_index=ignore_index, **kwargs)


class MulticlassF1Score(F1Score):
    def __init__(
        self, num_classes: int, top_k: int = 1, average: str | None = _MACRO, **kwargs: Any
    ) -> None:
        super().__init__(
            "multiclass", num_classes=num_classes, top_k=top_k, average=average, **kwargs
        )


class MultilabelF1Score(F1Score):
    def __init__(
        self, num_labels: int, threshold: float = 0.5, average: str | None = _MACRO, **kwargs: Any
    ) -> None:
        super().__init__(
            "multilabel", num_labels=num_labels, threshold=threshold, average=average, **kwargs
        )


class BinaryConfusionMatrix(ConfusionMatrix):
    def __init__(self, threshold: float = 0.5, ignore_index: int | None = None, **kwargs: Any):
        super().__init__("binary", threshold=threshold, ignore_index=ignore_index, **kwargs)


class MulticlassConfusionMatrix(ConfusionMatrix):
    def __init__(self, num_classes: int, ignore_index: int | None = None, **kwargs: Any):
        super().__init__("multiclass", num_classes=num_classes, ignore_index=ignore_index, **kwargs)


class MultilabelConfusionMatrix(ConfusionMatrix):
    def __init__(self, num_labels: int, threshold: float = 0.5, **kwargs: Any) -> None:
        super().__init__("multilabel", num_labels=num_labels, threshold=threshold, **kwargs)


class BinaryAveragePrecision(AveragePrecision):
    def __init__(self, thresholds: Any = None, ignore_index: int | None = None, **kwargs: Any):
        super().__init__("binary", thresholds=thresholds, ignore_index=ignore_index, **kwargs)


class MulticlassAveragePrecision(AveragePrecision):
    def __init__(self, num_classes: int, average: str | None = _MACRO, **kwargs: Any) -> None:
        super().__init__("multiclass", num_classes=num_classes, average=average, **kwargs)


class MultilabelAveragePrecision(AveragePrecision):
    def __init__(self, num_labels: int, average: str | None = _MACRO, **kwargs: Any) -> None:
        super().__init__("multilabel", num_labels=num_labels, average=average, **kwargs)


class BinaryAUROC(AUROC):
    def __init__(self, max_fpr: float | None = None, **kwargs: Any) -> None:
        super().__init__("binary", max_fpr=max_fpr, **kwargs)


class MulticlassAUROC(AUROC):
    def __init__(self, num_classes: int, average: str | None = _MACRO, **kwargs: Any) -> None:
        super().__init__("multiclass", num_classes=num_classes, average=average, **kwargs)


class MultilabelAUROC(AUROC):
    def __init__(self, num_labels: int, average: str | None = _MACRO, **kwargs: Any) -> None:
        super().__init__("multilabel", num_labels=num_labels, average=average, **kwargs)
