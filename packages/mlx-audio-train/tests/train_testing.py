"""Tiny models and data shared by the train tests (importable from spawned scripts too)."""

from __future__ import annotations

import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim
import numpy as np
from mlx.utils import tree_flatten

from mlx_audio.data import ArrayDataset
from mlx_audio.train import OptimizerConfig, TrainModule
from mlx_audio.train.schedulers import WarmupCosineScheduler


def blobs(n: int = 256, dim: int = 8, classes: int = 3, seed: int = 0) -> ArrayDataset:
    """A learnable task: Gaussian blobs around fixed class centres."""
    rng = np.random.default_rng(seed)
    centres = np.random.default_rng(99).standard_normal((classes, dim)).astype(np.float32) * 3
    labels = rng.integers(0, classes, n)
    points = centres[labels] + rng.standard_normal((n, dim)).astype(np.float32)
    return ArrayDataset(points.astype(np.float32), labels.astype(np.int32))


class TinyClassifier(TrainModule):
    """Two layers with dropout; AdamW on a warmup-cosine schedule of fixed length."""

    def __init__(
        self,
        dim: int = 8,
        classes: int = 3,
        total_steps: int = 40,
        lr: float = 1e-2,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, 16)
        self.drop = nn.Dropout(dropout)
        self.fc2 = nn.Linear(16, classes)
        self.total_steps, self.lr = total_steps, lr

    def __call__(self, x: mx.array) -> mx.array:
        return self.fc2(self.drop(nn.relu(self.fc1(x))))

    def compute_loss(self, batch):
        x, y = batch
        logits = self(x)
        loss = mx.mean(nn.losses.cross_entropy(logits, y))
        return loss, {"accuracy": mx.mean(mx.argmax(logits, axis=-1) == y)}

    def configure_optimizers(self) -> OptimizerConfig:
        schedule = WarmupCosineScheduler(
            peak_lr=self.lr, warmup_steps=4, total_steps=self.total_steps, min_lr=1e-4
        )
        return OptimizerConfig(
            optim.AdamW(learning_rate=schedule, weight_decay=0.01), lr_schedule_name="warmup_cosine"
        )


def flat(tree) -> dict[str, np.ndarray]:
    return {k: np.array(v) for k, v in tree_flatten(tree)}


def assert_trees_equal(a, b) -> None:
    fa, fb = flat(a), flat(b)
    assert fa.keys() == fb.keys()
    for key in fa:
        np.testing.assert_array_equal(fa[key], fb[key], err_msg=key)
