"""`make demo`: train an audio classifier on real speech files, end to end, offline.

Spoken digits "zero" ... "nine" are synthesized once with espeak-ng over 240 voices (accents x
voice variants), speeds and pitches, mixed with noise at random SNRs and written as 16 kHz FLAC
files with CSV manifests (examples/spoken_digits.py); 48 whole voices are held out. Training
reads the files through `AudioManifest` in two worker processes (decode, random crop, gain),
batches clips of different lengths by length buckets with padding, computes log-mels on the
accelerator (`LogMel` in `mlx_transforms`) and trains `AudioCNN` with the Trainer: progress bar,
checkpoints, CSV + TensorBoard logs. It prints the accuracy on the held-out voices, where the
logs and checkpoints are, and saves a PNG of the training curves (with matplotlib installed:
`uv sync --extra demo` or `pip install matplotlib`). Run it again: it resumes from `last` and
finds nothing left to do.
"""

from __future__ import annotations

import csv
import os
import time

import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim
import numpy as np
import spoken_digits
from mlx.utils import tree_flatten

from mlx_audio import DataLoader, OptimizerConfig, Trainer, TrainModule
from mlx_audio.data import AudioManifest, BucketBatchSampler, LogMel, PadCollate, RandomCrop
from mlx_audio.loggers import CSVLogger, TensorBoardLogger
from mlx_audio.models.cnn import AudioCNN
from mlx_audio.train.callbacks import LearningRateMonitor, ModelCheckpoint
from mlx_audio.train.schedulers import WarmupCosineScheduler

RATE = spoken_digits.RATE
ROOT = os.environ.get("MLX_AUDIO_DEMO_DATA", os.path.join("data", "spoken_digits"))
RUN = os.environ.get("MLX_AUDIO_DEMO_RUN", "demo_run")
SMALL = (
    os.environ.get("MLX_AUDIO_DEMO_SMALL") == "1"
)  # a quick smoke run (tests): 15 voices, 1 epoch
EPOCHS = 1 if SMALL else 6


def random_gain(sample, rng):
    """In the workers, seeded per sample: a random level."""
    wave, label = sample
    return wave * np.float32(rng.uniform(0.5, 1.5)), label


class DigitClassifier(TrainModule):
    def __init__(self) -> None:
        super().__init__()
        self.features = LogMel(RATE, n_fft=400, hop_length=160, n_mels=40, f_min=50.0, top_db=80.0)
        self.net = AudioCNN(num_classes=len(spoken_digits.DIGITS), channels=(16, 32, 64, 128))

    def __call__(self, waves: mx.array) -> mx.array:
        mels = self.features.features(waves)  # (batch, 40, frames), on the accelerator
        mels = (mels - mx.mean(mels, axis=(1, 2), keepdims=True)) / (
            mx.std(mels, axis=(1, 2), keepdims=True) + 1e-5
        )
        return self.net(mels[:, None])

    def compute_loss(self, batch):
        waves, labels, _lengths = batch
        logits = self(waves)
        loss = mx.mean(nn.losses.cross_entropy(logits, labels, label_smoothing=0.05))
        return loss, {"accuracy": mx.mean(mx.argmax(logits, axis=-1) == labels)}

    def configure_optimizers(self) -> OptimizerConfig:
        total = self.trainer.max_steps or 1000
        schedule = WarmupCosineScheduler(
            peak_lr=2e-3, warmup_steps=total // 20, total_steps=total, min_lr=2e-5
        )
        return OptimizerConfig(
            optim.AdamW(learning_rate=schedule, weight_decay=0.01), lr_schedule_name="warmup_cosine"
        )


def loaders() -> tuple[DataLoader, DataLoader]:
    train = AudioManifest(os.path.join(ROOT, "train.csv"), sample_rate=RATE)
    val = AudioManifest(os.path.join(ROOT, "val.csv"), sample_rate=RATE)
    buckets = BucketBatchSampler(np.minimum(train.lengths(), RATE), batch_size=32, num_buckets=4)
    val_buckets = BucketBatchSampler(val.lengths(), batch_size=64, num_buckets=4, shuffle=False)
    train_loader = DataLoader(
        train,
        batch_sampler=buckets,
        collate_fn=PadCollate(pad_to_lengths=buckets.boundaries),
        cpu_transforms=[RandomCrop(RATE), random_gain],
        num_workers=2,
    )
    val_loader = DataLoader(
        val,
        batch_sampler=val_buckets,
        collate_fn=PadCollate(pad_to_lengths=val_buckets.boundaries),
        num_workers=2,
    )
    return train_loader, val_loader


def plot_curves(log_dir: str, out: str) -> str | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    path = os.path.join(log_dir, "metrics.csv")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        rows = list(csv.DictReader(f))
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for key, axis in (("train_loss", left), ("val_loss", left), ("val_accuracy", right)):
        points = [(int(r["step"]), float(r[key])) for r in rows if r.get(key)]
        if points:
            axis.plot(
                *zip(*points),
                label=key,
                marker="o" if key.startswith("val") else None,
                markersize=3,
            )
    left.set_xlabel("step")
    right.set_xlabel("step")
    left.legend()
    right.legend()
    fig.suptitle("mlx-audio demo: spoken digits, held-out voices")
    fig.savefig(out, dpi=100)
    return out


if __name__ == "__main__":
    start = time.perf_counter()
    spoken_digits.generate(
        ROOT, clips_per_digit=1 if SMALL else 2, voice_limit=15 if SMALL else None
    )
    train_loader, val_loader = loaders()
    checkpoint = ModelCheckpoint(
        monitor="val_accuracy", mode="max", save_top_k=1, filename="{epoch}-{val_accuracy:.3f}"
    )
    trainer = Trainer(
        max_epochs=EPOCHS,
        gradient_clip_val=1.0,
        seed=42,
        default_root_dir=RUN,
        logger=[
            CSVLogger(RUN, name="logs", version=0),
            TensorBoardLogger(RUN, name="tensorboard", version=0),
        ],
        callbacks=[LearningRateMonitor(), checkpoint],
    )
    model = DigitClassifier()
    size = sum(v.size for _, v in tree_flatten(model.parameters()))
    print(
        f"mlx-audio demo: AudioCNN ({size:,} parameters) on {mx.default_device()}, {len(train_loader.dataset)} training clips"
    )
    trainer.fit(model, train_loader, val_loader, ckpt_path="last")
    accuracy = trainer.callback_metrics.get("val_accuracy", checkpoint.best_model_score)
    if accuracy is not None:
        print(f"accuracy on {len(val_loader.dataset)} clips of held-out voices: {accuracy:.1%}")
    print(f"logs: {trainer.loggers[0].log_dir} (CSV), {trainer.loggers[1].log_dir} (TensorBoard)")
    print(
        f"checkpoints: {checkpoint.dirpath} (best: {os.path.basename(checkpoint.best_model_path) or '-'})"
    )
    png = plot_curves(trainer.loggers[0].log_dir, os.path.join(RUN, "curves.png"))
    print(
        f"training curves: {png}"
        if png
        else "training curves: none (install matplotlib; or nothing was trained)"
    )
    print(f"demo took {time.perf_counter() - start:.0f} s")
