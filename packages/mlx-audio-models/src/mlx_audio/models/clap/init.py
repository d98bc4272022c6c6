"""CLAP's initial weights, drawn as transformers draws them (``ClapPreTrainedModel._init_weights``).

A CLAP trained from random weights needs them: MLX's layer defaults (uniform in
+-1/sqrt(fan_in)) leave the Swin audio encoder all but untrainable at small sizes (measured:
a 2-stage HTSAT on spoken digits stayed at chance for 4 epochs; with these weights it learned
as transformers' own model does). Every ``Linear``/``Conv2d`` weight is normal with standard
deviation ``hidden_size**-0.5 * (2 * num_hidden_layers)**-0.5 * initializer_factor`` of the
configuration owning it — the audio encoder's, the text encoder's, or for the two projections
the whole model's (the text hidden size; text layers + audio stages) — and biases are zero;
embeddings are normal with standard deviation ``0.02 * initializer_factor``; norms are ones
and zeros; the relative-position bias tables are zero; the logit scales ``log(1/0.07)``.
"""

from __future__ import annotations

from typing import Any

import mlx.core as mx
import mlx.nn as nn


def _std(hidden_size: int, num_hidden_layers: int, factor: float) -> float:
    return float(hidden_size**-0.5 * (2 * num_hidden_layers) ** -0.5 * factor)


def init_like_transformers(model: Any) -> None:
    """Redraw ``model``'s (a :class:`~mlx_audio.models.clap.CLAP`) weights from ``mx.random``."""
    config = model.config
    audio, text = config.audio_config, config.text_config
    factor = config.initializer_factor
    owners = [
        (model.audio_encoder, _std(audio.hidden_size, audio.num_hidden_layers, factor)),
        (model.text_encoder, _std(text.hidden_size, text.num_hidden_layers, factor)),
    ]
    top = _std(text.hidden_size, text.num_hidden_layers + len(audio.depths), factor)
    owners += [(model.audio_projection, top), (model.text_projection, top)]
    for owner, std in owners:
        for _, module in owner.named_modules():
            if isinstance(module, (nn.Linear, nn.Conv2d)):
                module.weight = mx.random.normal(module.weight.shape) * std
                if "bias" in module:
                    module.bias = mx.zeros_like(module.bias)
            elif isinstance(module, nn.Embedding):
                module.weight = mx.random.normal(module.weight.shape) * (0.02 * factor)
            elif isinstance(module, (nn.LayerNorm, nn.BatchNorm)):
                if "weight" in module:
                    module.weight = mx.ones_like(module.weight)
                if "bias" in module:
                    module.bias = mx.zeros_like(module.bias)
            if "relative_position_bias_table" in module:
                module.relative_position_bias_table = mx.zeros_like(
                    module.relative_position_bias_table
                )
