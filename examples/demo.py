"""`make demo`: train an audio classifier end to end on synthetic sound clips.

Each 1-second, 16 kHz clip holds a tone whose pitch (A4, B4, C#5 or D#5) decides its class,
buried in louder noise at a random level and onset. Two worker processes turn waveforms into
log-mel spectrograms (with a per-sample random gain, reproducible from the seed) and pass them
through shared memory; `AudioCNN` (global pooling, so any clip length works) trains with the
compiled step, AdamW and a warm-up cosine schedule, is validated every epoch, checkpointed
under ./demo_run/checkpoints and logged to CSV. Run it twice: the second run resumes from
`last` and finds nothing left to do.
"""

from __future__ import annotations

import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim
import numpy as np

import mlx_audio  # noqa: F401  (first: OpenBLAS before mlx.core on Linux)
from mlx_audio import DataLoader, OptimizerConfig, Trainer, TrainModule
from mlx_audio.data import Dataset
from mlx_audio.data.audio import log_mel_spectrogram, mel_filterbank
from mlx_audio.models.cnn import AudioCNN
from mlx_audio.train.callbacks import (
    EarlyStopping,
    LearningRateMonitor,
    ModelCheckpoint,
    ProgressBar,
)
from mlx_audio.train.schedulers import WarmupCosineScheduler

RATE, PITCHES = 16_000, (440.0, 494.0, 554.0, 622.0)
FILTERS = mel_filterbank(RATE, n_fft=512, n_mels=40, f_min=100, f_max=2000)


class Tones(Dataset):
    """Noisy clips stored as one float32 array (cheap to share with forked workers)."""

    def __init__(self, size: int, seed: int) -> None:
        rng = np.random.default_rng(seed)
        self.labels = rng.integers(0, len(PITCHES), size)
        t = np.arange(RATE) / RATE
        self.waves = (rng.standard_normal((size, RATE)) * rng.uniform(0.3, 1.0, (size, 1))).astype(
            np.float32
        )
        for i, label in enumerate(self.labels):
            onset = rng.integers(0, RATE // 2)
            tone = 0.12 * np.sin(
                2 * np.pi * PITCHES[label] * t[: RATE - onset] + rng.uniform(0, 2 * np.pi)
            )
            self.waves[i, onset:] += tone.astype(np.float32)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int):
        return self.waves[index], int(self.labels[index])


def to_log_mel(sample, rng):
    """Runs in the workers: a random gain (seeded per sample), then a (40, 51) log-mel."""
    wave, label = sample
    wave = wave * np.float32(rng.uniform(0.5, 2.0))
    mel = log_mel_spectrogram(wave, RATE, n_fft=512, hop_length=320, filters=FILTERS, top_db=80.0)
    return (mel - mel.mean()) / (mel.std() + 1e-5), label


class SoundClassifier(TrainModule):
    def __init__(self) -> None:
        super().__init__()
        self.net = AudioCNN(num_classes=len(PITCHES), channels=(8, 16, 32))

    def __call__(self, mels: mx.array) -> mx.array:
        return self.net(mels[:, None])

    def compute_loss(self, batch):
        mels, labels = batch
        logits = self(mels)
        loss = mx.mean(nn.losses.cross_entropy(logits, labels))
        return loss, {"accuracy": mx.mean(mx.argmax(logits, axis=-1) == labels)}

    def configure_optimizers(self) -> OptimizerConfig:
        total = self.trainer.max_steps or 1000
        schedule = WarmupCosineScheduler(
            peak_lr=3e-3, warmup_steps=total // 10, total_steps=total, min_lr=1e-5
        )
        return OptimizerConfig(
            optim.AdamW(learning_rate=schedule, weight_decay=0.01), lr_schedule_name="warmup_cosine"
        )


if __name__ == "__main__":
    train_loader = DataLoader(
        Tones(1024, seed=0), batch_size=32, shuffle=True, num_workers=2, cpu_transforms=to_log_mel
    )
    val_loader = DataLoader(
        Tones(256, seed=1), batch_size=64, num_workers=2, cpu_transforms=to_log_mel
    )
    trainer = Trainer(
        max_epochs=4,
        gradient_clip_val=1.0,
        seed=42,
        default_root_dir="demo_run",
        callbacks=[
            ProgressBar(refresh_rate=8),
            LearningRateMonitor(),
            ModelCheckpoint(monitor="val_accuracy", mode="max", save_top_k=1),
            EarlyStopping(monitor="val_accuracy", mode="max", patience=2),
        ],
    )
    model = SoundClassifier()
    print(
        f"mlx-audio demo: AudioCNN with {sum(v.size for v in model.parameters().values()):,} parameters on {mx.default_device()}"
    )
    trainer.fit(model, train_loader, val_loader, ckpt_path="last")
    if "val_accuracy" in trainer.callback_metrics:
        print(f"validation accuracy: {trainer.callback_metrics['val_accuracy']:.3f}")
