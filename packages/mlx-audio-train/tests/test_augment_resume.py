"""Device augmentation inside the compiled step draws from the Trainer's per-step key: a run
resumed mid-epoch ends bit-identical to an uninterrupted one (NOTE [device augmentation RNG])."""

import mlx.core as mx
import mlx.nn as nn
import pytest
from train_testing import TinyClassifier, assert_trees_equal, blobs, flat

from mlx_audio.data import DataLoader, Dataset
from mlx_audio.data.audio.augment import Compose, Gain, Shift
from mlx_audio.data.audio.augment_mlx import FrequencyMasking, Mixup, TimeMasking
from mlx_audio.train import Trainer
from mlx_audio.train.callbacks import ModelCheckpoint


class Augmented(TinyClassifier):
    """Blobs read as a (1 x 8) "spectrogram": SpecAugment, then mixup/cutmix, in the step."""

    def __init__(self, augment=True):
        super().__init__(total_steps=12, dropout=0.0)
        self.augment = augment
        self.freq = FrequencyMasking(1, iid_masks=True)
        self.time = TimeMasking(3, iid_masks=True)
        self.mix = Mixup(mixup_alpha=0.4, cutmix_alpha=1.0, prob=0.9, num_classes=3)

    def compute_loss(self, batch):
        x, y = batch
        if not self.augment:
            return super().compute_loss(batch)
        spec = self.time(self.freq(x[:, None, :]), lengths=mx.full((x.shape[0],), 6))
        x, soft = self.mix(spec[:, 0, :], y)
        loss = mx.mean(nn.losses.cross_entropy(self(x), soft))
        return loss, {}


class Items(Dataset):
    """The blobs one sample at a time (an ArrayDataset gathers whole batches)."""

    def __init__(self):
        self.data = blobs(96)

    def __len__(self):
        return len(self.data)

    def __getitem__(self, index):
        return self.data[index]


def make(root, augment=True, workers=0, **overrides):
    waves = Compose([Gain(-6, 6, p=0.5), Shift(-2, 2, "samples", p=0.5)]) if augment else None
    loader = DataLoader(
        Items(),
        batch_size=16,
        shuffle=True,
        num_workers=workers,
        seed=3,
        cpu_transforms=waves,
    )
    trainer = Trainer(
        max_epochs=2,
        seed=7,
        default_root_dir=str(root),
        enable_progress_bar=False,
        logger=False,
        callbacks=[
            ModelCheckpoint(dirpath=str(root / "ckpt"), every_n_train_steps=1, save_top_k=0)
        ],
        **overrides,
    )
    return Augmented(augment), loader, trainer


@pytest.mark.parametrize("stop_at, workers", [(4, 0), (9, 2)])
def test_augmented_training_resumes_bit_identically(tmp_path, stop_at, workers):
    """Worker augmentation (per-sample generators) and device augmentation (the step's key):
    stopped mid-epoch 0 or 1 and resumed, with or without workers, the weights are the same
    bits as an uninterrupted run in-process."""
    model, loader, trainer = make(tmp_path / "full")
    trainer.fit(model, loader)
    full = model
    plain, loader, trainer = make(tmp_path / "plain", augment=False)
    trainer.fit(plain, loader)
    assert any(
        (a != b).any()
        for a, b in zip(flat(full.parameters()).values(), flat(plain.parameters()).values())
    )
    model, loader, trainer = make(tmp_path / "cut", workers=workers, max_steps=stop_at)
    trainer.fit(model, loader)
    model, loader, trainer = make(tmp_path / "cut", workers=workers)
    trainer.fit(model, loader, ckpt_path="last")
    assert trainer.global_step == 12
    assert_trees_equal(model.parameters(), full.parameters())
