"""Callbacks: progress output, timer, summary, early-stopping rules and restored state;
precision modes; fast_dev_run and minimums; retrace warnings."""

import io
import logging
import re
import warnings

import mlx.core as mx
import mlx.nn as nn
import numpy as np
import pytest
from train_testing import TinyClassifier, blobs

from mlx_audio.data import DataLoader
from mlx_audio.train import Trainer
from mlx_audio.train.callbacks import (
    Callback,
    EarlyStopping,
    ModelCheckpoint,
    ModelSummary,
    ProgressBar,
    Timer,
)


def quiet(**kwargs):
    return Trainer(
        **{
            "enable_progress_bar": False,
            "logger": False,
            "enable_checkpointing": False,
            "seed": 0,
            **kwargs,
        }
    )


def loaders():
    return DataLoader(blobs(64), batch_size=8, shuffle=True), DataLoader(
        blobs(32, seed=1), batch_size=16
    )


class FakeTTY(io.StringIO):
    def isatty(self):
        return True


def test_progress_bar_plain_lines_when_not_a_terminal():
    """Logs and CI: periodic plain lines, no control characters."""
    stream = io.StringIO()
    bar = ProgressBar(refresh_rate=2, stream=stream, plain_interval=0)
    quiet(max_epochs=1, callbacks=[bar], enable_progress_bar=True).fit(TinyClassifier(), *loaders())
    text = stream.getvalue()
    # a line every refresh_rate=2 of the 8 batches (the last one at the epoch's end, once):
    # where, the elapsed time (mm:ss, whatever it is), the rates, the metrics
    line = re.compile(
        r"Epoch 0: (\d+)/8 \((\d+)%\) \[(\d+:)?\d\d:\d\d, \d+\.\d\d it/s, \d+\.\d samples/s\] "
        r"loss=\S+, accuracy=\S+, lr=\S+"
    )
    lines = [line.fullmatch(t) for t in text.splitlines() if t.startswith("Epoch ")]
    assert all(lines), text
    assert [(m[1], m[2]) for m in lines] == [
        ("2", "25"),
        ("4", "50"),
        ("6", "75"),
        ("8", "100"),
    ], text
    assert "loss=" in text and "lr=" in text and "epoch 0 validation: val_loss=" in text
    assert "\r" not in text and "\x1b" not in text


def test_progress_bar_tqdm_bars_on_a_terminal():
    """tqdm's bars, as Lightning's TQDMProgressBar: sanity check, train, validation."""
    stream = FakeTTY()
    bar = ProgressBar(stream=stream)
    quiet(max_epochs=2, callbacks=[bar], enable_progress_bar=True).fit(TinyClassifier(), *loaders())
    text = stream.getvalue()
    assert "Sanity Checking" in text and "Validation" in text
    assert "Epoch 1: 100%|" in text and "8/8 [" in text and "samples/s" in text and "lr=" in text
    assert "epoch 1 validation: val_loss=" in text


def test_rich_progress_bar_on_a_terminal_and_in_logs(monkeypatch):
    """Lightning's RichProgressBar: rich's bars with completed/total, times and the metrics on a
    terminal; on a stream that is not a terminal, the plain lines (no control characters)."""
    from mlx_audio.train.callbacks import RichProgressBar

    monkeypatch.setenv("COLUMNS", "200")  # a wide terminal: the metrics fit beside the bar
    stream = FakeTTY()
    trainer = quiet(
        max_epochs=2, callbacks=[RichProgressBar(stream=stream)], enable_progress_bar=True
    )
    trainer.fit(TinyClassifier(), *loaders())
    assert (
        sum(isinstance(c, ProgressBar) for c in trainer.callbacks) == 1
    )  # replaces the default bar
    text = stream.getvalue()
    assert "Sanity Checking" in text and "Validation" in text and "Epoch 1" in text
    assert "8/8" in text and "samples/s" in text and "loss=" in text and "lr=" in text
    assert "\x1b[" in text  # drawn by rich on a terminal
    assert "epoch 1 validation: val_loss=" in text
    plain = io.StringIO()
    quiet(
        max_epochs=1,
        callbacks=[RichProgressBar(stream=plain, plain_interval=0)],
        enable_progress_bar=True,
    ).fit(TinyClassifier(), *loaders())
    assert "Epoch 0: 8/8 (100%)" in plain.getvalue() and "\x1b" not in plain.getvalue()


