"""The tutorial's MNIST CNN, parametrised by the number of classes (for tests and benchmarks)."""

import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim

from mlx_audio.train import OptimizerConfig, TrainModule
from mlx_audio.train.schedulers import WarmupCosineScheduler


class MNISTLikeCNN(TrainModule):
    def __init__(self, classes: int = 10) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, kernel_size=3, padding=1)
        self.conv2 = nn.Conv2d(32, 64, kernel_size=3, padding=1)
        self.pool = nn.MaxPool2d(kernel_size=2, stride=2)
        self.fc1 = nn.Linear(64 * 7 * 7, 128)
        self.fc2 = nn.Linear(128, classes)

    def __call__(self, x: mx.array) -> mx.array:
        if x.ndim == 3:
            x = x[:, :, :, None]
        x = self.pool(nn.relu(self.conv1(x)))
        x = self.pool(nn.relu(self.conv2(x)))
        x = nn.relu(self.fc1(x.reshape(x.shape[0], -1)))
        return self.fc2(x)

    def compute_loss(self, batch):
        images, labels = batch
        logits = self(images)
        loss = mx.mean(nn.losses.cross_entropy(logits, labels))
        return loss, {"accuracy": mx.mean(mx.argmax(logits, axis=-1) == labels)}

    def configure_optimizers(self) -> OptimizerConfig:
        total = self.trainer.max_steps or 1000
        schedule = WarmupCosineScheduler(
            peak_lr=1e-3, warmup_steps=min(100, total // 10), total_steps=total, min_lr=1e-5
        )
        return OptimizerConfig(
            optim.AdamW(learning_rate=schedule, weight_decay=0.01), "warmup_cosine"
        )
