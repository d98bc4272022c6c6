"""The Swin stages of HTSAT (transformers' ClapAudioStage), computed in a window-major layout.

NOTE [window-major layout]
transformers' block runs: layer norm -> pad the (h, w) grid to a multiple of the window -> roll
by -shift -> partition into windows (a copy) -> attention -> reverse the partition (a copy) ->
roll back -> crop; the patch merging then takes four strided slices and concatenates them. Only
the attention cares where a token sits: the layer norms, the MLP and the residual adds act token
by token. So a stage keeps its tokens in the order the *next* attention wants: slot ``s`` of a
block's layout holds the padded-raster token ``order[s]`` (windows one after another, rows within
a window, after the roll). Between two blocks the order changes by one precomputed permutation (a
gather whose gradient is the gather by the inverse permutation, not a scatter); the patch merging
gathers its 2x2 neighbours straight from the last block's layout into the next stage's layout and
applies one layer norm and one matmul; nothing is rolled, padded, partitioned or reversed per
block. Padding slots (the grid padded to a multiple of the window, as transformers pads) are
zeroed after the first layer norm, as transformers' zero padding is; what the residual stream
carries in them is never read by a real token (``mx.where``, so not even a non-finite value).
The relative-position biases of a stage's blocks are gathered once per forward and each
shifted block's bias is added to the shift mask once: one additive mask per block for
``mx.fast.scaled_dot_product_attention``. ``swin_reference.py`` keeps transformers' formulation,
on the same modules, for the equivalence tests and the benchmarks' comparison.
"""

from __future__ import annotations

import mlx.core as mx
import mlx.nn as nn
import numpy as np

from .activations import activation
from .config import ClapAudioConfig
from .recompute import Dropout, checkpoint
from .window_kernels import explicit_attention, window_attention

NEIGHBOURS = ((0, 0), (1, 0), (0, 1), (1, 1))  # transformers' merge order: x0, x1, x2, x3


