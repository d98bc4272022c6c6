"""A classifier on CLAP's audio tower: the pretrained audio encoder and projection (the
``backbone``: L2-normalized CLAP audio embeddings) and a linear ``head``. The attribute names
are what ``mlx_audio.train.callbacks.BackboneFinetuning`` freezes and unfreezes.

NOTE [layer-wise learning-rate decay]: BEiT's / timm's ``param_groups_layer_decay`` over the
Swin layout of ``group_matcher(coarse=False)``: layer 0 is the stem (``patch_embed`` and the
input ``batch_norm``), then every Swin block of every stage in order is a layer of its own (a
stage's ``downsample`` joins its stage's last block: HTSAT downsamples at a stage's end), then
the top (the final ``norm`` and whatever else the encoder holds, and ``audio_projection``: timm's
``norm`` group), then the ``head``. With ``L`` layers in all, layer ``i``'s rate is the head's
times ``decay ** (L - 1 - i)``: the head ``1``, the top ``decay``, the last block ``decay**2``
... the stem ``decay ** (L - 1)``."""

from __future__ import annotations

from typing import Any

import mlx.core as mx
import mlx.nn as nn
from mlx.utils import tree_flatten

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

    def layer_groups(self) -> list[list[str]]:
        """The dotted paths of the modules of each layer, bottom (the stem) to top (the head):
        NOTE [layer-wise learning-rate decay]."""
        root = "backbone.audio_encoder"
        encoder = self.backbone.audio_encoder
        children = list(encoder.children())
        groups = [[f"{root}.{name}" for name in _STEM if name in children]]
        top = [
            f"{root}.{name}"
            for name in children
            if name not in _STEM and name != "layers" and isinstance(encoder[name], nn.Module)
        ]
        for s, stage in enumerate(encoder["layers"] if "layers" in children else []):
            blocks = stage["blocks"]
            groups += [[f"{root}.layers.{s}.blocks.{b}"] for b in range(len(blocks))]
            rest = [n for n in stage.children() if isinstance(stage[n], nn.Module)]
            groups[-1] += [f"{root}.layers.{s}.{n}" for n in rest]  # the stage's downsample
        top += [f"backbone.{n}" for n in self.backbone.children() if n != "audio_encoder"]
        return [g for g in groups if g] + [top, ["head"]]

    def layer_decay_scales(self, decay: float) -> dict[str, float]:
        """Each parameter's rate over the head's (BEiT's layer decay: NOTE [layer-wise
        learning-rate decay]), by its dotted name; a parameter of no listed module (the
        encoder's own arrays, if any) counts as the top's."""
        if not 0.0 < decay <= 1.0:
            raise ValueError(f"layer decay must be in (0, 1], got {decay!r}")
        groups = self.layer_groups()
        last = len(groups) - 1
        scales: dict[str, float] = {}
        for name in dict(tree_flatten(self.parameters())):
            layer = next(
                (i for i, g in enumerate(groups) for p in g if name.startswith(p + ".")),
                last - 1,
            )
            scales[name] = float(decay ** (last - layer))
        return scales

    def enable_checkpointing(self, enabled: bool | str = True) -> ClapAudioClassifier:
        """Gradient checkpointing of the audio tower, as :meth:`CLAP.enable_checkpointing`:
        ``True``/``"block"`` each Swin block, ``"stage"`` each stage, ``False`` off."""
        self.backbone.audio_encoder.set_checkpointing(enabled)
        return self

    # transformers' names, through this class's enable_checkpointing (as ClapAudioTower's call)
    gradient_checkpointing_enable = CLAP.gradient_checkpointing_enable
    gradient_checkpointing_disable = CLAP.gradient_checkpointing_disable

    @property
    def is_gradient_checkpointing(self) -> bool:
        return any(stage.checkpoint for stage in self.backbone.audio_encoder.layers)

    def module_at(self, path: str) -> nn.Module:
        """The submodule at a dotted ``path`` of :meth:`layer_groups`."""
        found: Any = self
        for part in path.split("."):
            found = found[int(part)] if isinstance(found, list) else found[part]
        module: nn.Module = found
        return module

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


_STEM = ("patch_embed", "batch_norm")  # layer 0: what the encoder does before its first block

__all__ = ["ClapAudioClassifier", "ClapAudioTower"]
