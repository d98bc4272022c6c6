"""Short epochs: Lightning 2.6's warning when an epoch has fewer batches than
``log_every_n_steps`` (lightning/pytorch/loops/fit_loop.py, ``setup_data``), and the progress
bar's plain lines that never repeat the epoch's last line."""

import io
import os
import signal
import warnings

import pytest
from train_testing import TinyClassifier, blobs

from mlx_audio.data import DataLoader
from mlx_audio.loggers import CSVLogger
from mlx_audio.train import Trainer
from mlx_audio.train.callbacks import Callback, ModelCheckpoint, ProgressBar

LIGHTNING = (  # Lightning 2.6.6's words, with its numbers
    "The number of training batches (8) is smaller than the logging interval "
    "Trainer(log_every_n_steps=50). Set a lower value for log_every_n_steps if you want to see "
    "logs for the training epoch."
)


def fit(tmp_path, **kwargs) -> list[str]:
    """Messages of the UserWarnings a one-epoch fit of 8 batches gives."""
    settings = {
        "max_epochs": 1,
        "enable_progress_bar": False,
        "enable_checkpointing": False,
        "enable_model_summary": False,
        "seed": 0,
        "logger": CSVLogger(tmp_path),
        **kwargs,
    }
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        Trainer(**settings).fit(TinyClassifier(), DataLoader(blobs(64), batch_size=8))
    return [str(w.message) for w in caught if issubclass(w.category, UserWarning)]


def test_an_epoch_shorter_than_the_logging_interval_warns_as_lightning(tmp_path):
    assert fit(tmp_path).count(LIGHTNING) == 1
    assert fit(tmp_path, log_every_n_steps=20) == [
        LIGHTNING.replace("log_every_n_steps=50", "log_every_n_steps=20")
    ]
    # none when the interval fits the epoch, nothing is logged, or in a fast_dev_run
    assert not [m for m in fit(tmp_path, log_every_n_steps=8) if "logging interval" in m]
    assert not [m for m in fit(tmp_path, logger=False) if "logging interval" in m]
    assert not [m for m in fit(tmp_path, fast_dev_run=True) if "logging interval" in m]


def test_plain_lines_never_repeat_the_epochs_last_line():
    """A line that falls due at the epoch's last batch is the epoch-end line, written once (a
    one-batch epoch slower than the interval printed its only line twice)."""
    stream = io.StringIO()
    Trainer(
        max_epochs=2,
        logger=False,
        enable_checkpointing=False,
        seed=0,
        callbacks=[ProgressBar(stream=stream, plain_interval=0)],
    ).fit(TinyClassifier(), DataLoader(blobs(8), batch_size=8))
    lines = [line.split(" [")[0] for line in stream.getvalue().splitlines()]
    assert lines == ["Epoch 0: 1/1 (100%)", "Epoch 1: 1/1 (100%)"], stream.getvalue()


def test_plain_lines_of_a_run_resumed_mid_epoch_time_the_resumed_part(tmp_path):
    """Resumed in the middle of an epoch (no on_train_epoch_start), the bar still counts time,
    rates and plain lines from where it started, not from the clock's zero."""

    class CtrlC(Callback):  # Ctrl-C during the third batch: a checkpoint after it
        def on_train_batch_start(self, trainer, module, batch, batch_idx):
            if batch_idx == 2:
                os.kill(os.getpid(), signal.SIGINT)

    common = {"logger": False, "seed": 0, "default_root_dir": str(tmp_path)}
    with pytest.raises(KeyboardInterrupt):
        Trainer(
            max_epochs=1,
            enable_progress_bar=False,
            callbacks=[CtrlC(), ModelCheckpoint(save_on_exception=True)],
            **common,
        ).fit(TinyClassifier(), DataLoader(blobs(64), batch_size=8))
    stream = io.StringIO()
    Trainer(max_epochs=1, callbacks=[ProgressBar(stream=stream, plain_interval=0)], **common).fit(
        TinyClassifier(), DataLoader(blobs(64), batch_size=8), ckpt_path="last"
    )
    lines = [line for line in stream.getvalue().splitlines() if line.startswith("Epoch 0")]
    assert [line.split(" [")[0] for line in lines] == [
        f"Epoch 0: {n}/8 ({n / 8:.0%})" for n in range(4, 9)
    ], stream.getvalue()
    assert all("[00:0" in line and " 0.00 it/s" not in line for line in lines), lines
