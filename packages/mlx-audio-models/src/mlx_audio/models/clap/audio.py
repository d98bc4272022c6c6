"""HTSAT audio encoder (Swin Transformer over a log-mel "image"), as transformers' ClapAudioEncoder.

Input: HF's ``input_features`` layout ``(B, C, frames, mel_bins)`` (C = 1, or 4 for fusion);
convolutions run channels-last (MLX). Index tables and masks are constants, not parameters.
"""

from __future__ import annotations

import math

import mlx.core as mx
import mlx.nn as nn
import numpy as np

from . import swin_reference
from .config import ClapAudioConfig
from .recompute import checkpoint
from .swin import SwinStage


def bicubic_matrix(n_in: int, n_out: int) -> np.ndarray:
    """torch's bicubic (A = -0.75, align_corners=True, clamped borders) as an (out, in) matrix."""
    a = -0.75
    weights = np.zeros((n_out, n_in), dtype=np.float64)
    scale = (n_in - 1) / (n_out - 1) if n_out > 1 else 0.0
    for i in range(n_out):
        src = i * scale
        base = math.floor(src)
        t = src - base
        coeffs = [
            ((a * (t + 1) - 5 * a) * (t + 1) + 8 * a) * (t + 1) - 4 * a,
            ((a + 2) * t - (a + 3)) * t * t + 1,
            ((a + 2) * (1 - t) - (a + 3)) * (1 - t) * (1 - t) + 1,
            ((a * (2 - t) - 5 * a) * (2 - t) + 8 * a) * (2 - t) - 4 * a,
        ]
        for k, c in enumerate(coeffs):
            weights[i, min(max(base - 1 + k, 0), n_in - 1)] += c
    return weights.astype(np.float32)


def _conv_sequence(layers: list, x: mx.array) -> mx.array:
    for layer in layers:
        x = layer(x)
    return x


