"""``sync_batchnorm`` under ``mlx.launch``: ``python syncbn_script.py OUT RANKS_BATCH SYNC``
trains a small batch-norm network for a few steps and writes its weights and batch-norm running
statistics to ``OUT/weights.safetensors`` (rank 0)."""

from __future__ import annotations

import sys

import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim
from train_testing import blobs

from mlx_audio.data import DataLoader
from mlx_audio.train import Trainer, TrainModule


class Normed(TrainModule):
    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(8, 16)
        self.bn = nn.BatchNorm(16)
        self.fc2 = nn.Linear(16, 3)

    def compute_loss(self, batch):
        x, y = batch
        logits = self.fc2(nn.relu(self.bn(self.fc1(x * 3.0 + 1.0))))
        return mx.mean(nn.losses.cross_entropy(logits, y))

    def configure_optimizers(self):
        return optim.SGD(learning_rate=0.1)


def flat_params(model):
    from mlx.utils import tree_flatten

    return tree_flatten(model.parameters())


if __name__ == "__main__":
    out, batch_size, sync = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1"
    trainer = Trainer(
        max_steps=4,
        seed=0,
        sync_batchnorm=sync,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    model = Normed()
    trainer.fit(model, DataLoader(blobs(64), batch_size=batch_size, shuffle=True, seed=3))
    if trainer.is_global_zero:
        mx.save_safetensors(f"{out}/weights.safetensors", dict(flat_params(model)))
        print("sync class:", type(model.bn).__name__)