def test_progress_bar_reads_the_device_at_most_once_per_interval():
    """NOTE [no device sync in the bar]: with a long interval the metrics are read at the first
    refresh and at each epoch's end only; the learning rate still follows the schedule."""

    class Counting(Trainer):
        reads = 0

        @property
        def progress_bar_metrics(self):
            Counting.reads += 1
            return super().progress_bar_metrics

    stream = io.StringIO()
    bar = ProgressBar(stream=stream, metrics_interval=3600, plain_interval=0)
    trainer = Counting(
        max_epochs=2, callbacks=[bar], logger=False, enable_checkpointing=False, seed=0
    )
    module = TinyClassifier()
    trainer.fit(module, loaders()[0])
    assert Counting.reads == 3  # batch 1, then the two epochs' ends
    lines = [line for line in stream.getvalue().splitlines() if line.startswith("Epoch 1:")]
    schedule = trainer.optimizer._schedulers["learning_rate"]
    assert lines[-1].endswith(f"lr={float(schedule(mx.array(16)).item()):.3g}")


def test_progress_bar_off_by_environment(monkeypatch):
    monkeypatch.setenv("MLX_AUDIO_PROGRESS_BAR", "0")
    stream = FakeTTY()
    quiet(max_epochs=1, callbacks=[ProgressBar(stream=stream)], enable_progress_bar=True).fit(
        TinyClassifier(), *loaders()
    )
    assert stream.getvalue() == ""


def test_timer_stops_training_and_its_time_survives_resume(tmp_path):
    timer = Timer(duration=1e-9)
    trainer = quiet(max_epochs=5, callbacks=[timer])
    trainer.fit(TinyClassifier(), loaders()[0])
    assert trainer.global_step == 1 and trainer.should_stop
    restored = Timer("00:00:01:00")
    restored.load_state_dict(timer.state_dict())
    assert restored.time_elapsed() >= timer.state_dict()["time_elapsed"] > 0


def test_model_summary_prints_layers(caplog):
    caplog.set_level(logging.INFO, "mlx_audio.train")
    quiet(max_steps=1, callbacks=[ModelSummary()]).fit(TinyClassifier(), loaders()[0])
    out = caplog.text
    assert "fc1" in out and "Linear" in out and "195 trainable params" in out


def test_model_summary_is_a_default_callback_as_in_lightning(caplog):
    caplog.set_level(logging.INFO, "mlx_audio.train")
    quiet(max_steps=1).fit(TinyClassifier(), loaders()[0])  # enable_model_summary=None: on
    assert caplog.text.count("195 trainable params") == 1
    caplog.clear()
    given = ModelSummary()
    trainer = quiet(max_steps=1, callbacks=[given])
    assert [c for c in trainer.callbacks if isinstance(c, ModelSummary)] == [given]
    for trainer in (
        quiet(max_steps=1, enable_model_summary=False),
        quiet(max_steps=1, callbacks=[ModelSummary(max_depth=0)]),
    ):
        trainer.fit(TinyClassifier(), loaders()[0])
        assert "trainable params" not in caplog.text
    assert not any(isinstance(c, ModelSummary) for c in quiet(enable_model_summary=False).callbacks)


@pytest.mark.parametrize(
    "kwargs, reason",
    [
        ({"stopping_threshold": 10.0}, "Stopping threshold reached"),
        ({"divergence_threshold": 1e-6}, "Divergence threshold reached"),
        ({"patience": 0}, "did not improve"),
    ],
)
def test_early_stopping_rules(kwargs, reason, caplog):
    caplog.set_level(logging.INFO, "mlx_audio.train")
    trainer = quiet(
        max_epochs=10,
        num_sanity_val_steps=0,
        callbacks=[EarlyStopping(monitor="val_loss", **kwargs)],
    )
    trainer.fit(TinyClassifier(), *loaders())
    assert trainer.current_epoch < 10 and reason in caplog.text


def test_early_stopping_state_is_checkpointed_and_restored(tmp_path):
    def make():
        stopper = EarlyStopping(monitor="val_accuracy", mode="max", patience=50)
        trainer = Trainer(
            max_epochs=4,
            seed=0,
            enable_progress_bar=False,
            logger=False,
            default_root_dir=str(tmp_path),
            callbacks=[stopper, ModelCheckpoint(dirpath=str(tmp_path / "ck"))],
        )
        return stopper, trainer

    stopper, trainer = make()
    trainer.fit(TinyClassifier(total_steps=32), *loaders())
    saved = stopper.state_dict()
    stopper, trainer = make()
    trainer.fit(TinyClassifier(total_steps=32), *loaders(), ckpt_path=str(tmp_path / "ck" / "last"))
    assert stopper.best_score == saved["best_score"] and stopper.wait_count == saved["wait_count"]


def test_bf16_mixed_keeps_fp32_weights_and_bf16_casts_them():
    model = TinyClassifier(dropout=0.0)
    trainer = quiet(max_epochs=2, precision="bf16-mixed")
    trainer.fit(model, *loaders())
    assert model.fc1.weight.dtype == mx.float32 and np.isfinite(
        trainer.callback_metrics["train_loss"]
    )
    assert trainer.callback_metrics["val_accuracy"] > 0.5
    pure = TinyClassifier(dropout=0.0)
    quiet(max_epochs=1, precision="bf16-true").fit(pure, *loaders())
    assert pure.fc1.weight.dtype == mx.bfloat16


