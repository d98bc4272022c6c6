"""WeightAveraging / EMAWeightAveraging: checkpoints hold the averaged and the raw weights
(Lightning's layout in safetensors), a mid-epoch resume averages on bit-identically, the model
ends fit with the averaged weights, validation sees them. (Parity with Lightning's numbers:
tests/toolkit_parity/test_weight_averaging_parity.py.)"""

from __future__ import annotations

import json

import mlx.core as mx
import numpy as np
import pytest
from train_testing import TinyClassifier, assert_trees_equal, blobs, flat

from mlx_audio.data import DataLoader
from mlx_audio.train import Trainer
from mlx_audio.train.callbacks import (
    EMAWeightAveraging,
    ModelCheckpoint,
    StochasticWeightAveraging,
    WeightAveraging,
)

EPOCHS = 2  # 100 samples / batch 16 = 7 batches per epoch, 14 steps


def make(root, callback, **overrides):
    loader = DataLoader(blobs(100), batch_size=16, shuffle=True, num_workers=0, seed=3)
    overrides = {"max_epochs": EPOCHS, **overrides}
    trainer = Trainer(
        seed=7,
        default_root_dir=str(root),
        enable_progress_bar=False,
        enable_model_summary=False,
        logger=False,
        callbacks=[
            callback,
            ModelCheckpoint(dirpath=str(root / "ckpt"), every_n_train_steps=1, save_top_k=-1),
        ],
        **overrides,
    )
    return TinyClassifier(total_steps=14), loader, trainer


def test_checkpoint_holds_averaged_and_raw_weights(tmp_path):
    callback = EMAWeightAveraging(decay=0.5)
    model, loader, trainer = make(tmp_path, callback, max_steps=3)
    trainer.fit(model, loader)
    directory = tmp_path / "ckpt" / "epoch=0-step=3"
    averaged = mx.load(str(directory / "model.safetensors"))
    raw = mx.load(str(directory / "current_model.safetensors"))
    state = json.loads((directory / "trainer_state.json").read_text())
    assert state["averaging_state"] == {"n_averaged": 3}
    assert state["callbacks"]["EMAWeightAveraging"] == {"latest_update_step": 3}
    # the model ends fit holding the averaged weights (Lightning's on_train_end)
    for key, value in flat(model.parameters()).items():
        np.testing.assert_array_equal(np.array(averaged[key]), value, err_msg=key)
    assert any(not np.array_equal(np.array(raw[k]), np.array(averaged[k])) for k in raw)
    # load_checkpoint (test / predict) reads the averaged weights, as Lightning's state_dict
    fresh = TinyClassifier().load_checkpoint(str(directory))
    assert_trees_equal(fresh.parameters(), model.parameters())


@pytest.mark.parametrize("stop_at", [4, 9])  # mid-epoch (epoch 0, epoch 1)
def test_mid_epoch_resume_gives_bit_identical_averaged_weights(tmp_path, stop_at):
    full_model, _, full = make(tmp_path / "full", EMAWeightAveraging(decay=0.7))
    full.fit(full_model, _)
    cut_model, loader, cut = make(
        tmp_path / "cut", EMAWeightAveraging(decay=0.7), max_steps=stop_at
    )
    cut.fit(cut_model, loader)
    callback = EMAWeightAveraging(decay=0.7)
    model, loader, trainer = make(tmp_path / "cut", callback)
    trainer.fit(model, loader, ckpt_path="last")
    assert trainer.global_step == full.global_step == 14
    assert callback.n_averaged == 14
    assert_trees_equal(model.parameters(), full_model.parameters())


def test_validation_sees_the_averaged_weights_and_training_the_raw_ones(tmp_path):
    seen = {}

    class Probe(TinyClassifier):
        def on_validation_epoch_start(self):
            seen["val"] = flat(self.parameters())

        def on_train_epoch_end(self):
            seen["train"] = flat(self.parameters())

    callback = WeightAveraging()
    loader = DataLoader(blobs(64), batch_size=16)
    trainer = Trainer(
        max_epochs=1,
        seed=1,
        logger=False,
        enable_progress_bar=False,
        enable_checkpointing=False,
        num_sanity_val_steps=0,
        callbacks=[callback],
    )
    model = Probe()
    trainer.fit(model, loader, DataLoader(blobs(16), batch_size=16))
    average = callback.average_weights  # swapped back after validation: the average again
    assert average is not None and callback.n_averaged == 4
    for key, value in seen["val"].items():
        np.testing.assert_array_equal(np.array(average[key]), value, err_msg=key)
    assert any(not np.array_equal(seen["train"][k], seen["val"][k]) for k in seen["val"])


def test_ema_should_update_follows_lightning():
    ema = EMAWeightAveraging(update_every_n_steps=3, update_starting_at_step=2)
    assert [s for s in range(10) if ema.should_update(step_idx=s)] == [3, 6, 9]
    assert not ema.should_update(epoch_idx=5)
    by_epoch = EMAWeightAveraging(update_every_n_steps=0, update_starting_at_epoch=1)
    assert not by_epoch.should_update(step_idx=0)
    assert [e for e in range(3) if by_epoch.should_update(epoch_idx=e)] == [1, 2]
    with pytest.raises(ValueError, match="Invalid decay value 1.5"):
        EMAWeightAveraging(decay=1.5)


@pytest.mark.parametrize("stop_at", [5, 11])  # mid-epoch: before averaging starts, and during it
def test_swa_mid_epoch_resume_is_bit_identical(tmp_path, stop_at):
    def swa():
        return StochasticWeightAveraging(swa_lrs=0.005, swa_epoch_start=2, annealing_epochs=1)

    full_model, loader, full = make(tmp_path / "full", swa(), max_epochs=3)
    full.fit(full_model, loader)
    cut_model, loader, cut = make(tmp_path / "cut", swa(), max_epochs=3, max_steps=stop_at)
    cut.fit(cut_model, loader)
    checkpoint = tmp_path / "cut" / "ckpt" / "last"
    if stop_at > 7:  # averaging has started: the average is saved beside the weights
        assert (checkpoint / "average_model.safetensors").exists()
    callback = swa()
    model, loader, trainer = make(tmp_path / "cut", callback, max_epochs=3)
    trainer.fit(model, loader, ckpt_path="last")
    assert trainer.global_step == full.global_step == 21 and callback.n_averaged == 2
    assert_trees_equal(model.parameters(), full_model.parameters())
    assert_trees_equal(trainer.optimizer.state, full.optimizer.state)


def test_swa_arguments_are_checked_as_lightning():
    with pytest.raises(ValueError, match="swa_epoch_start should be a >0 integer"):
        StochasticWeightAveraging(swa_lrs=0.1, swa_epoch_start=0)
    with pytest.raises(ValueError, match="The `swa_lrs` should a positive float"):
        StochasticWeightAveraging(swa_lrs=-0.1)
    with pytest.raises(ValueError, match="annealing_strategy must be 'cos' or 'linear'"):
        StochasticWeightAveraging(swa_lrs=0.1, annealing_strategy="exp")
