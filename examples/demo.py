"""`make demo`: train the tutorial's CNN on a small learnable image task, end to end.

Synthetic 28x28 images whose class decides which quadrant is bright (plus noise), loaded by
two worker processes through shared memory, trained with the compiled step, AdamW and a
warm-up cosine schedule, validated every epoch, checkpointed under ./demo_run/checkpoints and
logged to CSV. Run it twice: the second run resumes from `last` and finds nothing left to do.
"""

from __future__ import annotations

import mlx_audio  # noqa: F401  (first: OpenBLAS before mlx.core on Linux)
from mlx_audio import DataLoader, OptimizerConfig, Trainer, TrainModule
from mlx_audio.data import Dataset
from mlx_audio.train.callbacks import (
    EarlyStopping,
    LearningRateMonitor,
    ModelCheckpoint,
    ProgressBar,
)
from mlx_audio.train.schedulers import WarmupCosineScheduler

import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim
import numpy as np


class Quadrants(Dataset):
    def __init__(self, size: int, seed: int) -> None:
        rng = np.random.default_rng(seed)
        self.labels = rng.integers(0, 4, size)
        self.images = rng.standard_normal((size, 28, 28)).astype(np.float32) * 0.8
        for i, label in enumerate(self.labels):
            r, c = divmod(int(label), 2)
            self.images[i, r * 14 : (r + 1) * 14, c * 14 : (c + 1) * 14] += 0.15

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int):
        return self.images[index], int(self.labels[index])


class CNN(TrainModule):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, kernel_size=3, padding=1)
        self.conv2 = nn.Conv2d(16, 32, kernel_size=3, padding=1)
        self.pool = nn.MaxPool2d(kernel_size=2, stride=2)
        self.fc = nn.Linear(32 * 7 * 7, 4)

    def __call__(self, x: mx.array) -> mx.array:
        x = self.pool(nn.relu(self.conv1(x[..., None])))
        x = self.pool(nn.relu(self.conv2(x)))
        return self.fc(x.reshape(x.shape[0], -1))

    def compute_loss(self, batch):
        images, labels = batch
        logits = self(images)
        loss = mx.mean(nn.losses.cross_entropy(logits, labels))
        return loss, {"accuracy": mx.mean(mx.argmax(logits, axis=-1) == labels)}

    def configure_optimizers(self) -> OptimizerConfig:
        total = self.trainer.max_steps or 1000
        schedule = WarmupCosineScheduler(
            peak_lr=2e-3, warmup_steps=total // 10, total_steps=total, min_lr=1e-5
        )
        return OptimizerConfig(
            optim.AdamW(learning_rate=schedule, weight_decay=0.01), lr_schedule_name="warmup_cosine"
        )


if __name__ == "__main__":
    train_loader = DataLoader(Quadrants(3000, seed=0), batch_size=64, shuffle=True, num_workers=2)
    val_loader = DataLoader(Quadrants(600, seed=1), batch_size=128, num_workers=2)
    trainer = Trainer(
        max_epochs=3,
        gradient_clip_val=1.0,
        seed=42,
        default_root_dir="demo_run",
        callbacks=[
            ProgressBar(refresh_rate=10),
            LearningRateMonitor(),
            ModelCheckpoint(monitor="val_accuracy", mode="max", save_top_k=1),
            EarlyStopping(monitor="val_accuracy", mode="max", patience=2),
        ],
    )
    model = CNN()
    print(
        f"mlx-audio demo: {sum(p.size for p in model.parameters().values()):,} parameters, device {mx.default_device()}"
    )
    trainer.fit(model, train_loader, val_loader, ckpt_path="last")
    if "val_accuracy" in trainer.callback_metrics:
        print(f"validation accuracy: {trainer.callback_metrics['val_accuracy']:.3f}")
