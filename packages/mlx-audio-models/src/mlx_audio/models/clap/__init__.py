"""CLAP (contrastive language-audio pretraining), compatible with transformers' ClapModel."""

from .config import ClapAudioConfig, ClapConfig, ClapTextConfig
from .model import CLAP, zero_shot_classify

__all__ = ["CLAP", "ClapConfig", "ClapAudioConfig", "ClapTextConfig", "zero_shot_classify"]