def window_order(hp: int, wp: int, window: int, shift: int) -> np.ndarray:
    """Padded-raster index held by each slot of the window-major layout of a block."""
    grid = np.roll(np.arange(hp * wp).reshape(hp, wp), (-shift, -shift), axis=(0, 1))
    return grid.reshape(hp // window, window, wp // window, window).transpose(0, 2, 1, 3).ravel()


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


def relative_position_index(window: int) -> np.ndarray:
    coords = np.stack(np.meshgrid(np.arange(window), np.arange(window), indexing="ij"))
    coords = coords.reshape(2, -1)
    relative = (coords[:, :, None] - coords[:, None, :]).transpose(1, 2, 0) + (window - 1)
    return (relative[..., 0] * (2 * window - 1) + relative[..., 1]).reshape(-1)


def _take(x: mx.array, index: mx.array, valid: mx.array | None) -> mx.array:
    out = mx.take(x, index, axis=1)
    return out if valid is None else mx.where(valid[:, None], out, mx.zeros((), x.dtype))


class RowGather:
    """``x[:, index]`` along the token axis, an index equal to ``n_source`` giving a zero row;
    ``index`` takes each source row at most once, so the gradient is a gather too."""

    def __init__(self, index: np.ndarray, n_source: int) -> None:
        index = np.asarray(index, dtype=np.int64)
        valid = index < n_source
        if len(np.unique(index[valid])) != int(valid.sum()):
            raise ValueError("a RowGather index must take each source row at most once")
        inverse = np.full(n_source, len(index), dtype=np.int64)
        inverse[index[valid]] = np.flatnonzero(valid)
        back = inverse < len(index)
        self.identity = bool(
            valid.all() and len(index) == n_source and (index == np.arange(n_source)).all()
        )
        fwd = (
            mx.array(np.where(valid, index, 0).astype(np.int32)),
            None if valid.all() else mx.array(valid),
        )
        bwd = (
            mx.array(np.where(back, inverse, 0).astype(np.int32)),
            None if back.all() else mx.array(back),
        )

        @mx.custom_function
        def gather(x: mx.array) -> mx.array:
            return _take(x, *fwd)

        @gather.vjp
        def gather_vjp(primals: tuple, cotangent: mx.array, output: mx.array) -> mx.array:
            return _take(cotangent, *bwd)

        self._gather = gather

    def __call__(self, x: mx.array) -> mx.array:
        return x if self.identity else self._gather(x)


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
        self._relative_position_index = mx.array(relative_position_index(window))
        self.dropout = Dropout(config.attention_probs_dropout_prob)
        self.dropout_p = config.attention_probs_dropout_prob

    # Window attention through mx.fast.scaled_dot_product_attention, or the CUDA kernels where
    # they apply (NOTE [window attention kernels]); False: the explicit softmax(q k^T + mask) v,
    # kept for comparison (and for dropout on the probabilities).
    fused = True

    def __call__(self, x: mx.array, mask: mx.array) -> mx.array:
        """``x``: (B, windows * n, C) in a window-major layout; ``mask``: the additive
        (1, heads, n, n) bias, or (1, windows * heads, n, n) bias + shift mask."""
        b, tokens, c = x.shape
        n, h, d = self.window**2, self.heads, self.head_dim
        parts = [self.query, self.key, self.value]  # one matmul for the three projections
        weight = mx.concatenate([p.weight for p in parts])
        qkv = x @ weight.T
        if "bias" in self.query:
            qkv = qkv + mx.concatenate([p.bias for p in parts])
        qkv = qkv.reshape(b, tokens // n, n, 3, h, d)
        per_window = mask.shape[1] == h  # the same mask in every window
        if self.fused and (self.dropout_p == 0 or not self.training):
            out = window_attention(qkv, mask, per_window)
        else:
            out = explicit_attention(qkv, mask, per_window, self.dropout)
        return out.reshape(b, tokens, c)


class Dense(nn.Module):
    """``dense`` + dropout (HF's SelfOutput / Output naming)."""

    def __init__(self, d_in: int, d_out: int, dropout: float) -> None:
        super().__init__()
        self.dense = nn.Linear(d_in, d_out)
        self.dropout = Dropout(dropout)

    def __call__(self, x: mx.array) -> mx.array:
        return self.dropout(self.dense(x))


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int, window: int, config: ClapAudioConfig) -> None:
        super().__init__()
        self.self = SelfAttention(dim, heads, window, config)
        self.output = Dense(dim, dim, config.attention_probs_dropout_prob)

    def __call__(self, x: mx.array, mask: mx.array) -> mx.array:
        return self.output(self.self(x, mask))


class SwinBlock(nn.Module):
    def __init__(
        self, dim: int, heads: int, window: int, shift: int, config: ClapAudioConfig
    ) -> None:
        super().__init__()
        self.window, self.shift = window, shift
        self.layernorm_before = nn.LayerNorm(dim, eps=config.layer_norm_eps)
        self.attention = Attention(dim, heads, window, config)
        self.layernorm_after = nn.LayerNorm(dim, eps=config.layer_norm_eps)
        self.intermediate = Dense(dim, int(config.mlp_ratio * dim), 0.0)
        self.output = Dense(int(config.mlp_ratio * dim), dim, config.hidden_dropout_prob)
        self._act = activation(config.hidden_act)

    def __call__(self, x: mx.array, mask: mx.array, valid: mx.array | None = None) -> mx.array:
        """``x`` in this block's window-major layout; ``valid``: False at padding slots."""
        y = self.layernorm_before(x)
        if valid is not None:
            y = mx.where(valid[:, None], y, mx.zeros((), y.dtype))
        x = x + self.attention(y, mask)
        return x + self.output(self._act(self.intermediate(self.layernorm_after(x))))


class PatchMerging(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)
        self.norm = nn.LayerNorm(4 * dim)

    def __call__(self, x: mx.array) -> mx.array:
        """``x``: (B, tokens, 4, C) neighbours, gathered in the next layout's order."""
        b, n, _, c = x.shape
        return self.reduction(self.norm(x.reshape(b, n, 4 * c)))


class SwinStage(nn.Module):
    """Blocks of alternating shift, then the patch merging; input and output in the layouts
    of NOTE [window-major layout] (``enter`` takes the raster order in)."""

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
        h, w = resolution
        window, shift = config.window_size, config.window_size // 2
        if min(resolution) <= window:  # the window covers everything: no partition, no shift
            window, shift = min(resolution), 0
        self.blocks = [
            SwinBlock(dim, heads, window, shift if i % 2 else 0, config) for i in range(depth)
        ]
        self.downsample = PatchMerging(dim) if downsample else None
        self.checkpoint = False
        hp, wp = h + (-h) % window, w + (-w) % window
        self.padded = (hp, wp)
        orders = [window_order(hp, wp, window, block.shift) for block in self.blocks]
        object.__setattr__(self, "orders", orders)
        moves = [RowGather(np.argsort(a)[b], hp * wp) for a, b in zip(orders, orders[1:])]
        object.__setattr__(self, "_moves", moves)
        real = (orders[0] // wp < h) & (orders[0] % wp < w)
        entry = np.where(real, (orders[0] // wp) * w + orders[0] % wp, h * w)
        object.__setattr__(self, "_entry", RowGather(entry, h * w))
        padded = (hp, wp) != (h, w)
        self._valid = [mx.array((o // wp < h) & (o % wp < w)) if padded else None for o in orders]
        self._index = mx.array(relative_position_index(window))
        self._shift_mask = (
            mx.array(shift_mask(hp, wp, window, shift)) if shift and depth > 1 else None
        )
        object.__setattr__(self, "_exit", None)

    def link(self, following: SwinStage | None) -> None:
        """The gather out of the last block's layout: the 2x2 neighbours in ``following``'s
        entry layout (patch merging), or the raster order (the last stage)."""
        h, w = self.resolution
        hp, wp = self.padded
        last = np.argsort(self.orders[-1])  # padded-raster index -> slot
        if following is None:
            rows, cols = np.divmod(np.arange(h * w), w)
            object.__setattr__(self, "_exit", RowGather(last[rows * wp + cols], hp * wp))
            return
        h2, w2 = following.resolution
        wp2 = following.padded[1]
        i2, j2 = np.divmod(following.orders[0], wp2)
        index = []
        for r, c in NEIGHBOURS:
            i, j = 2 * i2 + r, 2 * j2 + c
            inside = (i2 < h2) & (j2 < w2) & (i < h) & (j < w)
            index.append(
                np.where(inside, last[np.minimum(i, hp - 1) * wp + np.minimum(j, wp - 1)], hp * wp)
            )
        object.__setattr__(self, "_exit", RowGather(np.stack(index, axis=1).ravel(), hp * wp))

    def enter(self, x: mx.array) -> mx.array:
        """Raster (B, h * w, C) -> the first block's layout."""
        return self._entry(x)

    def masks(self) -> list[mx.array]:
        """Each block's additive attention mask, the position biases gathered once."""
        tables = mx.stack([b.attention.self.relative_position_bias_table for b in self.blocks])
        n = self.blocks[0].window ** 2
        biases = tables[:, self._index].reshape(len(self.blocks), n, n, -1).transpose(0, 3, 1, 2)
        out = []
        for block, bias in zip(self.blocks, mx.split(biases, len(self.blocks), axis=0)):
            if block.shift:
                shifted = bias + self._shift_mask[:, None].astype(bias.dtype)
                out.append(shifted.reshape(1, -1, n, n))
            else:
                out.append(bias)
        return out

    def __call__(self, x: mx.array) -> mx.array:
        masks = self.masks()
        per_block = self.checkpoint == "block" and self.training
        for i, block in enumerate(self.blocks):
            if i:
                x = self._moves[i - 1](x)
            run = checkpoint(block) if per_block else block
            valid = self._valid[i]
            x = run(x, masks[i]) if valid is None else run(x, masks[i], valid)
        x = self._exit(x)
        if self.downsample is None:
            return x
        b, _, c = x.shape
        return self.downsample(x.reshape(b, -1, 4, c))
