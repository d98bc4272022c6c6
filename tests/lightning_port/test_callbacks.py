"""Ports of Lightning 2.6's callback tests that depend on when logged values are visible:
``callbacks/test_early_stopping.py::test_early_stopping_patience_train``,
``checkpointing/test_model_checkpoint.py::test_model_checkpoint_score_and_ckpt`` and
``callbacks/test_timer.py`` (duration parsing, a zero duration, min_steps/min_epochs over the
timer, stage tracking).

Same names, inputs and assertions. Changes: a checkpoint is a directory (no ``.ckpt`` suffix;
its ``trainer_state.json`` holds ``epoch`` and ``global_step``); the ModelCheckpoint test keeps
``reduce_lr_on_plateau=False`` without Lightning's lr-scheduler assertions (an MLX schedule is a
function of the step) and its private ``_get_monitor_value`` mock; steps that index arrays with
``current_epoch`` run with ``compile=False`` (in a compiled step it is frozen at trace time).
"""

from __future__ import annotations

import json
import math
import os
from datetime import timedelta

import mlx.core as mx
import numpy as np
import pytest
from boring_classes import BoringModel, fit

from mlx_audio.train import Trainer
from mlx_audio.train.callbacks import EarlyStopping, ModelCheckpoint, Timer

MisconfigurationException = ValueError  # Lightning's MisconfigurationException


@pytest.mark.parametrize("validation_step_none", [True, False])
@pytest.mark.parametrize(
    ("loss_values", "patience", "expected_stop_epoch"),
    [([6, 5, 5, 5, 5, 5], 3, 4), ([6, 5, 4, 4, 3, 3], 1, 3), ([6, 5, 6, 5, 5, 5], 3, 4)],
)
def test_early_stopping_patience_train(
    tmp_path, validation_step_none: bool, loss_values: list, patience: int, expected_stop_epoch: int
):
    """Test to ensure that early stopping is not triggered before patience is exhausted."""

    class ModelOverrideTrainReturn(BoringModel):
        train_return_values = mx.array(loss_values)

        def on_train_epoch_end(self):
            loss = self.train_return_values[self.current_epoch]
            self.log("train_loss", loss)

    model = ModelOverrideTrainReturn()

    if validation_step_none:
        model.validation_step = None

    early_stop_callback = EarlyStopping(
        monitor="train_loss", patience=patience, verbose=True, check_on_train_epoch_end=True
    )
    trainer = Trainer(
        default_root_dir=tmp_path,
        callbacks=[early_stop_callback],
        num_sanity_val_steps=0,
        max_epochs=10,
        enable_progress_bar=False,
    )
    fit(trainer, model)
    assert trainer.current_epoch - 1 == expected_stop_epoch


@pytest.mark.parametrize(
    ("validation_step_none", "val_dataloaders_none", "monitor"),
    [(False, False, "val_log"), (True, False, "train_log_epoch"), (False, True, "val_log")],
)
@pytest.mark.parametrize("reduce_lr_on_plateau", [False])
def test_model_checkpoint_score_and_ckpt(
    tmp_path,
    validation_step_none: bool,
    val_dataloaders_none: bool,
    monitor: str,
    reduce_lr_on_plateau: bool,
):
    """Test that when a model checkpoint is saved, it saves with the correct score appended to ckpt_path and checkpoint
    data."""
    max_epochs = 3
    limit_train_batches = 5
    limit_val_batches = 7
    rng = np.random.default_rng(0)

    class CustomBoringModel(BoringModel):
        def __init__(self):
            super().__init__()
            object.__setattr__(
                self, "train_log_epochs", rng.standard_normal((max_epochs, limit_train_batches))
            )
            object.__setattr__(
                self, "val_logs", rng.standard_normal((max_epochs, limit_val_batches))
            )
            object.__setattr__(self, "scores", [])

        def training_step(self, batch, batch_idx):
            log_value = self.train_log_epochs[self.current_epoch, batch_idx]
            self.log("train_log", log_value, on_epoch=True)
            return super().training_step(batch, batch_idx)

        def validation_step(self, batch, batch_idx):
            log_value = self.val_logs[self.current_epoch, batch_idx]
            self.log("val_log", log_value)
            return super().validation_step(batch, batch_idx)

        def on_train_epoch_end(self):
            if "train" in monitor:
                self.scores.append(self.trainer.logged_metrics[monitor])

        def on_validation_epoch_end(self):
            if not self.trainer.sanity_checking and "val" in monitor:
                self.scores.append(self.trainer.logged_metrics[monitor])

    filename = "{" + f"{monitor}" + ":.4f}-{epoch}"
    checkpoint = ModelCheckpoint(
        dirpath=tmp_path, filename=filename, monitor=monitor, save_top_k=-1
    )

    model = CustomBoringModel()

    if validation_step_none:
        model.validation_step = None
    if val_dataloaders_none:
        model.val_dataloaders = None  # (sic: Lightning's test sets an attribute nothing reads)

    trainer = Trainer(
        default_root_dir=tmp_path,
        callbacks=[checkpoint],
        limit_train_batches=limit_train_batches,
        limit_val_batches=limit_val_batches,
        max_epochs=max_epochs,
        enable_progress_bar=False,
        compile=False,  # the steps index arrays with current_epoch and batch_idx
    )
    fit(trainer, model)

    ckpt_files = [p for p in tmp_path.glob("*epoch=*") if p.is_dir() and not p.is_symlink()]
    assert len(ckpt_files) == len(model.scores) == max_epochs

    for epoch in range(max_epochs):
        score = model.scores[epoch]
        expected_score = getattr(model, f"{monitor}s")[epoch].mean().item()
        assert math.isclose(score, expected_score, abs_tol=1e-5)

        expected_filename = f"{monitor}={score:.4f}-epoch={epoch}"
        with open(os.path.join(checkpoint.dirpath, expected_filename, "trainer_state.json")) as f:
            chk = json.load(f)
        assert chk["epoch"] == epoch
        assert chk["global_step"] == limit_train_batches * (epoch + 1)


