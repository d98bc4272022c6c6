"""Lightning's Trainer arguments for where and how to run (NOTE [accelerator and devices], NOTE
[no-op Lightning arguments]) and its None defaults, resolved as Lightning resolves them."""

from __future__ import annotations

import warnings

import mlx.core as mx
import pytest
from train_testing import TinyClassifier, blobs

from mlx_audio.data import DataLoader
from mlx_audio.train import Trainer
from mlx_audio.train._device import device_scope
from mlx_audio.train.callbacks import ModelCheckpoint, ProgressBar, Timer


def quiet(**kwargs):
    return Trainer(
        **{
            "enable_progress_bar": False,
            "logger": False,
            "enable_checkpointing": False,
            "seed": 0,
            "enable_model_summary": False,
            **kwargs,
        }
    )


SEEN: list = []  # (a list attribute would become part of an MLX module's parameter tree)


class Where(TinyClassifier):
    """Records the device each training/predict step is built on."""

    def training_step(self, batch, batch_idx):
        SEEN.append(mx.default_device())
        return super().training_step(batch, batch_idx)

    def predict_step(self, batch, batch_idx):
        SEEN.append(mx.default_device())
        return self(batch[0])


def test_accelerator_cpu_and_one_device_run_on_the_cpu():
    model = Where()
    trainer = quiet(max_epochs=1, accelerator="cpu", devices=1, compile=False)
    trainer.fit(model, DataLoader(blobs(32), batch_size=8))
    trainer.predict(model, DataLoader(blobs(8), batch_size=8))
    assert trainer.accelerator == "cpu" and trainer.global_step == 4
    assert len(SEEN) == 5 and all(d == mx.cpu for d in SEEN)
    for devices in ("auto", -1, "-1", [0], "1", 1):
        quiet(max_epochs=1, devices=devices)


@pytest.mark.skipif(mx.default_device() != mx.cpu, reason="needs a machine where MLX has no GPU")
@pytest.mark.parametrize("accelerator", ["gpu", "cuda", "mps", "tpu"])
def test_an_accelerator_mlx_cannot_use_here_is_refused_with_what_is_available(accelerator):
    with pytest.raises(
        ValueError, match=rf"accelerator='{accelerator}' can not run on your system.*\['cpu'\]"
    ):
        quiet(max_epochs=1, accelerator=accelerator)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"accelerator": "npu"}, "accelerator must be one of"),
        (
            {"devices": 2},
            r"devices=2 asks for 2 devices, and this process is one of 1.*mlx.launch -n 2",
        ),
        ({"devices": "0,1"}, "asks for 2 devices"),
        ({"devices": [0, 1, 2]}, "asks for 3 devices"),
        ({"devices": 0}, "selects no device"),
        ({"devices": "two"}, "is not an int"),
        ({"devices": True}, "devices must be"),
        ({"deterministic": "always"}, "deterministic must be"),
        ({"benchmark": "yes"}, "benchmark must be"),
        ({"inference_mode": None}, "inference_mode must be"),
    ],
)
def test_bad_where_to_run_arguments_say_what_is_valid(kwargs, message):
    with pytest.raises(ValueError, match=message):
        quiet(max_epochs=1, **kwargs)


def test_accepted_lightning_flags_change_nothing():
    runs = []
    for kwargs in (
        {},
        {"deterministic": True, "benchmark": True, "inference_mode": False},
        {"deterministic": "warn"},
    ):
        trainer = quiet(max_epochs=1, **kwargs)  # seeds, then the model is built
        model = TinyClassifier()
        trainer.fit(model, DataLoader(blobs(32), batch_size=8, shuffle=True, seed=0))
        runs.append(model.fc1.weight.tolist())
    assert runs[0] == runs[1] == runs[2]


def test_max_time_adds_a_step_timer_unless_one_is_given():
    trainer = quiet(max_epochs=5, max_time={"microseconds": 1})
    timers = [c for c in trainer.callbacks if isinstance(c, Timer)]
    assert len(timers) == 1 and timers[0].interval == "step"
    trainer.fit(TinyClassifier(), DataLoader(blobs(64), batch_size=8))
    assert trainer.global_step == 1 and trainer.should_stop  # stopped by the time limit
    given = Timer("00:01:00:00", interval="epoch")
    assert [
        c
        for c in quiet(max_time="00:00:00:01", callbacks=[given]).callbacks
        if isinstance(c, Timer)
    ] == [given]
    # Lightning resolves max_epochs=None when fit runs: 1000 with a warning, -1 under a Timer
    unset = Trainer(logger=False, limit_train_batches=0, enable_progress_bar=False)
    assert unset.max_epochs is None
    with pytest.warns(UserWarning, match="`max_epochs` was not set"):
        unset.fit(TinyClassifier(), DataLoader(blobs(16), batch_size=8))
    assert unset.max_epochs == 1000
    timed = Trainer(logger=False, max_time="00:00:10:00", limit_train_batches=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no max_epochs warning: the time limits the run
        timed.fit(TinyClassifier(), DataLoader(blobs(16), batch_size=8))
    assert timed.max_epochs == -1


def test_lightning_none_defaults_resolve_as_there():
    trainer = Trainer(
        max_epochs=1,
        logger=False,
        enable_progress_bar=None,
        enable_checkpointing=None,
        gradient_clip_algorithm=None,
        log_every_n_steps=None,
        num_sanity_val_steps=None,
        precision=None,
    )
    assert any(isinstance(c, ProgressBar) for c in trainer.callbacks)
    assert any(isinstance(c, ModelCheckpoint) for c in trainer.callbacks)
    assert (
        trainer.gradient_clip_algorithm,
        trainer.log_every_n_steps,
        trainer.num_sanity_val_steps,
        trainer.precision,
    ) == ("norm", 50, 2, "32-true")
    assert Trainer(max_steps=-1, max_epochs=2, logger=False).max_steps is None


def test_device_scope_is_a_no_op_for_auto_and_the_default_device():
    before = mx.default_device()
    with device_scope("auto"):
        assert mx.default_device() == before
    with device_scope("cpu"):
        assert mx.default_device() == mx.cpu
    assert mx.default_device() == before
