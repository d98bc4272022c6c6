"""CLAP (contrastive language-audio pretraining), compatible with transformers' ClapModel."""

from .classifier import ClapAudioClassifier, ClapAudioTower
from .config import ClapAudioConfig, ClapConfig, ClapTextConfig
from .features import ClapFeatureExtractor
from .model import CLAP, zero_shot_classify
from .tokenizer import ClapTokenizer

__all__ = [
    "CLAP",
    "ClapAudioClassifier",
    "ClapAudioTower",
    "ClapConfig",
    "ClapAudioConfig",
    "ClapTextConfig",
    "ClapFeatureExtractor",
    "ClapTokenizer",
    "zero_shot_classify",
]
