"""The command's audio classifier: log-mels on the accelerator + ``AudioCNN`` (or multi-label
with BCE and mAP), its augmentation in the compiled step, and its optimizer and schedule."""

from __future__ import annotations

from typing import Any

import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim

from mlx_audio.data import LogMel
from mlx_audio.models import AudioCNN
from mlx_audio.train import OptimizerConfig, TrainModule
from mlx_audio.train.schedulers import WarmupCosineScheduler

from . import augment, clips
from .config import Settings


class AudioClassifier(TrainModule):
    """Waveforms ``(B, samples)`` -> normalized log-mels on the accelerator -> ``AudioCNN``.

    ``multilabel``: several classes per clip (multi-hot targets), sigmoid outputs trained with
    binary cross-entropy; validation logs ``val_mAP`` (macro average precision, AudioSet's
    mAP: ``mlx_audio.train.metrics.AveragePrecision``) computed over the whole epoch."""

    def __init__(self, settings: Settings, num_classes: int, multilabel: bool = False) -> None:
        super().__init__()
        model = settings.model
        self.settings = settings
        self.num_classes = num_classes
        self.multilabel = multilabel
        if multilabel:
            from mlx_audio.train.metrics import AveragePrecision

            self.val_map = AveragePrecision("multilabel", num_labels=num_classes)
        self.features = LogMel(
            settings.data.sample_rate,
            n_fft=model.n_fft,
            hop_length=model.hop_length,
            n_mels=model.n_mels,
            f_min=model.f_min,
            top_db=model.top_db,
        )
        self.net = AudioCNN(
            num_classes=num_classes, channels=tuple(model.channels), dropout=model.dropout
        )
        self.masks, self.mixup = augment.on_device(settings, num_classes)

    def frames(self, lengths: mx.array) -> mx.array:
        """Each clip's log-mel frames from its samples (duration batching's lengths)."""
        return lengths // self.settings.model.hop_length + 1

    def normalized(self, waves: mx.array, lengths: mx.array | None = None) -> mx.array:
        """Log-mels normalized per clip; with ``lengths`` (a padded batch) over each clip's own
        frames only, its padding then set to 0 (the clip's mean)."""
        mels = self.features.features(waves)
        if lengths is None:
            return (mels - mx.mean(mels, axis=(1, 2), keepdims=True)) / (
                mx.std(mels, axis=(1, 2), keepdims=True) + 1e-5
            )
        valid = mx.arange(mels.shape[-1])[None, None, :] < self.frames(lengths)[:, None, None]
        count = mx.sum(valid, axis=(1, 2), keepdims=True) * mels.shape[1]
        mean = mx.sum(mx.where(valid, mels, 0.0), axis=(1, 2), keepdims=True) / count
        centred = mx.where(valid, mels - mean, 0.0)
        std = mx.sqrt(mx.sum(centred * centred, axis=(1, 2), keepdims=True) / count)
        return centred / (std + 1e-5)

    def __call__(self, waves: mx.array, lengths: mx.array | None = None) -> mx.array:
        return self.net(self.normalized(waves, lengths)[:, None])

    def lengths_of(self, batch: Any) -> mx.array | None:
        """Duration batching's padded batches end with the clips' lengths (PadCollate)."""
        return batch[-1] if self.settings.data.batching == "duration" else None

    def compute_loss(self, batch: Any) -> tuple[mx.array, dict[str, mx.array]]:
        waves, labels = batch[0], batch[1]  # duration batching: (waves, labels, lengths)
        logits, targets = augment.forward(self, waves, labels, self.lengths_of(batch))
        if self.multilabel:
            loss = mx.mean(nn.losses.binary_cross_entropy(logits, targets, with_logits=True))
            return loss, {}
        loss = mx.mean(nn.losses.cross_entropy(logits, targets))
        return loss, {"accuracy": mx.mean(mx.argmax(logits, axis=-1) == labels)}

    def validation_step(self, batch: Any, batch_idx: Any) -> Any:
        output = super().validation_step(batch, batch_idx)
        if (
            self.multilabel
        ):  # the epoch's mAP, not a mean of batches' (NOTE [logged Metric objects])
            self.val_map.update(self(batch[0], self.lengths_of(batch)), batch[1].astype(mx.int32))
            self.log("val_mAP", self.val_map, prog_bar=True)
        return output

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        if not self.multilabel:
            clips.check_labels(batch[1], self.num_classes)  # outside the compiled step: cheap

    def on_validation_batch_start(
        self, batch: Any, batch_idx: int, dataloader_idx: int = 0
    ) -> None:
        if not self.multilabel:
            clips.check_labels(batch[1], self.num_classes)

    def predict_step(self, batch: Any, batch_idx: Any) -> mx.array:
        logits = self(batch[0], self.lengths_of(batch))
        return mx.sigmoid(logits) if self.multilabel else mx.softmax(logits, axis=-1)

    def configure_optimizers(self) -> OptimizerConfig:
        return make_optimizer(self.settings, self.trainer.max_steps or 1000)


def make_optimizer(settings: Settings, total: int) -> OptimizerConfig:
    """The optimizer and schedule of ``settings`` for a run of ``total`` optimizer steps."""
    opt, sched = settings.optimizer, settings.scheduler
    lr: Any = opt.lr
    if sched.name == "warmup_cosine":
        lr = WarmupCosineScheduler(
            peak_lr=opt.lr,
            warmup_steps=int(total * sched.warmup_fraction),
            total_steps=total,
            min_lr=sched.min_lr,
        )
    if opt.name == "sgd":
        optimizer: optim.Optimizer = optim.SGD(
            learning_rate=lr, momentum=opt.momentum, weight_decay=opt.weight_decay
        )
    elif opt.name == "adam":
        optimizer = optim.Adam(learning_rate=lr)
    else:
        optimizer = optim.AdamW(learning_rate=lr, weight_decay=opt.weight_decay)
    return OptimizerConfig(optimizer, lr_schedule_name=sched.name)
