"""A classifier on CLAP's audio tower: the pretrained audio encoder and projection (the
``backbone``: L2-normalized CLAP audio embeddings) and a linear ``head``. The attribute names
are what ``mlx_audio.train.callbacks.BackboneFinetuning`` freezes and unfreezes."""

from __future__ import annotations

import mlx.core as mx
import mlx.nn as nn

from .audio import HTSATEncoder
from .config import ClapConfig
from .model import CLAP, Projection


class ClapAudioTower(nn.Module):
    """CLAP's audio side: log-mels ``(B, C, n_mels, frames)`` -> embeddings ``(B, projection_dim)``
    (``CLAP.get_audio_features``)."""

    def __init__(self, config: ClapConfig) -> None:
        super().__init__()
        self.config = config
        audio = config.audio_config
        self.audio_encoder = HTSATEncoder(audio)
        self.audio_projection = Projection(
            audio.hidden_size, config.projection_dim, audio.projection_hidden_act
        )

    def __call__(self, audio: mx.array, is_longer: mx.array | None = None) -> mx.array:
        return CLAP.get_audio_features(self, audio, is_longer)  # type: ignore[arg-type]


class ClapAudioClassifier(nn.Module):
    """``backbone`` (CLAP's audio tower) + ``head`` (``nn.Linear(projection_dim,
    num_classes)``): log-mels from ``ClapFeatureExtractor`` (``input_features``, and
    ``is_longer`` for fusion models) -> class logits.

    ``ClapAudioClassifier.from_pretrained(folder, num_classes)`` takes the audio tower of a CLAP
    folder (or Hub id) that ``CLAP.from_pretrained`` reads; the head starts at random.
    """

    def __init__(self, config: ClapConfig, num_classes: int) -> None:
        super().__init__()
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        self.config = config
        self.num_classes = num_classes
        self.backbone = ClapAudioTower(config)
        self.head = nn.Linear(config.projection_dim, num_classes)

    def __call__(self, audio: mx.array, is_longer: mx.array | None = None) -> mx.array:
        return self.head(self.backbone(audio, is_longer))

    @classmethod
    def from_pretrained(
        cls, path_or_repo_id: str, num_classes: int, revision: str | None = None
    ) -> ClapAudioClassifier:
        """The audio tower of a pretrained CLAP (weights as ``CLAP.from_pretrained`` loads
        them) under a new head; in training mode."""
        clap = CLAP.from_pretrained(path_or_repo_id, revision)
        model = cls(clap.config, num_classes)
        model.backbone.audio_encoder = clap.audio_encoder
        model.backbone.audio_projection = clap.audio_projection
        model.train()
        return model


__all__ = ["ClapAudioClassifier", "ClapAudioTower"]
