"""fit over a device-resident ArrayDataset (NOTE [device-resident data]): the same weights as
over the same arrays on the host, and a status line with the memory the data takes."""

from __future__ import annotations

import logging

import mlx.core as mx
import numpy as np
from mlx.utils import tree_flatten
from train_testing import TinyClassifier, blobs

from mlx_audio.data import ArrayDataset, DataLoader, random_split
from mlx_audio.train import Trainer


def fit(dataset, val=None):
    mx.random.seed(0)
    model = TinyClassifier()
    trainer = Trainer(
        max_epochs=2,
        enable_progress_bar=False,
        logger=False,
        enable_checkpointing=False,
        seed=3,
        gradient_clip_val=1.0,
    )
    trainer.fit(
        model,
        DataLoader(dataset, batch_size=16, shuffle=True, seed=1),
        DataLoader(val, batch_size=16) if val is not None else None,
    )
    return {k: np.array(v) for k, v in tree_flatten(model.parameters())}, trainer


def test_device_data_trains_to_the_same_weights_as_host_data(caplog):
    host = blobs(96)
    train, val = random_split(ArrayDataset(*host.arrays, device=True), [0.75, 0.25], seed=0)
    host_train, host_val = random_split(host, [0.75, 0.25], seed=0)
    with caplog.at_level(logging.INFO, logger="mlx_audio.train"):
        on_device, trainer = fit(train, val)
    reference, reference_trainer = fit(host_train, host_val)
    assert on_device.keys() == reference.keys()
    for k in reference:  # dropout, shuffling and the step's keys: all from the same seeds
        assert np.array_equal(on_device[k], reference[k]), k
    assert trainer.callback_metrics["val_loss"] == reference_trainer.callback_metrics["val_loss"]
    lines = [r.getMessage() for r in caplog.records if "on the device" in r.getMessage()]
    kib = host.nbytes / 2**10
    shared = f"of the 96 samples of arrays taking {kib:,.1f} KiB"  # a split's parent's arrays
    assert len(lines) == 2 and f"72 {shared}" in lines[0] and f"24 {shared}" in lines[1], lines
    assert lines[0].startswith("Trainer: train data on the device") and "val data" in lines[1]
