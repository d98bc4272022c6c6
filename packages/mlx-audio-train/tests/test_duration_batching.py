"""The Trainer over duration batches (DynamicBucketingSampler): every epoch runs to its end
(epochs differ in batch count), each sample once per epoch, and a run resumed from a
mid-epoch checkpoint sees the same batches as an uninterrupted one."""

from __future__ import annotations

import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim
import numpy as np
import pytest

from mlx_audio.data import DataLoader, Dataset, DynamicBucketingSampler, PadCollate
from mlx_audio.train import Trainer, TrainModule
from mlx_audio.train.callbacks import ModelCheckpoint

DURATIONS = np.round(np.clip(0.5 + np.random.default_rng(1).lognormal(1.0, 0.9, 90), 0.5, 30), 2)


class Clips(Dataset):
    def __len__(self):
        return len(DURATIONS)

    def __getitem__(self, i):
        return np.full(int(DURATIONS[i] * 4) + 1, 0.01 * i, np.float32), i


class Mean(TrainModule):
    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Linear(1, 1)
        object.__setattr__(self, "seen", [])

    def compute_loss(self, batch):
        waves, _, lengths = batch
        mask = mx.arange(waves.shape[1])[None, :] < lengths[:, None]
        mean = (waves * mask).sum(axis=1) / lengths
        return mx.mean(self.scale(mean[:, None]) ** 2), {}

    def on_train_batch_start(self, batch, batch_idx):
        self.seen.append((self.trainer.current_epoch, sorted(np.asarray(batch[1]).tolist())))

    def configure_optimizers(self):
        return optim.SGD(learning_rate=0.01)


def loader():
    sampler = DynamicBucketingSampler(DURATIONS, max_duration=45.0, shuffle=True, buffer_size=30)
    return DataLoader(Clips(), batch_sampler=sampler, collate_fn=PadCollate())


def trainer(tmp_path, **kwargs):
    return Trainer(
        max_epochs=3,
        seed=4,
        enable_progress_bar=False,
        logger=False,
        default_root_dir=str(tmp_path),
        **kwargs,
    )


@pytest.mark.filterwarnings("ignore:the compiled train step has now been traced")
def test_every_epoch_runs_to_its_end_and_resume_is_exact(tmp_path):
    model = Mean()
    trainer(tmp_path / "whole", enable_checkpointing=False).fit(model, loader())
    per_epoch = [[ids for e, ids in model.seen if e == epoch] for epoch in range(3)]
    for batches in per_epoch:
        assert sorted(i for ids in batches for i in ids) == list(range(90))
    assert len({len(b) for b in per_epoch}) > 1  # the epochs differ in batch count

    first = Mean()
    save = ModelCheckpoint(dirpath=str(tmp_path / "ckpt"), every_n_train_steps=7, save_top_k=-1)
    trainer(tmp_path / "first", callbacks=[save], max_steps=17).fit(first, loader())
    resumed = Mean()
    checkpoint = sorted((tmp_path / "ckpt").glob("*step=14*"))[0]
    trainer(tmp_path / "resumed", enable_checkpointing=False).fit(
        resumed, loader(), ckpt_path=str(checkpoint)
    )
    assert first.seen[:14] + resumed.seen == model.seen
