"""CNN classifiers: the tutorial's MNIST-style network, and an audio CNN for log-mels of any length."""

from __future__ import annotations

import mlx.core as mx
import mlx.nn as nn


class CNNClassifier(nn.Module):
    """The tutorial's CNN as a reusable classifier for (B, H, W) or (B, H, W, C) images.

    Two 3x3 conv + ReLU + 2x2 max-pool blocks, then ``hidden`` units and ``num_classes``
    logits. ``image_size`` must be divisible by 4.
    """

    def __init__(
        self, num_classes: int = 10, in_channels: int = 1, image_size: int = 28, hidden: int = 128
    ) -> None:
        super().__init__()
        if image_size % 4:
            raise ValueError(f"image_size must be divisible by 4, got {image_size}")
        self.conv1 = nn.Conv2d(in_channels, 32, kernel_size=3, padding=1)
        self.conv2 = nn.Conv2d(32, 64, kernel_size=3, padding=1)
        self.pool = nn.MaxPool2d(kernel_size=2, stride=2)
        self.fc1 = nn.Linear(64 * (image_size // 4) ** 2, hidden)
        self.fc2 = nn.Linear(hidden, num_classes)

    def __call__(self, x: mx.array) -> mx.array:
        if x.ndim == 3:
            x = x[..., None]
        x = self.pool(nn.relu(self.conv1(x)))
        x = self.pool(nn.relu(self.conv2(x)))
        return self.fc2(nn.relu(self.fc1(x.reshape(x.shape[0], -1))))


class AudioCNN(nn.Module):
    """Log-mel classifier: input (B, 1, n_mels, frames) with any number of frames.

    ``channels`` conv blocks (3x3 conv, batch norm, ReLU, 2x2 max-pool) and a global average
    pool over frequency and time, so clips of different lengths share the same weights.
    """

    def __init__(
        self, num_classes: int, channels: tuple[int, ...] = (32, 64, 128), dropout: float = 0.1
    ) -> None:
        super().__init__()
        widths = (1, *channels)
        self.convs = [
            nn.Conv2d(widths[i], widths[i + 1], kernel_size=3, padding=1)
            for i in range(len(channels))
        ]
        self.norms = [nn.BatchNorm(c) for c in channels]
        self.pool = nn.MaxPool2d(kernel_size=2, stride=2)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(channels[-1], num_classes)

    def __call__(self, mels: mx.array) -> mx.array:
        if mels.ndim != 4 or mels.shape[1] != 1:
            raise ValueError(
                f"AudioCNN takes (batch, 1, n_mels, frames), got shape {tuple(mels.shape)}"
            )
        x = mels.transpose(0, 2, 3, 1)  # channels-last for MLX convolutions
        for conv, norm in zip(self.convs, self.norms):
            x = nn.relu(norm(conv(x)))
            if x.shape[1] >= 2 and x.shape[2] >= 2:
                x = self.pool(x)
        return self.head(self.dropout(mx.mean(x, axis=(1, 2))))
