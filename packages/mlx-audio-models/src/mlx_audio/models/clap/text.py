"""RoBERTa text encoder, as transformers' ClapTextModel (position ids from ``input_ids != pad``)."""

from __future__ import annotations

import math

import mlx.core as mx
import mlx.nn as nn

from .activations import activation
from .config import ClapTextConfig
from .recompute import Dropout, checkpoint


class Embeddings(nn.Module):
    def __init__(self, config: ClapTextConfig) -> None:
        super().__init__()
        self.word_embeddings = nn.Embedding(config.vocab_size, config.hidden_size)
        self.position_embeddings = nn.Embedding(config.max_position_embeddings, config.hidden_size)
        self.token_type_embeddings = nn.Embedding(config.type_vocab_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = Dropout(config.hidden_dropout_prob)
        self.pad = config.pad_token_id

    def __call__(self, input_ids: mx.array) -> mx.array:
        mask = (input_ids != self.pad).astype(mx.int32)
        positions = (
            mx.cumsum(mask, axis=1) * mask + self.pad
        )  # RoBERTa/fairseq: padding keeps position `pad`
        x = self.word_embeddings(input_ids) + self.token_type_embeddings(mx.zeros_like(input_ids))
        x = x + self.position_embeddings(positions)
        return self.dropout(self.LayerNorm(x))


class SelfAttention(nn.Module):
    def __init__(self, config: ClapTextConfig) -> None:
        super().__init__()
        if config.hidden_size % config.num_attention_heads:
            raise ValueError(
                f"hidden size {config.hidden_size} is not a multiple of {config.num_attention_heads} heads"
            )
        self.heads = config.num_attention_heads
        self.head_dim = config.hidden_size // self.heads
        self.query = nn.Linear(config.hidden_size, config.hidden_size)
        self.key = nn.Linear(config.hidden_size, config.hidden_size)
        self.value = nn.Linear(config.hidden_size, config.hidden_size)
        self.dropout = Dropout(config.attention_probs_dropout_prob)

    def __call__(self, x: mx.array, bias: mx.array) -> mx.array:
        b, n, c = x.shape

        def heads(t: mx.array) -> mx.array:
            return t.reshape(b, n, self.heads, self.head_dim).transpose(0, 2, 1, 3)

        q, k, v = heads(self.query(x)), heads(self.key(x)), heads(self.value(x))
        scores = (q @ k.transpose(0, 1, 3, 2)) * (1.0 / math.sqrt(self.head_dim)) + bias
        probs = self.dropout(mx.softmax(scores.astype(mx.float32), axis=-1).astype(q.dtype))
        return (probs @ v).transpose(0, 2, 1, 3).reshape(b, n, c)


class AddNorm(nn.Module):
    """``dense`` -> dropout -> ``LayerNorm(x + residual)`` (HF's SelfOutput / Output)."""

    def __init__(self, d_in: int, config: ClapTextConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(d_in, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = Dropout(config.hidden_dropout_prob)

    def __call__(self, x: mx.array, residual: mx.array) -> mx.array:
        return self.LayerNorm(self.dropout(self.dense(x)) + residual)


class Attention(nn.Module):
    def __init__(self, config: ClapTextConfig) -> None:
        super().__init__()
        self.self = SelfAttention(config)
        self.output = AddNorm(config.hidden_size, config)

    def __call__(self, x: mx.array, bias: mx.array) -> mx.array:
        return self.output(self.self(x, bias), x)


class Intermediate(nn.Module):
    def __init__(self, config: ClapTextConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.intermediate_size)
        self._act = activation(config.hidden_act)

    def __call__(self, x: mx.array) -> mx.array:
        return self._act(self.dense(x))


class Layer(nn.Module):
    def __init__(self, config: ClapTextConfig) -> None:
        super().__init__()
        self.attention = Attention(config)
        self.intermediate = Intermediate(config)
        self.output = AddNorm(config.intermediate_size, config)

    def __call__(self, x: mx.array, bias: mx.array) -> mx.array:
        x = self.attention(x, bias)
        return self.output(self.intermediate(x), x)


class Encoder(nn.Module):
    def __init__(self, config: ClapTextConfig) -> None:
        super().__init__()
        self.layer = [Layer(config) for _ in range(config.num_hidden_layers)]
        self.checkpoint = False

    def __call__(self, x: mx.array, bias: mx.array) -> mx.array:
        for layer in self.layer:
            x = checkpoint(layer)(x, bias) if self.checkpoint and self.training else layer(x, bias)
        return x


class Pooler(nn.Module):
    def __init__(self, config: ClapTextConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)

    def __call__(self, x: mx.array) -> mx.array:
        return mx.tanh(self.dense(x[:, 0]))


class RobertaEncoder(nn.Module):
    """Returns the pooled (B, hidden_size) text feature (tanh pooler over the first token)."""

    def __init__(self, config: ClapTextConfig) -> None:
        super().__init__()
        self.config = config
        self.embeddings = Embeddings(config)
        self.encoder = Encoder(config)
        self.pooler = Pooler(config)

    def __call__(self, input_ids: mx.array, attention_mask: mx.array | None = None) -> mx.array:
        x = self.embeddings(input_ids)
        if attention_mask is None:
            attention_mask = mx.ones(input_ids.shape, dtype=x.dtype)
        bias = ((1.0 - attention_mask.astype(mx.float32)) * mx.finfo(mx.float32).min)[
            :, None, None, :
        ].astype(x.dtype)
        return self.pooler(self.encoder(x, bias))
