"""CLAP configuration, with Hugging Face's field names (``config.json`` loads as it is)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any


def _known(cls: type, values: dict[str, Any]) -> dict[str, Any]:
    names = {f.name for f in dataclasses.fields(cls)}
    return {k: v for k, v in values.items() if k in names}


def _pair(value: int | list[int] | tuple[int, int]) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else (int(value[0]), int(value[1]))


@dataclass
class ClapAudioConfig:
    """HTSAT (Swin) audio encoder; defaults are laion/clap-htsat-unfused."""

    spec_size: int = 256
    window_size: int = 8
    num_mel_bins: int = 64
    patch_size: int | tuple[int, int] = 4
    patch_stride: int | tuple[int, int] = (4, 4)
    patch_embed_input_channels: int = 1
    patch_embeds_hidden_size: int = 96
    hidden_size: int = 768
    depths: list[int] = field(default_factory=lambda: [2, 2, 6, 2])
    num_attention_heads: list[int] = field(default_factory=lambda: [4, 8, 16, 32])
    mlp_ratio: float = 4.0
    qkv_bias: bool = True
    layer_norm_eps: float = 1e-5
    hidden_act: str = "gelu"
    projection_hidden_act: str = "relu"
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.0
    drop_path_rate: float = 0.0
    enable_fusion: bool = False
    fusion_type: str | None = None
    num_hidden_layers: int = 4  # transformers reads it only to scale the initial weights
    aff_block_r: int = 4
    enable_patch_layer_norm: bool = True
    flatten_patch_embeds: bool = True
    projection_dim: int = 512

    def __post_init__(self) -> None:
        self.patch_size, self.patch_stride = _pair(self.patch_size), _pair(self.patch_stride)
        if len(self.depths) != len(self.num_attention_heads):
            raise ValueError(
                f"depths {self.depths} and num_attention_heads {self.num_attention_heads} must have the same length"
            )
        if self.spec_size % self.num_mel_bins:
            raise ValueError(
                f"spec_size ({self.spec_size}) must be a multiple of num_mel_bins ({self.num_mel_bins})"
            )
        final = self.patch_embeds_hidden_size * 2 ** (len(self.depths) - 1)
        if final != self.hidden_size:
            raise ValueError(
                f"hidden_size ({self.hidden_size}) must equal patch_embeds_hidden_size * 2**(stages-1) = {final}"
            )

    @property
    def freq_ratio(self) -> int:
        return self.spec_size // self.num_mel_bins


@dataclass
class ClapTextConfig:
    """RoBERTa text encoder; defaults are roberta-base as used by laion/clap-htsat-*."""

    vocab_size: int = 50265
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    hidden_act: str = "gelu"
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1
    max_position_embeddings: int = 514
    type_vocab_size: int = 1
    layer_norm_eps: float = 1e-12
    pad_token_id: int = 1
    projection_hidden_act: str = "relu"
    projection_dim: int = 512


@dataclass
class ClapConfig:
    """The whole model: ``ClapConfig.from_dict(json.load(open("config.json")))`` reads HF files."""

    text_config: ClapTextConfig = field(default_factory=ClapTextConfig)
    audio_config: ClapAudioConfig = field(default_factory=ClapAudioConfig)
    projection_dim: int = 512
    logit_scale_init_value: float = 1 / 0.07
    initializer_factor: float = 1.0

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> ClapConfig:
        projection = int(values.get("projection_dim", 512))
        text = {
            **_known(ClapTextConfig, values.get("text_config") or {}),
            "projection_dim": projection,
        }
        audio = {
            **_known(ClapAudioConfig, values.get("audio_config") or {}),
            "projection_dim": projection,
        }
        return cls(
            ClapTextConfig(**text),
            ClapAudioConfig(**audio),
            projection,
            float(values.get("logit_scale_init_value", 1 / 0.07)),
            float(values.get("initializer_factor", 1.0)),
        )

    def to_dict(self) -> dict[str, Any]:
        audio = dataclasses.asdict(self.audio_config)
        audio["patch_size"], audio["patch_stride"] = (
            list(audio["patch_size"]),
            list(audio["patch_stride"]),
        )
        return {
            "model_type": "clap",
            "architectures": ["ClapModel"],
            "text_config": {
                **dataclasses.asdict(self.text_config),
                "model_type": "clap_text_model",
            },
            "audio_config": {**audio, "model_type": "clap_audio_model"},
            "projection_dim": self.projection_dim,
            "logit_scale_init_value": self.logit_scale_init_value,
            "initializer_factor": self.initializer_factor,
        }