@pytest.mark.parametrize(
    ("duration", "expected"),
    [
        (None, None),
        ("00:00:00:22", timedelta(seconds=22)),
        ("12:34:56:65", timedelta(days=12, hours=34, minutes=56, seconds=65)),
        (timedelta(weeks=52, milliseconds=1), timedelta(weeks=52, milliseconds=1)),
        ({"weeks": 52, "days": 1}, timedelta(weeks=52, days=1)),
    ],
)
def test_timer_parse_duration(duration, expected):
    timer = Timer(duration=duration)
    assert (timer.time_remaining() == expected is None) or (
        timer.time_remaining() == expected.total_seconds()
    )


@pytest.mark.parametrize("duration", ["6:00:00", "60 minutes"])
def test_timer_parse_duration_misconfiguration(duration):
    with pytest.raises(MisconfigurationException, match="format DD:HH:MM:SS"):
        Timer(duration=duration)


def test_timer_interval_choice():
    Timer(duration=timedelta(), interval="step")
    Timer(duration=timedelta(), interval="epoch")
    with pytest.raises(MisconfigurationException, match="Unsupported parameter value"):
        Timer(duration=timedelta(), interval="invalid")


@pytest.mark.parametrize("interval", ["step", "epoch"])
def test_timer_zero_duration_stop(tmp_path, interval):
    """Test that the timer stops training immediately after the first check occurs."""
    model = BoringModel()
    duration = timedelta(0)
    timer = Timer(duration=duration, interval=interval)
    trainer = Trainer(default_root_dir=tmp_path, callbacks=[timer])
    fit(trainer, model)
    assert trainer.global_step == 0
    assert trainer.current_epoch == 0


@pytest.mark.parametrize(("min_steps", "min_epochs"), [(None, 2), (3, None), (3, 2)])
def test_timer_duration_min_steps_override(tmp_path, min_steps, min_epochs):
    model = BoringModel()
    duration = timedelta(0)
    timer = Timer(duration=duration)
    trainer = Trainer(
        default_root_dir=tmp_path, callbacks=[timer], min_steps=min_steps, min_epochs=min_epochs
    )
    fit(trainer, model)
    if min_epochs:
        assert trainer.current_epoch >= min_epochs
    if min_steps:
        assert trainer.global_step >= min_steps - 1
    assert timer.time_elapsed() > duration.total_seconds()


def test_timer_track_stages(tmp_path):
    """Test that the timer tracks time also for other stages (train/val/test)."""
    model = BoringModel()
    timer = Timer()
    trainer = Trainer(default_root_dir=tmp_path, max_steps=5, callbacks=[timer])
    fit(trainer, model)
    assert timer.time_elapsed() == timer.time_elapsed("train") > 0
    assert timer.time_elapsed("validate") > 0
    assert timer.time_elapsed("test") == 0
    trainer.test(model, model.test_dataloader())
    assert timer.time_elapsed("test") > 0
