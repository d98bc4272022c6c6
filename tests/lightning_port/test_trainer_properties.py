"""Ports of Lightning 2.6's tests of Trainer properties and argument resolution:
``trainer.ckpt_path`` after ``validate``/``test``/``predict`` (``trainer/test_trainer.py``),
``max_epochs=None`` resolved when ``fit`` runs (``trainer/flags/test_min_max_epochs.py``) and
``trainer.interrupted`` (``trainer/test_states.py``); then our own tests of the names Lightning
has no test for.

Same names, inputs and assertions. Changes: ``validate``/``test``/``predict`` always take the
model and its loaders here, so the cases that call them without a model (Lightning then loads
the best checkpoint) are left out; the checkpoints of the "specific" case are listed from
``trainer.checkpoint_callback.dirpath`` (Lightning's ``lightning_logs/version_N/checkpoints``);
a ``KeyboardInterrupt`` in ``fit`` is raised again here (Lightning exits with ``SystemExit``);
``training_step`` returns its loss after setting ``should_stop`` (Lightning's returns None: a
skipped step) and runs eagerly, as a compiled step would set it only while being traced;
Lightning's ``PossibleUserWarning`` is a ``UserWarning`` here.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import pytest
from boring_classes import BoringModel, fit

from mlx_audio.train import Trainer
from mlx_audio.train.callbacks import (
    Callback,
    EarlyStopping,
    LearningRateMonitor,
    ModelCheckpoint,
    ProgressBar,
)

PossibleUserWarning = UserWarning


def _loader(model, fn):
    return model.val_dataloader() if fn == "validate" else model.test_dataloader()


@pytest.mark.parametrize("ckpt_path", [None, "last"])
@pytest.mark.parametrize("save_last", [True, False])
@pytest.mark.parametrize("fn", ["fit", "validate"])
def test_checkpoint_path_input_last(tmp_path, ckpt_path, save_last, fn, caplog):
    model = BoringModel()
    mc = ModelCheckpoint(save_last=save_last)
    trainer = Trainer(
        max_epochs=1,
        limit_train_batches=1,
        limit_val_batches=1,
        enable_model_summary=False,
        enable_progress_bar=False,
        logger=False,
        default_root_dir=tmp_path,
        callbacks=[mc],
    )
    assert trainer.ckpt_path is None
    trainer_fn = getattr(trainer, fn)

    if fn == "fit":  # ours: an info line, not Lightning's warning (the differences table)
        caplog.set_level("INFO", "mlx_audio.train")
        fit(trainer, model, ckpt_path=ckpt_path)
        assert trainer.ckpt_path is None
        assert ("no checkpoint at" in caplog.text) == (ckpt_path == "last")
        return
    if ckpt_path is None:  # Lightning: no model given, the best one; here the model is given
        return
    fit(trainer, model)
    if save_last:
        ctxt = warnings.catch_warnings()
        final_path = mc.last_model_path
    else:
        ctxt = pytest.warns(UserWarning, match="No checkpoint will be loaded")
        final_path = None

    with ctxt:
        trainer_fn(model, _loader(model, fn), ckpt_path=ckpt_path)
    assert trainer.ckpt_path == final_path


@pytest.mark.parametrize("ckpt_path", [None, "best", "specific"])
@pytest.mark.parametrize("save_top_k", [-1, 0, 1, 2])
@pytest.mark.parametrize("fn", ["validate", "test", "predict"])
def test_checkpoint_path_input(tmp_path, ckpt_path, save_top_k, fn):
    class TestModel(BoringModel):
        def validation_step(self, batch, batch_idx):
            self.log("foo", -batch_idx)
            return super().validation_step(batch, batch_idx)

        def test_step(self, *args):
            return self.validation_step(*args)

        def predict_step(self, batch, *_):
            return self(batch)

    model = TestModel()
    trainer = Trainer(
        max_epochs=2,
        limit_train_batches=2,  # ours: Lightning trains all 64 batches of both epochs
        limit_val_batches=1,
        limit_test_batches=1,
        enable_progress_bar=False,
        default_root_dir=tmp_path,
        callbacks=[ModelCheckpoint(monitor="foo", save_top_k=save_top_k)],
    )
    fit(trainer, model)

    trainer_fn = getattr(trainer, fn)
    loader = _loader(model, fn)
    assert trainer.ckpt_path is None

    if ckpt_path == "best":
        # ckpt_path is 'best', meaning we load the best weights
        if save_top_k == 0:
            with pytest.raises(ValueError, match=".*is not configured to save the best.*"):
                trainer_fn(model, loader, ckpt_path=ckpt_path)
        else:
            trainer_fn(model, loader, ckpt_path=ckpt_path)
            assert trainer.ckpt_path == trainer.checkpoint_callback.best_model_path
    elif ckpt_path is None:
        # ckpt_path is None, meaning we don't load any checkpoints and use the provided model
        trainer_fn(model, loader, ckpt_path=ckpt_path)
        assert trainer.ckpt_path is None
    else:
        # specific checkpoint, pick one from saved ones
        if save_top_k == 0:
            with pytest.raises(FileNotFoundError):
                trainer_fn(model, loader, ckpt_path="random.ckpt")
        else:
            ckpt_path = str(
                [
                    p
                    for p in Path(trainer.checkpoint_callback.dirpath).iterdir()
                    if p.name != "last"
                ][0].absolute()
            )
            trainer_fn(model, loader, ckpt_path=ckpt_path)
            assert trainer.ckpt_path == ckpt_path


def test_max_epochs_not_set_warning(tmp_path):
    """Test that a warning is only emitted when `max_epochs` was not set by the user."""

    class CustomModel(BoringModel):
        def training_step(self, *args, **kwargs):
            self.trainer.should_stop = True
            return super().training_step(*args, **kwargs)

    match = "`max_epochs` was not set. Setting it to 1000 epochs."

    model = CustomModel()
    trainer = Trainer(
        logger=False,
        enable_checkpointing=False,
        max_epochs=None,
        limit_train_batches=1,
        compile=False,
    )
    with pytest.warns(PossibleUserWarning, match=match):
        fit(trainer, model)

    assert trainer.max_epochs == 1000
    assert trainer.current_epoch == 1

    with warnings.catch_warnings():
        warnings.filterwarnings("error", match)
        Trainer(fast_dev_run=True)
        Trainer(fast_dev_run=1)


@pytest.mark.parametrize(
    "extra_params",
    [
        pytest.param({"fast_dev_run": True}, id="Fast-Run"),
        pytest.param({"max_steps": 1}, id="Single-Step"),
    ],
)
def test_interrupt_state_on_keyboard_interrupt(tmp_path, extra_params):
    """Tests that state is set to INTERRUPTED on KeyboardInterrupt."""
    model = BoringModel()

    class InterruptCallback(Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            raise KeyboardInterrupt

    trainer = Trainer(callbacks=[InterruptCallback()], default_root_dir=tmp_path, **extra_params)

    with pytest.raises(KeyboardInterrupt):
        fit(trainer, model)
    assert trainer.interrupted


# -- ours: the names Lightning has no test of its own for -------------------------------------


def test_callbacks_found_by_type_and_the_model(tmp_path):
    stop = EarlyStopping(monitor="x")
    bar = ProgressBar()
    trainer = Trainer(default_root_dir=tmp_path, callbacks=[stop, bar], logger=False)
    assert trainer.early_stopping_callback is stop and trainer.early_stopping_callbacks == [stop]
    assert trainer.progress_bar_callback is bar
    assert Trainer(enable_progress_bar=False, logger=False).progress_bar_callback is None
    assert trainer.model is None and trainer.lightning_module is None
    assert trainer.num_val_batches == [] and trainer.num_test_batches == []
    model = BoringModel()
    plain = Trainer(
        default_root_dir=tmp_path,
        max_epochs=1,
        limit_train_batches=2,
        limit_val_batches=3,
        logger=False,
        enable_progress_bar=False,
    )
    fit(plain, model)
    assert plain.model is model and plain.lightning_module is model
    assert plain.num_val_batches == [3] and plain.num_sanity_val_batches == [2]
    assert not plain.interrupted
    plain.test(model, model.test_dataloader())
    assert plain.num_test_batches == [64]
    plain.validate(model, model.val_dataloader())
    assert plain.num_val_batches == [3]
    off = Trainer(
        default_root_dir=tmp_path / "off",
        max_epochs=1,
        limit_train_batches=1,
        limit_val_batches=0,
        logger=False,
    )
    fit(off, BoringModel())
    assert off.num_val_batches == []


def test_max_epochs_minus_one_is_unlimited_and_silent(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        trainer = Trainer(
            max_epochs=-1,
            max_steps=3,
            limit_train_batches=1,
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            limit_val_batches=0,
        )
        fit(trainer, BoringModel())
        fast = Trainer(max_epochs=-1, fast_dev_run=True, logger=False)
    assert trainer.max_epochs == -1 and trainer.global_step == 3 and trainer.current_epoch == 3
    assert fast.max_epochs == 1
    assert Trainer(max_steps=5, logger=False).max_epochs is None  # resolved when fit runs
    with pytest.raises(ValueError, match="max_epochs"):
        Trainer(max_epochs=-2)


def test_time_based_val_check_interval_is_checked():
    assert Trainer(val_check_interval="00:00:05:00", logger=False).val_check_time_interval == 300
    assert Trainer(val_check_interval={"minutes": 1}, logger=False).val_check_time_interval == 60
    with pytest.raises(ValueError, match="Expected 'DD:HH:MM:SS'"):
        Trainer(val_check_interval="5:00", logger=False)
    with pytest.raises(ValueError, match="Non-integer component"):
        Trainer(val_check_interval="00:00:0a:00", logger=False)
    with pytest.raises(ValueError, match="timedelta arguments"):
        Trainer(val_check_interval={"fortnights": 1}, logger=False)
    fast = Trainer(val_check_interval="00:00:05:00", fast_dev_run=True, logger=False)
    assert fast.val_check_time_interval is None and fast.val_check_interval == 1.0
    assert math.isinf(Trainer(val_check_interval=0.5, logger=False).val_check_batch)


def test_lr_monitor_without_a_logger_is_silent(tmp_path):
    """A documented difference: Lightning raises MisconfigurationException at train start."""
    lr_monitor = LearningRateMonitor(log_momentum=True)
    trainer = Trainer(
        default_root_dir=tmp_path,
        max_epochs=1,
        limit_train_batches=2,
        limit_val_batches=0,
        logger=False,
        callbacks=[lr_monitor],
    )
    fit(trainer, BoringModel())
    assert lr_monitor.lrs == {"lr-SGD": []} and trainer.global_step == 2


def test_last_model_path_is_the_last_link(tmp_path):
    """Lightning's ``last_model_path`` is ``dirpath/last.ckpt``; ours is the ``last`` link."""
    mc = ModelCheckpoint(dirpath=tmp_path / "ckpt", monitor=None, save_top_k=1, filename="model")
    trainer = Trainer(
        max_epochs=2, limit_train_batches=1, limit_val_batches=0, logger=False, callbacks=[mc]
    )
    fit(trainer, BoringModel())
    assert mc.last_model_path == str(tmp_path / "ckpt" / "last")
    assert Path(mc.last_model_path).is_symlink()
    assert Path(mc.last_model_path).resolve() == Path(mc.best_model_path).resolve()
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == ["last", "model"]