class AFFBlock(nn.Module):
    """Attentional feature fusion of the global and local (long-clip) patch embeddings."""

    def __init__(self, config: ClapAudioConfig) -> None:
        super().__init__()
        c = config.patch_embeds_hidden_size
        inner = int(c // config.aff_block_r)
        self.local_att = [
            nn.Conv2d(c, inner, 1),
            nn.BatchNorm(inner),
            nn.ReLU(),
            nn.Conv2d(inner, c, 1),
            nn.BatchNorm(c),
        ]
        self.global_att = [
            nn.Identity(),
            nn.Conv2d(c, inner, 1),
            nn.BatchNorm(inner),
            nn.ReLU(),
            nn.Conv2d(inner, c, 1),
            nn.BatchNorm(c),
        ]

    def __call__(self, x: mx.array, residual: mx.array) -> mx.array:  # channels-last maps
        both = x + residual
        pooled = mx.mean(both, axis=(1, 2), keepdims=True)
        weight = mx.sigmoid(
            _conv_sequence(self.local_att, both) + _conv_sequence(self.global_att, pooled)
        )
        return 2 * x * weight + 2 * residual * (1 - weight)


class PatchEmbed(nn.Module):
    def __init__(self, config: ClapAudioConfig) -> None:
        super().__init__()
        (ph, pw), (sh, sw) = config.patch_size, config.patch_stride
        self.img_size = config.spec_size
        self.grid = (config.spec_size // sh, config.spec_size // sw)
        padding = ((ph - sh) // 2, (pw - sw) // 2)
        c_in = config.patch_embed_input_channels * (
            4 if config.enable_fusion and config.fusion_type == "channel_map" else 1
        )
        self.proj = nn.Conv2d(
            c_in,
            config.patch_embeds_hidden_size,
            kernel_size=(ph, pw),
            stride=(sh, sw),
            padding=padding,
        )
        self.norm = (
            nn.LayerNorm(config.patch_embeds_hidden_size)
            if config.enable_patch_layer_norm
            else nn.Identity()
        )
        self.fusion = config.enable_fusion
        if self.fusion:
            self.fusion_model = AFFBlock(config)
            self.mel_conv2d = nn.Conv2d(
                config.patch_embed_input_channels,
                config.patch_embeds_hidden_size,
                kernel_size=(ph, pw * 3),
                stride=(sh, sw * 3),
                padding=padding,
            )

    def __call__(self, x: mx.array, is_longer: mx.array | None) -> mx.array:  # x: (B, C, H, W)
        b, c, h, w = x.shape
        if h != self.img_size or w != self.img_size:
            raise ValueError(
                f"input audio size ({h}*{w}) doesn't match the model ({self.img_size}*{self.img_size})"
            )
        out = self.proj(
            x[:, :1].transpose(0, 2, 3, 1) if self.fusion else x.transpose(0, 2, 3, 1)
        )  # (B, h, w, F)
        if self.fusion:
            local = x[:, 1:].reshape(b * (c - 1), h, w)[..., None]
            local = self.mel_conv2d(local)  # (B*3, h', w'', F)
            _, lh, lw, f = local.shape
            local = (
                local.reshape(b, c - 1, lh, lw, f)
                .transpose(0, 2, 1, 3, 4)
                .reshape(b, lh, (c - 1) * lw, f)
            )
            local = mx.pad(local, [(0, 0), (0, 0), (0, out.shape[2] - local.shape[2]), (0, 0)])
            longer = (
                is_longer.reshape(b, 1, 1, 1).astype(mx.bool_)
                if is_longer is not None
                else mx.zeros((b, 1, 1, 1), dtype=mx.bool_)
            )
            out = mx.where(longer, self.fusion_model(out, local), out)
        out = out.reshape(b, -1, out.shape[-1])
        return self.norm(out)


class HTSATEncoder(nn.Module):
    """transformers' ``ClapAudioEncoder``: returns the pooled (B, hidden_size) audio feature."""

    def __init__(self, config: ClapAudioConfig) -> None:
        super().__init__()
        self.config = config
        self.patch_embed = PatchEmbed(config)
        grid = self.patch_embed.grid
        n = len(config.depths)
        self.resolutions = [(grid[0] // 2**i, grid[1] // 2**i) for i in range(n)]
        self.layers = [
            SwinStage(
                config.patch_embeds_hidden_size * 2**i,
                self.resolutions[i],
                config.depths[i],
                config.num_attention_heads[i],
                i < n - 1,
                config,
            )
            for i in range(n)
        ]
        for stage, following in zip(self.layers, [*self.layers[1:], None]):
            stage.link(following)
        self.batch_norm = nn.BatchNorm(config.num_mel_bins)
        self.norm = nn.LayerNorm(config.hidden_size)
        object.__setattr__(self, "_resample", {})  # cached interpolation matrices: not module state

    # "windows": NOTE [window-major layout]; "reference": transformers' formulation (swin_reference.py)
    formulation = "windows"

    def set_checkpointing(self, enabled: bool | str) -> None:
        """Recompute in the backward pass (gradient checkpointing), in training mode: less
        memory, more time. ``"stage"`` (transformers' granularity: one Swin stage at a time),
        ``"block"`` or True (each Swin block), False (off)."""
        if enabled not in (True, False, "stage", "block"):
            raise ValueError(
                f"checkpointing must be True, False, 'stage' or 'block', got {enabled!r}"
            )
        for stage in self.layers:
            stage.checkpoint = "block" if enabled is True else enabled

    def _interpolate(self, x: mx.array, axis: int, size: int) -> mx.array:
        key = (x.shape[axis], size)
        if key not in self._resample:
            self._resample[key] = mx.array(bicubic_matrix(*key))
        matrix = self._resample[key].astype(x.dtype)
        moved = mx.moveaxis(x, axis, -1)
        return mx.moveaxis(moved @ matrix.T, -1, axis)

    def mel_to_image(self, x: mx.array) -> mx.array:
        """HF's ``reshape_mel2img``: stretch time to spec_size*freq_ratio, fold it into a square."""
        cfg = self.config
        ratio = cfg.freq_ratio
        width, height = cfg.spec_size * ratio, cfg.spec_size // ratio
        _, _, t, f = x.shape
        if t > width or f > height:
            raise ValueError(
                f"{t} frames x {f} mel bins exceed what this model takes ({width} x {height}); crop or use fusion"
            )
        if t < width:
            x = self._interpolate(x, 2, width)
        if f < height:
            x = self._interpolate(x, 3, height)
        b, c, t, f = x.shape
        x = x.reshape(b, c * ratio, t // ratio, f).transpose(0, 1, 3, 2)
        return x.reshape(b, c, f * ratio, t // ratio)

    def __call__(self, features: mx.array, is_longer: mx.array | None = None) -> mx.array:
        x = self.batch_norm(features)  # features (B, C, T, F): statistics per mel bin, as HF
        x = self.mel_to_image(x)
        frames = x.shape[2]
        x = self.patch_embed(x, is_longer)
        reference = self.formulation == "reference"
        if not reference:
            x = self.layers[0].enter(x)
        for stage in self.layers:
            run = (lambda y, s=stage: swin_reference.stage(s, y)) if reference else stage
            if stage.checkpoint == "stage" and self.training:
                run = checkpoint(stage, run)
            x = run(x)
        x = self.norm(x)
        b, _, c = x.shape
        depth_scale = 2 ** (len(self.config.depths) - 1)
        f_shape = frames // depth_scale // self.config.patch_stride[0]
        t_shape = frames // depth_scale // self.config.patch_stride[1]
        x = x.transpose(0, 2, 1).reshape(b, c, f_shape, t_shape)
        bins = f_shape // self.config.freq_ratio
        x = (
            x.reshape(b, c, f_shape // bins, bins, t_shape)
            .transpose(0, 1, 3, 2, 4)
            .reshape(b, c, -1)
        )
        return mx.mean(x, axis=-1)