def test_bf16_mixed_computes_frozen_parameters_in_bf16_as_autocast():
    """Lightning's autocast computes the frozen layer in bf16: so does the step, on a bf16 copy
    (the float32 weight comes back unchanged); a tower the user cast to bf16 stays bf16."""
    seen = []

    class Tower(TinyClassifier):
        def __init__(self, cast: bool) -> None:
            super().__init__(dropout=0.0)
            self.frozen = nn.Linear(8, 8)
            self.frozen.freeze()
            if cast:
                self.frozen.set_dtype(mx.bfloat16)

        def __call__(self, x):
            seen.append((self.frozen.weight.dtype, self.fc1.weight.dtype))
            return super().__call__(self.frozen(x))

    plain = Tower(cast=False)
    weight = np.array(plain.frozen.weight)
    quiet(max_epochs=1, precision="bf16-mixed").fit(plain, loaders()[0])
    assert seen[0] == (mx.bfloat16, mx.bfloat16) and plain.frozen.weight.dtype == mx.float32
    assert np.array_equal(np.array(plain.frozen.weight), weight)
    seen.clear()
    cast = Tower(cast=True)
    before = np.array(cast.frozen.weight.astype(mx.float32))
    trainer = quiet(max_epochs=2, precision="bf16-mixed")
    trainer.fit(cast, loaders()[0])
    assert seen[0] == (mx.bfloat16, mx.bfloat16) and cast.frozen.weight.dtype == mx.bfloat16
    assert np.array_equal(np.array(cast.frozen.weight.astype(mx.float32)), before)
    assert cast.fc1.weight.dtype == mx.float32 and np.isfinite(
        trainer.callback_metrics["train_loss"]
    )


def test_fast_dev_run_and_minimum_epochs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    trainer = Trainer(fast_dev_run=True, enable_progress_bar=False)
    trainer.fit(TinyClassifier(), *loaders())
    assert (
        trainer.global_step == 1
        and not (tmp_path / "checkpoints").exists()
        and not (tmp_path / "logs").exists()
    )
    trainer = quiet(
        max_epochs=6,
        min_epochs=3,
        num_sanity_val_steps=0,
        callbacks=[EarlyStopping(monitor="val_loss", patience=0, stopping_threshold=1e9)],
    )
    trainer.fit(TinyClassifier(), *loaders())
    assert trainer.current_epoch == 3


def test_changing_shapes_warn_once_about_retracing():
    batches = [(mx.random.normal((n, 8)), mx.zeros((n,), dtype=mx.int32)) for n in range(2, 14)]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        quiet(max_epochs=1).fit(TinyClassifier(), batches)
    notes = [w for w in caught if "different batch shapes" in str(w.message)]
    assert len(notes) == 1 and "Pad or bucket" in str(notes[0].message)


def test_trace_guard_stays_on_after_the_retrace_warning():
    """Defect 9: after the warning, a step that raises while being traced for a new shape still
    leaves real weights behind (no placeholder arrays), so the model stays usable."""

    class FailsOnThirteen(TinyClassifier):
        def training_step(self, batch, batch_idx):
            if batch[0].shape[0] == 13:
                raise RuntimeError("bad batch")
            return super().training_step(batch, batch_idx)

    model = FailsOnThirteen()
    batches = [(mx.random.normal((n, 8)), mx.zeros((n,), dtype=mx.int32)) for n in range(2, 14)]
    with (
        warnings.catch_warnings(record=True) as caught,
        pytest.raises(RuntimeError, match="bad batch"),
    ):
        warnings.simplefilter("always")
        quiet(max_epochs=1).fit(model, batches)
    assert any("different batch shapes" in str(w.message) for w in caught)  # the warning came first
    mx.eval(model.parameters())  # placeholders would raise "array without a primitive"
    quiet(max_epochs=1).fit(model, batches[:3])  # and the model trains on


def test_per_batch_hooks_reach_every_override_class_or_instance(tmp_path):
    """NOTE [hooks nobody overrides]: the per-batch hooks skip the base classes' no-ops, but a
    hook overridden in a subclass or set on an instance (as Lightning's tests patch them) runs
    at every batch, the module's too."""
    calls: list[str] = []

    class ByClass(Callback):
        def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
            calls.append("class")

    by_instance = Callback()
    by_instance.on_train_batch_start = lambda trainer, module, batch, batch_idx: calls.append(
        "instance"
    )
    module = TinyClassifier(total_steps=4)
    module.on_before_optimizer_step = lambda optimizer: calls.append("module")
    Trainer(
        max_steps=4,
        seed=0,
        default_root_dir=str(tmp_path),
        enable_progress_bar=False,
        enable_checkpointing=False,
        logger=False,
        callbacks=[ByClass(), by_instance, Callback()],
    ).fit(module, DataLoader(blobs(64), batch_size=8))
    assert sorted(calls) == sorted(["class", "instance", "module"] * 4)
