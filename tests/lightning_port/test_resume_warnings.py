"""Ports of Lightning 2.6's warnings when resuming: a checkpoint holding the state of a callback
the Trainer lacks (``callbacks/test_callbacks.py::test_resume_incomplete_callbacks_list_warning``)
and a mid-epoch checkpoint with a loader that cannot restore its position
(``models/test_restore.py::test_restarting_mid_epoch_raises_warning``).

Same names, inputs and assertions. Changes: Lightning's torch ``DataLoader`` cannot restore its
position; ours can (and then nothing is replayed and nothing is said), so the second test trains
on a list of the same batches, which cannot; the model raises in an eager step (a compiled step
runs its Python once, while being traced); a checkpoint is a directory. Left out: the
``ShouldStopModel`` case, where Lightning warns because the stop left the epoch unfinished,
while here a stop ends the epoch (the checkpoint resumes at the next one: no batch is skipped or
replayed, so there is nothing to warn about).
"""

from __future__ import annotations

import warnings
from re import escape

import pytest
from boring_classes import BoringModel, RandomDataset, fit

from mlx_audio.data import DataLoader
from mlx_audio.train import Trainer
from mlx_audio.train.callbacks import ModelCheckpoint


class no_warning_call(warnings.catch_warnings):  # noqa: N801 (lightning_utilities' helper)
    def __init__(self, expected_warning, match):
        super().__init__(record=True)
        self.expected_warning, self.match = expected_warning, match

    def __enter__(self):
        self.log = super().__enter__()
        warnings.simplefilter("always")
        return self.log

    def __exit__(self, *exc):
        super().__exit__(*exc)
        found = [
            w
            for w in self.log
            if issubclass(w.category, self.expected_warning) and self.match in str(w.message)
        ]
        assert not found, f"unexpected warning: {found[0].message}"


def test_resume_incomplete_callbacks_list_warning(tmp_path):
    model = BoringModel()
    callback0 = ModelCheckpoint(monitor="epoch")
    callback1 = ModelCheckpoint(monitor="global_step")
    trainer = Trainer(
        default_root_dir=tmp_path,
        max_steps=1,
        callbacks=[callback0, callback1],
    )
    fit(trainer, model)
    ckpt_path = trainer.checkpoint_callback.best_model_path

    trainer = Trainer(
        default_root_dir=tmp_path,
        max_steps=1,
        callbacks=[callback1],  # one callback is missing!
    )
    with pytest.warns(
        UserWarning,
        match=escape(f"Please add the following callbacks: [{repr(callback0.state_key)}]"),
    ):
        fit(trainer, model, ckpt_path=ckpt_path)

    trainer = Trainer(
        default_root_dir=tmp_path,
        max_steps=1,
        callbacks=[callback1, callback0],  # all callbacks here, order switched
    )
    with no_warning_call(UserWarning, match="Please add the following callbacks:"):
        fit(trainer, model, ckpt_path=ckpt_path)


class CustomException(Exception):
    pass


class ExceptionModel(BoringModel):
    def __init__(self, stop_batch_idx):
        super().__init__()
        self.stop_batch_idx = stop_batch_idx

    def training_step(self, batch, batch_idx):
        if batch_idx == self.stop_batch_idx:
            raise CustomException()
        return super().training_step(batch, batch_idx)

    def train_dataloader(self):
        return list(DataLoader(RandomDataset(32, 64)))  # ours: not resumable, as torch's


@pytest.mark.parametrize("stop_in_the_middle", [True, False])
@pytest.mark.parametrize("model_cls", [ExceptionModel])
def test_restarting_mid_epoch_raises_warning(tmp_path, stop_in_the_middle, model_cls):
    """Test that a warning is raised if training is restarted from mid-epoch."""
    limit_train_batches = 8
    trainer_kwargs = {
        "default_root_dir": tmp_path,
        "limit_train_batches": limit_train_batches,
        "limit_val_batches": 0,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "compile": False,  # ours: the step raises from Python
    }
    trainer = Trainer(max_epochs=1, **trainer_kwargs)
    model = model_cls(limit_train_batches // 2 if stop_in_the_middle else -1)

    if stop_in_the_middle:
        with pytest.raises(CustomException):
            fit(trainer, model)
    else:
        fit(trainer, model)

    ckpt_path = str(tmp_path / "resume.ckpt")
    trainer.save_checkpoint(ckpt_path)

    trainer = Trainer(max_epochs=2, **trainer_kwargs)
    model.stop_batch_idx = -1

    if stop_in_the_middle:
        with pytest.warns(UserWarning, match="resuming from a checkpoint that ended"):
            fit(trainer, model, ckpt_path=ckpt_path)
    else:
        with no_warning_call(UserWarning, match="resuming from a checkpoint that ended"):
            fit(trainer, model, ckpt_path=ckpt_path)

    if stop_in_the_middle:
        trainer = Trainer(max_epochs=2, **trainer_kwargs)
        with pytest.warns(UserWarning, match="resuming from a checkpoint that ended"):
            fit(trainer, model, ckpt_path=ckpt_path)
