"""Ports of Lightning 2.6's ``trainer/test_trainer.py::test_disabled_training`` and
``::test_disabled_validation``: ``limit_train_batches=0.0`` / ``limit_val_batches=0.0`` turn the
loop off (not an error), unless ``fast_dev_run``.

Same names, inputs and assertions; the weights are compared as numpy copies (Lightning:
``deepcopy(model.state_dict())``) and ``trainer.state.finished`` has no counterpart (``fit``
returned).
"""

from __future__ import annotations

import numpy as np
from boring_classes import BoringModel, fit
from mlx.utils import tree_flatten

from mlx_audio.train import Trainer


def state_dict(model):
    return {k: np.array(v) for k, v in tree_flatten(model.parameters())}


def test_disabled_training(tmp_path):
    """Verify that `limit_train_batches=0` disables the training loop unless `fast_dev_run=True`."""

    class CurrentModel(BoringModel):
        training_step_invoked = False

        def training_step(self, *args, **kwargs):
            self.training_step_invoked = True
            return super().training_step(*args, **kwargs)

    model = CurrentModel()

    trainer_options = {
        "default_root_dir": tmp_path,
        "enable_progress_bar": False,
        "max_epochs": 2,
        "limit_train_batches": 0.0,
        "limit_val_batches": 0.2,
        "fast_dev_run": False,
    }

    before_state_dict = state_dict(model)

    trainer = Trainer(**trainer_options)
    fit(trainer, model)

    after_state_dict = state_dict(model)

    for key in before_state_dict:
        assert np.array_equal(before_state_dict[key], after_state_dict[key])

    # check that limit_train_batches=0 turns off training
    assert trainer.current_epoch == 0
    assert not model.training_step_invoked, (
        "`training_step` should not run when `limit_train_batches=0`"
    )

    # check that limit_train_batches has no influence when fast_dev_run is turned on
    model = CurrentModel()
    trainer_options.update(fast_dev_run=True)
    before_state_dict = state_dict(model)

    trainer = Trainer(**trainer_options)
    fit(trainer, model)

    after_state_dict = state_dict(model)

    for key in before_state_dict:
        assert not np.array_equal(before_state_dict[key], after_state_dict[key])

    assert trainer.current_epoch == 1
    assert model.training_step_invoked, "did not run `training_step` with `fast_dev_run=True`"


def test_disabled_validation(tmp_path):
    """Verify that `limit_val_batches=0` disables the validation loop unless `fast_dev_run=True`."""

    class CurrentModel(BoringModel):
        validation_step_invoked = False

        def validation_step(self, *args, **kwargs):
            self.validation_step_invoked = True
            return super().validation_step(*args, **kwargs)

    model = CurrentModel()

    trainer_options = {
        "default_root_dir": tmp_path,
        "enable_progress_bar": False,
        "max_epochs": 2,
        "limit_train_batches": 0.4,
        "limit_val_batches": 0.0,
        "fast_dev_run": False,
    }

    trainer = Trainer(**trainer_options)
    fit(trainer, model)

    # check that limit_val_batches=0 turns off validation
    assert trainer.current_epoch == 2
    assert not model.validation_step_invoked, (
        "`validation_step` should not run when `limit_val_batches=0`"
    )

    # check that limit_val_batches has no influence when fast_dev_run is turned on
    model = CurrentModel()
    trainer_options.update(fast_dev_run=True)
    trainer = Trainer(**trainer_options)
    fit(trainer, model)

    assert trainer.current_epoch == 1
    assert model.validation_step_invoked, "did not run `validation_step` with `fast_dev_run=True`"
