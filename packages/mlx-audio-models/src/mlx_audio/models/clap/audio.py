"""HTSAT audio encoder (Swin Transformer over a log-mel "image"), as transformers' ClapAudioEncoder.

Input: HF's ``input_features`` layout ``(B, C, frames, mel_bins)`` (C = 1, or 4 for fusion);
convolutions run channels-last (MLX). Index tables and masks are constants, not parameters.
"""

from __future__ import annotations

import math

import mlx.core as mx
import mlx.nn as nn
import numpy as np
from mlx.nn.utils import checkpoint

from .activations import activation
from .config import ClapAudioConfig


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


def window_partition(x: mx.array, w: int) -> mx.array:
    b, h, wd, c = x.shape
    x = x.reshape(b, h // w, w, wd // w, w, c).transpose(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, w * w, c)


def window_reverse(windows: mx.array, w: int, h: int, wd: int) -> mx.array:
    c = windows.shape[-1]
    x = windows.reshape(-1, h // w, wd // w, w, w, c).transpose(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, h, wd, c)


def shift_mask(h: int, w: int, window: int, shift: int) -> np.ndarray:
    """The shifted-window attention mask, built as HF builds it: 0 within a region, -100 across."""
    hr = (np.arange(h) >= h - window).astype(np.int64) + (np.arange(h) >= h - shift)
    wr = (np.arange(w) >= w - window).astype(np.int64) + (np.arange(w) >= w - shift)
    img = (hr[:, None] * 3 + wr[None, :]).astype(np.float32)
    windows = (
        img.reshape(h // window, window, w // window, window)
        .transpose(0, 2, 1, 3)
        .reshape(-1, window * window)
    )
    diff = windows[:, None, :] - windows[:, :, None]
    return np.where(diff != 0, -100.0, 0.0).astype(np.float32)


class SelfAttention(nn.Module):
    def __init__(self, dim: int, heads: int, window: int, config: ClapAudioConfig) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"hidden size {dim} is not a multiple of the number of heads {heads}")
        self.heads, self.head_dim, self.window = heads, dim // heads, window
        self.query = nn.Linear(dim, dim, bias=config.qkv_bias)
        self.key = nn.Linear(dim, dim, bias=config.qkv_bias)
        self.value = nn.Linear(dim, dim, bias=config.qkv_bias)
        self.relative_position_bias_table = mx.zeros(((2 * window - 1) ** 2, heads))
        coords = np.stack(np.meshgrid(np.arange(window), np.arange(window), indexing="ij")).reshape(
            2, -1
        )
        relative = (coords[:, :, None] - coords[:, None, :]).transpose(1, 2, 0) + (window - 1)
        self._relative_position_index = mx.array(
            (relative[..., 0] * (2 * window - 1) + relative[..., 1]).reshape(-1)
        )
        self.dropout = nn.Dropout(config.attention_probs_dropout_prob)
        self.dropout_p = config.attention_probs_dropout_prob

    # Window attention through mx.fast.scaled_dot_product_attention (one fused kernel where the
    # backend has one); False: the explicit softmax(q k^T + bias) v, kept for comparison.
    fused = True

    def __call__(self, x: mx.array, mask: mx.array | None) -> mx.array:
        b, n, c = x.shape

        def heads(t: mx.array) -> mx.array:
            return t.reshape(b, n, self.heads, self.head_dim).transpose(0, 2, 1, 3)

        q, k, v = heads(self.query(x)), heads(self.key(x)), heads(self.value(x))
        bias = (
            self.relative_position_bias_table[self._relative_position_index]
            .reshape(n, n, -1)
            .transpose(2, 0, 1)
        )
        if self.fused and (self.dropout_p == 0 or not self.training):
            return self._fused(q, k, v, bias, mask).transpose(0, 2, 1, 3).reshape(b, n, c)
        scores = (q @ k.transpose(0, 1, 3, 2)) / math.sqrt(self.head_dim)
        scores = scores + bias[None]
        if mask is not None:
            windows = mask.shape[0]
            mask = mask.astype(scores.dtype)
            scores = (
                scores.reshape(b // windows, windows, self.heads, n, n) + mask[None, :, None]
            ).reshape(b, self.heads, n, n)
        probs = self.dropout(mx.softmax(scores, axis=-1))
        return (probs @ v).transpose(0, 2, 1, 3).reshape(b, n, c)

    def _fused(
        self, q: mx.array, k: mx.array, v: mx.array, bias: mx.array, mask: mx.array | None
    ) -> mx.array:
        """(B, heads, n, d) attention with the position bias (and shift mask) as an additive mask.
        The shift mask differs per window: windows and heads are folded into one axis so that a
        single (windows * heads, n, n) mask broadcasts over the batch."""
        b, h, n, d = q.shape
        scale = 1 / math.sqrt(d)
        if mask is None:
            return mx.fast.scaled_dot_product_attention(
                q, k, v, scale=scale, mask=bias[None].astype(q.dtype)
            )
        w = mask.shape[0]
        additive = (
            (bias[None] + mask.astype(bias.dtype)[:, None]).reshape(1, w * h, n, n).astype(q.dtype)
        )
        q, k, v = (t.reshape(b // w, w * h, n, d) for t in (q, k, v))
        out = mx.fast.scaled_dot_product_attention(q, k, v, scale=scale, mask=additive)
        return out.reshape(b, h, n, d)


class Dense(nn.Module):
    """``dense`` + dropout (HF's SelfOutput / Output naming)."""

    def __init__(self, d_in: int, d_out: int, dropout: float) -> None:
        super().__init__()
        self.dense = nn.Linear(d_in, d_out)
        self.dropout = nn.Dropout(dropout)

    def __call__(self, x: mx.array) -> mx.array:
        return self.dropout(self.dense(x))


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int, window: int, config: ClapAudioConfig) -> None:
        super().__init__()
        self.self = SelfAttention(dim, heads, window, config)
        self.output = Dense(dim, dim, config.attention_probs_dropout_prob)

    def __call__(self, x: mx.array, mask: mx.array | None) -> mx.array:
        return self.output(self.self(x, mask))


class SwinBlock(nn.Module):
    def __init__(
        self, dim: int, resolution: tuple[int, int], heads: int, shift: int, config: ClapAudioConfig
    ) -> None:
        super().__init__()
        window = config.window_size
        if min(resolution) <= window:  # the window covers everything: no partition, no shift
            shift, window = 0, min(resolution)
        self.window, self.shift, self.resolution = window, shift, resolution
        self.layernorm_before = nn.LayerNorm(dim, eps=config.layer_norm_eps)
        self.attention = Attention(dim, heads, window, config)
        self.layernorm_after = nn.LayerNorm(dim, eps=config.layer_norm_eps)
        self.intermediate = Dense(dim, int(config.mlp_ratio * dim), 0.0)
        self.output = Dense(int(config.mlp_ratio * dim), dim, config.hidden_dropout_prob)
        self._act = activation(config.hidden_act)
        h, w = resolution
        hp, wp = h + (-h) % window, w + (-w) % window
        self._mask = mx.array(shift_mask(hp, wp, window, shift)) if shift > 0 else None

    def __call__(self, x: mx.array) -> mx.array:
        h, w = self.resolution
        b, _, c = x.shape
        shortcut = x
        x = self.layernorm_before(x).reshape(b, h, w, c)
        pad_h, pad_w = (-h) % self.window, (-w) % self.window
        if pad_h or pad_w:
            x = mx.pad(x, [(0, 0), (0, pad_h), (0, pad_w), (0, 0)])
        hp, wp = h + pad_h, w + pad_w
        if self.shift:
            x = mx.roll(x, shift=(-self.shift, -self.shift), axis=(1, 2))
        windows = self.attention(window_partition(x, self.window), self._mask)
        x = window_reverse(windows.reshape(-1, self.window, self.window, c), self.window, hp, wp)
        if self.shift:
            x = mx.roll(x, shift=(self.shift, self.shift), axis=(1, 2))
        x = x[:, :h, :w, :].reshape(b, h * w, c)
        x = shortcut + x
        return x + self.output(self._act(self.intermediate(self.layernorm_after(x))))


class PatchMerging(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)
        self.norm = nn.LayerNorm(4 * dim)

    def __call__(self, x: mx.array, resolution: tuple[int, int]) -> mx.array:
        h, w = resolution
        b, _, c = x.shape
        x = x.reshape(b, h, w, c)
        if h % 2 or w % 2:
            x = mx.pad(x, [(0, 0), (0, h % 2), (0, w % 2), (0, 0)])
        x = mx.concatenate(
            [x[:, row::2, col::2, :] for col in range(2) for row in range(2)], axis=-1
        )
        return self.reduction(self.norm(x.reshape(b, -1, 4 * c)))


class SwinStage(nn.Module):
    def __init__(
        self,
        dim: int,
        resolution: tuple[int, int],
        depth: int,
        heads: int,
        downsample: bool,
        config: ClapAudioConfig,
    ) -> None:
        super().__init__()
        self.resolution = resolution
        self.blocks = [
            SwinBlock(dim, resolution, heads, 0 if i % 2 == 0 else config.window_size // 2, config)
            for i in range(depth)
        ]
        self.downsample = PatchMerging(dim) if downsample else None
        self.checkpoint = False

    def __call__(self, x: mx.array) -> mx.array:
        for block in self.blocks:
            x = checkpoint(block)(x) if self.checkpoint and self.training else block(x)
        return self.downsample(x, self.resolution) if self.downsample is not None else x


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
        self.batch_norm = nn.BatchNorm(config.num_mel_bins)
        self.norm = nn.LayerNorm(config.hidden_size)
        object.__setattr__(self, "_resample", {})  # cached interpolation matrices: not module state

    def set_checkpointing(self, enabled: bool) -> None:
        """Recompute Swin blocks in the backward pass (gradient checkpointing): less memory, more time."""
        for stage in self.layers:
            stage.checkpoint = enabled

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
        for stage in self.layers:
            x = stage(x)
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
