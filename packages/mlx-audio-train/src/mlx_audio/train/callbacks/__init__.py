"""Callbacks (Keras-style: one small class per file; Lightning's hook protocol)."""

from .base import Callback
from .early_stopping import EarlyStopping
from .gradient_clipper import GradientClipper
from .lr_monitor import LearningRateMonitor
from .model_checkpoint import ModelCheckpoint
from .model_summary import ModelSummary
from .progress_bar import ProgressBar, TQDMProgressBar
from .rich_progress import RichProgressBar
from .stochastic_weight_avg import StochasticWeightAveraging
from .timer import Timer
from .weight_averaging import EMAWeightAveraging, WeightAveraging

__all__ = [
    "Callback",
    "EMAWeightAveraging",
    "EarlyStopping",
    "GradientClipper",
    "LearningRateMonitor",
    "ModelCheckpoint",
    "ModelSummary",
    "ProgressBar",
    "RichProgressBar",
    "StochasticWeightAveraging",
    "TQDMProgressBar",
    "Timer",
    "WeightAveraging",
]
