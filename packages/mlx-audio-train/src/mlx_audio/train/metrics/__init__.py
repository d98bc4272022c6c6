"""Metrics with torchmetrics' names and semantics, computed on the device and reduced across
ranks: update them in a step, log the object with ``self.log(name, metric)`` (its epoch value
is ``compute()`` over the epoch) or call ``compute()`` yourself."""

from .base import Metric
from .classification import Accuracy, ConfusionMatrix, F1Score, FBetaScore, Precision, Recall
from .ranking import AUROC, AveragePrecision

__all__ = [
    "AUROC",
    "Accuracy",
    "AveragePrecision",
    "ConfusionMatrix",
    "F1Score",
    "FBetaScore",
    "Metric",
    "Precision",
    "Recall",
]
