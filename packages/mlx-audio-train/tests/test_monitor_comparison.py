"""MonitorCallback: the one comparison of monitored values (mode, min_delta, NaN) and the one
reading of the monitored value, which EarlyStopping and ModelCheckpoint both go through."""

import math
from types import SimpleNamespace

import pytest

from mlx_audio.train.callbacks import EarlyStopping, ModelCheckpoint
from mlx_audio.train.callbacks.base import MonitorCallback

NAN = math.nan


def monitor(mode, min_delta=0.0, name="val_loss"):
    m = MonitorCallback()
    m.monitor, m.mode, m.min_delta = name, mode, min_delta
    return m


@pytest.mark.parametrize(
    "mode, min_delta, current, reference, better, improvement",
    [
        ("min", 0.0, 1.0, 2.0, True, True),
        ("min", 0.0, 2.0, 2.0, False, False),  # a tie is neither
        ("min", 0.0, 3.0, 2.0, False, False),
        ("min", 0.0, 1.0, math.inf, True, True),  # anything finite beats `worst`
        ("min", 0.5, 1.6, 2.0, True, False),  # better, but not by more than min_delta
        ("min", 0.5, 1.5, 2.0, True, False),  # by exactly min_delta: not more
        ("min", 0.5, 1.4, 2.0, True, True),
        ("max", 0.0, 3.0, 2.0, True, True),
        ("max", 0.0, 2.0, 2.0, False, False),
        ("max", 0.0, 1.0, -math.inf, True, True),
        ("max", 0.5, 2.4, 2.0, True, False),
        ("max", 0.5, 2.6, 2.0, True, True),
        ("min", 0.0, NAN, 2.0, False, False),  # NaN is never better ...
        ("min", 0.0, 1.0, NAN, False, False),  # ... and nothing beats a NaN reference
        ("max", 0.0, NAN, -math.inf, False, False),
        ("max", 0.1, 5.0, NAN, False, False),
    ],
)
def test_is_better_and_is_improvement(mode, min_delta, current, reference, better, improvement):
    m = monitor(mode, min_delta)
    assert m.is_better(current, reference) is better
    assert m.is_improvement(current, reference) is improvement


def test_worst_and_monitored_value():
    assert monitor("min").worst == math.inf and monitor("max").worst == -math.inf
    m = monitor("max", name="step")
    assert m.monitored_value({"step": 7, "val_loss": 0.5}) == 7
    assert type(m.monitored_value({"step": 7})) is int  # as logged: ModelCheckpoint keeps ints
    assert m.monitored_value({"val_loss": 0.5}) is None
    assert monitor("min", name=None).monitored_value({"val_loss": 0.5}) is None


def test_both_callbacks_are_monitors_with_their_own_defaults():
    stopper = EarlyStopping(monitor="val_acc", mode="max", min_delta=0.1)
    checkpoint = ModelCheckpoint(monitor="val_acc", mode="max")
    assert isinstance(stopper, MonitorCallback) and isinstance(checkpoint, MonitorCallback)
    assert stopper.best_score == -math.inf == checkpoint.kth_value
    assert stopper.is_improvement(0.65, 0.5) and not stopper.is_improvement(0.6, 0.5)
    assert checkpoint.min_delta == 0.0 and checkpoint.is_improvement(0.6000001, 0.6)


def fake_trainer(**metrics):
    return SimpleNamespace(
        callback_metrics=metrics,
        fast_dev_run=0,
        should_stop=False,
        current_epoch=0,
        global_step=1,
        is_global_zero=True,
        validation_has_run=True,
        save_checkpoint=lambda path: path,
    )


def test_early_stopping_and_model_checkpoint_decide_through_the_shared_comparison(
    monkeypatch, tmp_path
):
    """Swap the shared comparison: both callbacks' decisions follow it (nothing compares on its own)."""
    stopper = EarlyStopping(monitor="val_loss", patience=2)
    for value in (3.0, 2.0, 1.0):  # improving under the real comparison
        stopper._run_early_stopping_check(fake_trainer(val_loss=value))
    assert stopper.wait_count == 0 and stopper.best_score == 1.0
    checkpoint = ModelCheckpoint(dirpath=str(tmp_path), monitor="val_loss", save_top_k=1)
    saved = []
    for step, value in enumerate((3.0, 2.0)):
        trainer = fake_trainer(val_loss=value)
        trainer.global_step = step + 1
        trainer.save_checkpoint = saved.append
        checkpoint._save_topk(trainer, {"val_loss": value, "epoch": 0, "step": step + 1})
    assert len(saved) == 2 and checkpoint.best_model_score == 2.0

    monkeypatch.setattr(MonitorCallback, "is_improvement", lambda self, c, r: False)
    monkeypatch.setattr(MonitorCallback, "is_better", lambda self, c, r: False)
    trainer = fake_trainer(val_loss=0.5)
    stopper._run_early_stopping_check(trainer)
    stopper._run_early_stopping_check(trainer)
    assert stopper.wait_count == 2 and trainer.should_stop and stopper.best_score == 1.0
    trainer.save_checkpoint = saved.append
    checkpoint._save_topk(trainer, {"val_loss": 0.5, "epoch": 0, "step": 3})
    assert len(saved) == 2 and checkpoint.best_model_score == 2.0  # 0.5 no longer "better"
    # the thresholds are the same mode comparison (Lightning's monitor_op): 1.0 < 10 would stop
    threshold = EarlyStopping(monitor="val_loss", stopping_threshold=10.0)
    trainer = fake_trainer(val_loss=1.0)
    threshold._run_early_stopping_check(trainer)
    assert not trainer.should_stop and threshold.stopping_reason_message is None


def test_missing_monitored_value_is_read_the_same_way(monkeypatch):
    monkeypatch.setattr(MonitorCallback, "monitored_value", lambda self, metrics: None)
    with pytest.raises(RuntimeError, match="EarlyStopping conditioned on metric 'val_loss'"):
        EarlyStopping(monitor="val_loss")._run_early_stopping_check(fake_trainer(val_loss=1.0))
    checkpoint = ModelCheckpoint(dirpath="unused", monitor="val_loss")
    with pytest.raises(ValueError, match="could not find the monitored key"):
        checkpoint._save_topk(fake_trainer(val_loss=1.0), {"val_loss": 1.0, "epoch": 0, "step": 1})
