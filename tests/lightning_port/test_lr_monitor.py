"""Ports of Lightning 2.6's ``callbacks/test_lr_monitor.py`` for one optimizer:
``LearningRateMonitor``'s names, ``log_momentum`` and ``log_weight_decay``.

Same names, inputs and assertions. Changes: the optimizers are MLX's (``learning_rate=`` for
``lr=``, no parameters passed); a schedule is MLX's (a function of the step given as the
learning rate, for ``OneCycleLR``), so ``len(trainer.lr_scheduler_configs)`` is
``len(trainer.optimizers)`` (one schedule per optimizer; there are no scheduler configs); MLX has
no ``ASGD``, the optimizer without momentum is ``Adagrad``.
"""

from __future__ import annotations

import mlx.optimizers as optim
import pytest
from boring_classes import BoringModel, fit

from mlx_audio.loggers import CSVLogger
from mlx_audio.train import Trainer
from mlx_audio.train.callbacks import LearningRateMonitor


def test_lr_monitor_single_lr(tmp_path):
    """Test that learning rates are extracted and logged for single lr scheduler."""

    class ScheduledModel(BoringModel):
        def configure_optimizers(self):
            return optim.SGD(learning_rate=optim.step_decay(0.1, 0.1, 1))

    model = ScheduledModel()

    lr_monitor = LearningRateMonitor()
    trainer = Trainer(
        default_root_dir=tmp_path,
        max_epochs=2,
        limit_val_batches=0.1,
        limit_train_batches=0.5,
        callbacks=[lr_monitor],
        logger=CSVLogger(tmp_path),
    )
    fit(trainer, model)

    assert lr_monitor.lrs, "No learning rates logged"
    assert all(v is None for v in lr_monitor.last_momentum_values.values()), (
        "Momentum should not be logged by default"
    )
    assert all(v is None for v in lr_monitor.last_weight_decay_values.values()), (
        "Weight decay should not be logged by default"
    )
    assert len(lr_monitor.lrs) == len(trainer.optimizers)
    assert list(lr_monitor.lrs) == ["lr-SGD"]


@pytest.mark.parametrize("opt", ["SGD", "Adam"])
def test_lr_monitor_single_lr_with_momentum(tmp_path, opt: str):
    """Test that learning rates, momentum and weight decay are extracted and logged for single lr
    scheduler."""

    class LogMomentumModel(BoringModel):
        def __init__(self, opt):
            super().__init__()
            self.opt = opt

        def configure_optimizers(self):
            if self.opt == "SGD":
                opt_kwargs = {"momentum": 0.9}
            elif self.opt == "Adam":
                opt_kwargs = {"betas": [0.9, 0.999]}

            lr_scheduler = optim.cosine_decay(1e-2, 10_000)
            return getattr(optim, self.opt)(learning_rate=lr_scheduler, **opt_kwargs)

    model = LogMomentumModel(opt=opt)
    lr_monitor = LearningRateMonitor(log_momentum=True, log_weight_decay=True)
    trainer = Trainer(
        default_root_dir=tmp_path,
        max_epochs=2,
        limit_val_batches=2,
        limit_train_batches=5,
        log_every_n_steps=1,
        callbacks=[lr_monitor],
        logger=CSVLogger(tmp_path),
    )
    fit(trainer, model)

    assert all(v is not None for v in lr_monitor.last_momentum_values.values()), (
        "Expected momentum to be logged"
    )
    assert len(lr_monitor.last_momentum_values) == len(trainer.optimizers)
    assert all(k == f"lr-{opt}-momentum" for k in lr_monitor.last_momentum_values)

    assert all(v is not None for v in lr_monitor.last_weight_decay_values.values()), (
        "Expected weight decay to be logged"
    )
    assert len(lr_monitor.last_weight_decay_values) == len(trainer.optimizers)
    assert all(k == f"lr-{opt}-weight_decay" for k in lr_monitor.last_weight_decay_values)


def test_lr_monitor_no_lr_scheduler_single_lr(tmp_path):
    """Test that learning rates are extracted and logged for no lr scheduler."""

    class CustomBoringModel(BoringModel):
        def configure_optimizers(self):
            return optim.SGD(learning_rate=0.1)

    model = CustomBoringModel()

    lr_monitor = LearningRateMonitor()
    trainer = Trainer(
        default_root_dir=tmp_path,
        max_epochs=2,
        limit_val_batches=0.1,
        limit_train_batches=0.5,
        callbacks=[lr_monitor],
        logger=CSVLogger(tmp_path),
    )

    fit(trainer, model)

    assert lr_monitor.lrs, "No learning rates logged"
    assert len(lr_monitor.lrs) == len(trainer.optimizers)
    assert list(lr_monitor.lrs) == ["lr-SGD"]


@pytest.mark.parametrize("opt", ["SGD", "Adam"])
def test_lr_monitor_no_lr_scheduler_single_lr_with_momentum(tmp_path, opt: str):
    """Test that learning rates and momentum are extracted and logged for no lr scheduler."""

    class LogMomentumModel(BoringModel):
        def __init__(self, opt):
            super().__init__()
            self.opt = opt

        def configure_optimizers(self):
            if self.opt == "SGD":
                opt_kwargs = {"momentum": 0.9}
            elif self.opt == "Adam":
                opt_kwargs = {"betas": [0.9, 0.999]}

            return getattr(optim, self.opt)(learning_rate=1e-2, **opt_kwargs)

    model = LogMomentumModel(opt=opt)
    lr_monitor = LearningRateMonitor(log_momentum=True)
    trainer = Trainer(
        default_root_dir=tmp_path,
        max_epochs=2,
        limit_val_batches=2,
        limit_train_batches=5,
        log_every_n_steps=1,
        callbacks=[lr_monitor],
        logger=CSVLogger(tmp_path),
    )
    fit(trainer, model)

    assert all(v is not None for v in lr_monitor.last_momentum_values.values()), (
        "Expected momentum to be logged"
    )
    assert len(lr_monitor.last_momentum_values) == len(trainer.optimizers)
    assert all(k == f"lr-{opt}-momentum" for k in lr_monitor.last_momentum_values)


def test_log_momentum_no_momentum_optimizer_no_lr_scheduler(tmp_path):
    """Test that if optimizer doesn't have momentum then a warning is raised with
    log_momentum=True."""

    class LogMomentumModel(BoringModel):
        def configure_optimizers(self):
            return optim.Adagrad(learning_rate=1e-2)

    model = LogMomentumModel()
    lr_monitor = LearningRateMonitor(log_momentum=True)
    trainer = Trainer(
        default_root_dir=tmp_path,
        max_epochs=1,
        limit_val_batches=2,
        limit_train_batches=5,
        log_every_n_steps=1,
        callbacks=[lr_monitor],
        logger=CSVLogger(tmp_path),
    )
    with pytest.warns(RuntimeWarning, match="optimizers do not have momentum."):
        fit(trainer, model)

    assert all(v == 0 for v in lr_monitor.last_momentum_values.values()), (
        "Expected momentum to be logged"
    )
    assert len(lr_monitor.last_momentum_values) == len(trainer.optimizers)
    assert all(k == "lr-Adagrad-momentum" for k in lr_monitor.last_momentum_values)
