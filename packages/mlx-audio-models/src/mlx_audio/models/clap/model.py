"""CLAP: HTSAT audio encoder + RoBERTa text encoder + projections + learned logit scales."""

from __future__ import annotations

import json
import math
import os
from typing import Any

import mlx.core as mx
import mlx.nn as nn
from mlx.utils import tree_flatten

from .activations import activation
from .audio import HTSATEncoder
from .config import ClapConfig
from .init import init_like_transformers
from .text import RobertaEncoder


class Projection(nn.Module):
    """linear1 -> activation -> linear2 (HF's ClapProjectionLayer)."""

    def __init__(self, d_in: int, d_out: int, act: str) -> None:
        super().__init__()
        self.linear1 = nn.Linear(d_in, d_out)
        self.linear2 = nn.Linear(d_out, d_out)
        self._act = activation(act)

    def __call__(self, x: mx.array) -> mx.array:
        return self.linear2(self._act(self.linear1(x)))


def _normalize(x: mx.array) -> mx.array:
    norm = mx.sqrt(mx.sum(x.astype(mx.float32) ** 2, axis=-1, keepdims=True))
    return x / mx.maximum(norm, 1e-12).astype(x.dtype)


class CLAP(nn.Module):
    """Contrastive language-audio model, compatible with transformers' ``ClapModel`` weights.

    ``CLAP()`` builds the laion/clap-htsat-unfused architecture with **random** weights and
    needs no network; load trained weights with :meth:`from_pretrained`.

    ``audio``: ``(B, 1, n_mels, frames)`` log-mels (HF's ``input_features`` transposed), or
    ``(B, 4, n_mels, frames)`` with ``is_longer`` ``(B, 1)`` for fusion models. Frames up to
    ``spec_size * freq_ratio`` (1024 by default) are stretched to that length as HF does.
    """

    def __init__(self, config: ClapConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or ClapConfig()
        audio, text = config.audio_config, config.text_config
        self.audio_encoder = HTSATEncoder(audio)
        self.audio_projection = Projection(
            audio.hidden_size, config.projection_dim, audio.projection_hidden_act
        )
        self.text_encoder = RobertaEncoder(text)
        self.text_projection = Projection(
            text.hidden_size, config.projection_dim, text.projection_hidden_act
        )
        self.logit_scale_a = mx.array(math.log(config.logit_scale_init_value))
        self.logit_scale_t = mx.array(math.log(config.logit_scale_init_value))
        init_like_transformers(self)  # transformers' initial weights (see init.py)

    # -- features ----------------------------------------------------------------------------
    def get_audio_features(self, audio: mx.array, is_longer: mx.array | None = None) -> mx.array:
        """L2-normalized audio embeddings ``(B, projection_dim)``."""
        bins = self.config.audio_config.num_mel_bins
        if audio.ndim != 4 or audio.shape[2] != bins:
            raise ValueError(
                f"audio must be (batch, channels, n_mels, frames) with n_mels = {bins} "
                f"(audio_config.num_mel_bins), got shape {tuple(audio.shape)}"
            )
        fusion = self.config.audio_config.enable_fusion
        if fusion and audio.shape[1] != 4:
            raise ValueError(
                f"this fusion model takes 4 mel channels (global + 3 crops), got {audio.shape[1]}"
            )
        if not fusion and audio.shape[1] != 1:
            raise ValueError(
                f"audio must have 1 channel for an unfused model, got {audio.shape[1]}"
            )
        features = audio.transpose(0, 1, 3, 2)  # -> HF's (B, C, frames, n_mels)
        return _normalize(self.audio_projection(self.audio_encoder(features, is_longer)))

    def get_text_features(
        self, input_ids: mx.array, attention_mask: mx.array | None = None
    ) -> mx.array:
        """L2-normalized text embeddings ``(B, projection_dim)``. A frozen text encoder (no
        trainable parameter) is computed outside any gradient: ``mx.stop_gradient`` on its
        output, so no transformation builds its backward pass."""
        hidden = self.text_encoder(input_ids, attention_mask)
        if not tree_flatten(self.text_encoder.trainable_parameters()):
            hidden = mx.stop_gradient(hidden)
        return _normalize(self.text_projection(hidden))

    def __call__(
        self,
        audio: mx.array | None = None,
        input_ids: mx.array | None = None,
        attention_mask: mx.array | None = None,
        is_longer: mx.array | None = None,
    ) -> dict[str, mx.array]:
        if audio is None or input_ids is None:
            raise ValueError(
                "CLAP needs both audio and input_ids (use get_audio_features / get_text_features for one side)"
            )
        audio_embeds = self.get_audio_features(audio, is_longer)
        text_embeds = self.get_text_features(input_ids, attention_mask)
        logits_per_text = (text_embeds @ audio_embeds.T) * mx.exp(self.logit_scale_t)
        logits_per_audio = (audio_embeds @ text_embeds.T) * mx.exp(self.logit_scale_a)
        return {
            "logits_per_audio": logits_per_audio,
            "logits_per_text": logits_per_text,
            "audio_embeds": audio_embeds,
            "text_embeds": text_embeds,
        }

    def enable_checkpointing(self, enabled: bool | str = True) -> CLAP:
        """Trade compute for memory (gradient checkpointing) for long audio or large batches;
        active in training mode. ``True`` or ``"block"``: every Swin block and text layer;
        ``"stage"``: every Swin stage (transformers' granularity, less memory, as much
        recomputation); ``False``: off. The recomputation draws the forward's dropout masks
        (NOTE [checkpointing replays the dropout masks], ``clap/recompute.py``); the masks
        themselves differ from a run without checkpointing, as with another seed."""
        self.audio_encoder.set_checkpointing(enabled)
        self.text_encoder.encoder.checkpoint = bool(enabled)
        return self

    def gradient_checkpointing_enable(
        self, gradient_checkpointing_kwargs: dict[str, Any] | None = None
    ) -> None:
        """transformers' name: checkpoint each Swin stage and each text layer in training mode
        (``gradient_checkpointing_kwargs`` is accepted for its signature; MLX has no options)."""
        self.enable_checkpointing("stage")

    def gradient_checkpointing_disable(self) -> None:
        self.enable_checkpointing(False)

    @property
    def is_gradient_checkpointing(self) -> bool:
        return any(stage.checkpoint for stage in self.audio_encoder.layers)

    # -- weights -----------------------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, path_or_repo_id: str, revision: str | None = None) -> CLAP:
        """Load a Hugging Face CLAP folder (``config.json`` + ``model.safetensors`` or a pickled
        ``pytorch_model.bin``, read without torch and without executing pickle code), or a repo
        id through huggingface_hub (the ``hub`` extra)."""
        from .weights import hf_to_mlx, read_checkpoint, resolve_folder

        folder = resolve_folder(path_or_repo_id, revision)
        with open(os.path.join(folder, "config.json")) as f:
            config = ClapConfig.from_dict(json.load(f))
        model = cls(config)
        weights = hf_to_mlx(read_checkpoint(folder), model)
        model.load_weights(list(weights.items()), strict=True)
        mx.eval(model.parameters())
        model.eval()
        if os.path.exists(os.path.join(folder, "tokenizer.json")):  # for zero_shot_classify
            try:
                from .tokenizer import ClapTokenizer

                object.__setattr__(model, "tokenizer", ClapTokenizer.from_pretrained(folder))
            except ImportError:
                pass
        return model

    def save_pretrained(self, path: str) -> str:
        """Write ``config.json`` and ``model.safetensors`` in transformers' format and names."""
        from .weights import mlx_to_hf

        os.makedirs(path, exist_ok=True)
        with open(os.path.join(path, "config.json"), "w") as f:
            json.dump(self.config.to_dict(), f, indent=2)
        mx.save_safetensors(
            os.path.join(path, "model.safetensors"),
            mlx_to_hf(dict(tree_flatten(self.parameters()))),
            metadata={"format": "pt"},
        )
        return path


def zero_shot_classify(
    model: CLAP,
    audio: mx.array,
    labels: list[str],
    tokenizer: Any = None,
    template: str = "This is a sound of {}.",
    is_longer: mx.array | None = None,
) -> mx.array:
    """Per-label probabilities ``(B, len(labels))`` for each clip, from prompts built with
    ``template``. ``tokenizer``: a :class:`ClapTokenizer` (or anything with ``__call__``
    returning ``input_ids`` and ``attention_mask``)."""
    if not labels:
        raise ValueError("zero_shot_classify needs at least one label")
    if tokenizer is None:
        raise ValueError(
            "zero_shot_classify needs a tokenizer: ClapTokenizer.from_pretrained(<model folder>)"
        )
    tokens = tokenizer([template.format(label) for label in labels])
    text = model.get_text_features(
        mx.array(tokens["input_ids"]), mx.array(tokens["attention_mask"])
    )
    sound = model.get_audio_features(audio, is_longer)
    return mx.softmax((sound @ text.T) * mx.exp(model.logit_scale_a), axis=-1)
