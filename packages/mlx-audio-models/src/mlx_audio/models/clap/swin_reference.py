"""transformers' Swin formulation (pad, roll, window partition and reverse per block, the
position bias gathered per block, the patch merging as four strided slices), run on the modules
of swin.py in the raster order: the reference that NOTE [window-major layout] is tested and
measured against (``HTSATEncoder.formulation = "reference"``)."""

from __future__ import annotations

import math

import mlx.core as mx

from .recompute import checkpoint
from .swin import PatchMerging, SelfAttention, SwinBlock, SwinStage, shift_mask


def window_partition(x: mx.array, w: int) -> mx.array:
    b, h, wd, c = x.shape
    x = x.reshape(b, h // w, w, wd // w, w, c).transpose(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, w * w, c)


def window_reverse(windows: mx.array, w: int, h: int, wd: int) -> mx.array:
    c = windows.shape[-1]
    x = windows.reshape(-1, h // w, wd // w, w, w, c).transpose(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, h, wd, c)


def attention(module: SelfAttention, x: mx.array, mask: mx.array | None) -> mx.array:
    """Windows as the batch: (B * windows, n, C); ``mask``: the (windows, n, n) shift mask."""
    b, n, c = x.shape

    def heads(t: mx.array) -> mx.array:
        return t.reshape(b, n, module.heads, module.head_dim).transpose(0, 2, 1, 3)

    q, k, v = heads(module.query(x)), heads(module.key(x)), heads(module.value(x))
    table = module.relative_position_bias_table
    bias = table[module._relative_position_index].reshape(n, n, -1).transpose(2, 0, 1)
    scale = 1 / math.sqrt(module.head_dim)
    if module.fused and (module.dropout_p == 0 or not module.training):
        if mask is None:
            out = mx.fast.scaled_dot_product_attention(
                q, k, v, scale=scale, mask=bias[None].astype(q.dtype)
            )
        else:
            w, h, d = mask.shape[0], module.heads, module.head_dim
            additive = (bias[None] + mask.astype(bias.dtype)[:, None]).reshape(1, w * h, n, n)
            q, k, v = (t.reshape(b // w, w * h, n, d) for t in (q, k, v))
            out = mx.fast.scaled_dot_product_attention(
                q, k, v, scale=scale, mask=additive.astype(q.dtype)
            ).reshape(b, h, n, d)
        return out.transpose(0, 2, 1, 3).reshape(b, n, c)
    scores = (q @ k.transpose(0, 1, 3, 2)) * scale + bias[None]
    if mask is not None:
        w = mask.shape[0]
        scores = (
            scores.reshape(b // w, w, module.heads, n, n) + mask.astype(scores.dtype)[None, :, None]
        ).reshape(b, module.heads, n, n)
    probs = module.dropout(mx.softmax(scores, axis=-1))
    return (probs @ v).transpose(0, 2, 1, 3).reshape(b, n, c)


def block(module: SwinBlock, x: mx.array, resolution: tuple[int, int]) -> mx.array:
    h, w = resolution
    window, shift = module.window, module.shift
    b, _, c = x.shape
    shortcut = x
    x = module.layernorm_before(x).reshape(b, h, w, c)
    pad_h, pad_w = (-h) % window, (-w) % window
    if pad_h or pad_w:
        x = mx.pad(x, [(0, 0), (0, pad_h), (0, pad_w), (0, 0)])
    hp, wp = h + pad_h, w + pad_w
    mask = mx.array(shift_mask(hp, wp, window, shift)) if shift else None
    if shift:
        x = mx.roll(x, shift=(-shift, -shift), axis=(1, 2))
    inner = module.attention
    windows = inner.output(attention(inner.self, window_partition(x, window), mask))
    x = window_reverse(windows.reshape(-1, window, window, c), window, hp, wp)
    if shift:
        x = mx.roll(x, shift=(shift, shift), axis=(1, 2))
    x = shortcut + x[:, :h, :w, :].reshape(b, h * w, c)
    return x + module.output(module._act(module.intermediate(module.layernorm_after(x))))


def merge(module: PatchMerging, x: mx.array, resolution: tuple[int, int]) -> mx.array:
    h, w = resolution
    b, _, c = x.shape
    x = x.reshape(b, h, w, c)
    if h % 2 or w % 2:
        x = mx.pad(x, [(0, 0), (0, h % 2), (0, w % 2), (0, 0)])
    x = mx.concatenate([x[:, row::2, col::2, :] for col in range(2) for row in range(2)], axis=-1)
    return module.reduction(module.norm(x.reshape(b, -1, 4 * c)))


def stage(module: SwinStage, x: mx.array) -> mx.array:
    """Raster order in and out."""
    per_block = module.checkpoint == "block" and module.training
    for inner in module.blocks:
        if per_block:
            x = checkpoint(inner, lambda y, m=inner: block(m, y, module.resolution))(x)
        else:
            x = block(inner, x, module.resolution)
    return x if module.downsample is None else merge(module.downsample, x, module.resolution)
