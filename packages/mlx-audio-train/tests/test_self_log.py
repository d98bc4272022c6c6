"""``self.log`` options beyond the differential suite: weighting by real batch sizes, duplicate
values inside the compiled step, errors. (Lightning's per-hook defaults, ``name_step``/
``name_epoch``, reduce_fx, prog_bar and logger=False are compared with real Lightning in
tests/lightning_parity, scenarios ``log_opts_*``.)"""

import csv
import io
import re

import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim
import numpy as np
import pytest
from train_testing import TinyClassifier, blobs

from mlx_audio.data import ArrayDataset, DataLoader
from mlx_audio.loggers import CSVLogger
from mlx_audio.train import Trainer, TrainModule
from mlx_audio.train._metrics import MetricStore
from mlx_audio.train.callbacks import ProgressBar


class Logging(TrainModule):
    def __init__(self, calls):
        super().__init__()
        self.layer = nn.Linear(2, 1)
        object.__setattr__(self, "calls", calls)

    def compute_loss(self, batch):
        x, y = batch
        return mx.mean((self.layer(x).squeeze(-1) - y) ** 2), {}

    def training_step(self, batch, batch_idx):
        out = self.compute_loss(batch)
        x, _ = batch
        for name, options in self.calls.items():
            self.log(name, x[:, 0].mean(), **options)
        return out

    def validation_step(self, batch, batch_idx):
        x, _ = batch
        self.log("v_mean", x[:, 0].mean())
        self.log("v_dup_a", mx.array(2.0))  # two equal constants in one step
        self.log("v_dup_b", mx.array(2.0))

    def configure_optimizers(self):
        return optim.SGD(learning_rate=0.0)


def data(n):
    x = np.stack([np.arange(n, dtype=np.float32), np.zeros(n, np.float32)], 1)
    return ArrayDataset(x, np.zeros(n, np.float32))


def fit(calls, tmp_path, n=10, batch_size=4, **kwargs):
    trainer = Trainer(
        max_epochs=1,
        enable_progress_bar=False,
        enable_checkpointing=False,
        num_sanity_val_steps=0,
        logger=CSVLogger(str(tmp_path), name="logs"),
        log_every_n_steps=1,
        seed=0,
        **kwargs,
    )
    loader = DataLoader(data(n), batch_size=batch_size)
    trainer.fit(Logging(calls), loader, loader)
    with open(f"{trainer.log_dir}/metrics.csv") as f:
        rows = list(csv.DictReader(f))
    return trainer, rows


def test_epoch_mean_is_weighted_by_the_batch_size(tmp_path):
    # batches [0..3], [4..7], [8, 9]: per-batch means 1.5, 5.5, 8.5 -> weighted mean 4.5 (= mean
    # of 0..9), where an unweighted mean of the batch means would give 5.1667
    trainer, rows = fit({"m": dict(on_step=False, on_epoch=True)}, tmp_path)
    assert trainer.callback_metrics["m"] == pytest.approx(4.5)
    assert trainer.callback_metrics["v_mean"] == pytest.approx(4.5)
    assert [float(r["m"]) for r in rows if r.get("m")] == pytest.approx([4.5])


def test_explicit_batch_size_overrides_the_inferred_one(tmp_path):
    trainer, _ = fit({"m": dict(on_step=False, on_epoch=True, batch_size=1)}, tmp_path)
    assert trainer.callback_metrics["m"] == pytest.approx((1.5 + 5.5 + 8.5) / 3)


def test_equal_values_logged_twice_in_the_compiled_step(tmp_path):
    calls = {"a": {}, "b": {}, "c": dict(on_step=False, on_epoch=True, reduce_fx="sum")}
    trainer, rows = fit(calls, tmp_path, accumulate_grad_batches=2)
    assert [float(r["a"]) for r in rows if r.get("a")] == [
        float(r["b"]) for r in rows if r.get("b")
    ]
    assert trainer.callback_metrics["c"] == pytest.approx(1.5 + 5.5 + 8.5)
    assert trainer.callback_metrics["v_dup_a"] == trainer.callback_metrics["v_dup_b"] == 2.0


def test_step_and_epoch_values_both_reach_the_logger(tmp_path):
    trainer, rows = fit({"m": dict(on_step=True, on_epoch=True, prog_bar=True)}, tmp_path)
    assert [float(r["m_step"]) for r in rows if r.get("m_step")] == pytest.approx([1.5, 5.5, 8.5])
    epoch_rows = [r for r in rows if r.get("m_epoch")]
    assert len(epoch_rows) == 1 and epoch_rows[0]["epoch"] == "0" and epoch_rows[0]["step"] == "2"
    assert set(trainer.progress_bar_metrics) >= {"m_step", "m_epoch"}
    assert trainer.callback_metrics["m"] == pytest.approx(4.5)  # the epoch value, as in Lightning


@pytest.mark.parametrize(
    "options, message",
    [
        (dict(reduce_fx="median"), "reduce_fx"),
        (dict(on_step=False, on_epoch=False), "on_step"),
    ],
)
def test_bad_options_are_clear_errors(options, message, tmp_path):
    with pytest.raises(ValueError, match=message):
        fit({"m": options}, tmp_path)


def test_reduce_fx_spellings_lightning_accepts(tmp_path):
    calls = {
        "avg": dict(on_step=False, on_epoch=True, reduce_fx="AVG"),
        "top": dict(on_step=False, on_epoch=True, reduce_fx=mx.max),
    }
    trainer, rows = fit(calls, tmp_path)
    assert trainer.callback_metrics["avg"] == pytest.approx(4.5)
    assert trainer.callback_metrics["top"] == pytest.approx(8.5)
    with open(f"{trainer.log_dir}/metrics.csv") as f:
        header = f.readline().strip().split(",")
    assert header == sorted(header)  # Lightning's CSVLogger sorts its columns


# -- the two idioms (NOTE [two logging idioms]), eval outputs, no device sync per step ----------
class Returns(TinyClassifier):
    """Lightning's idiom: the steps compute the loss themselves and log what they want."""

    def training_step(self, batch, batch_idx):
        loss, _ = self.compute_loss(batch)
        self.log("my_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        loss, metrics = self.compute_loss(batch)
        self.log("my_val", loss)
        return {"x": loss, "acc": metrics["accuracy"]}  # a dict without "loss"


def blob_fit(model, **kwargs):
    trainer = Trainer(
        max_epochs=1,
        enable_checkpointing=False,
        logger=False,
        seed=0,
        num_sanity_val_steps=0,
        **{"enable_progress_bar": False, **kwargs},
    )
    loader = DataLoader(blobs(32), batch_size=8)
    trainer.fit(model, loader, loader)
    return trainer


def test_compute_loss_idiom_logs_what_it_returns_also_through_super():
    class Probe(TinyClassifier):
        def training_step(self, batch, batch_idx):
            self.log("extra", 1.0)
            return super().training_step(batch, batch_idx)

    for model in (TinyClassifier(), Probe()):
        trainer = blob_fit(model)
        assert {"train_loss", "train_accuracy", "val_loss", "val_accuracy"} <= set(
            trainer.callback_metrics
        )
        assert "train_loss" in trainer.progress_bar_metrics


def test_lightning_idiom_logs_only_what_self_log_logs():
    trainer = blob_fit(Returns())
    assert set(trainer.logged_metrics) == {"my_loss", "my_val"}
    assert set(trainer.callback_metrics) == {"my_loss", "my_val"}


def test_lightning_idiom_shows_the_training_loss_in_the_progress_bar_only():
    stream = io.StringIO()
    bar = ProgressBar(stream=stream, metrics_interval=0, plain_interval=0)
    trainer = blob_fit(Returns(), callbacks=[bar], enable_progress_bar=True)
    assert "loss" not in trainer.progress_bar_metrics  # nothing was logged with prog_bar=True
    assert re.search(r"Epoch 0: .* loss=\d", stream.getvalue())


@pytest.mark.parametrize("compile", [True, False])
@pytest.mark.parametrize("returned", ["dict", "list", "none"])
def test_validation_and_test_steps_may_return_anything(returned, compile):
    seen = []

    class Anything(TinyClassifier):
        def validation_step(self, batch, batch_idx):
            loss, _ = self.compute_loss(batch)
            self.log("v", loss)
            return {"dict": {"x": loss}, "list": [loss, loss * 2], "none": None}[returned]

        def on_validation_batch_end(self, outputs, batch, batch_idx):
            seen.append(outputs)

    trainer = blob_fit(Anything(), compile=compile)
    results = trainer.test(Anything(), DataLoader(blobs(16), batch_size=8))
    assert set(results[0]) == {"v"} and "v" in trainer.callback_metrics
    assert len(seen) == 4
    if returned == "none":
        assert all(out is None for out in seen)
    else:
        kind = dict if returned == "dict" else list
        assert all(isinstance(out, kind) for out in seen)
        first = seen[0]["x"] if returned == "dict" else seen[0][0]
        assert isinstance(first, mx.array) and first.size == 1


def test_logged_step_values_stay_on_the_device_until_read(monkeypatch):
    """Values logged inside the compiled step are not read back per step: with nothing asking
    (no logger, bar or monitor), training reads no metric from the device."""
    reads = []
    original = MetricStore.floats
    monkeypatch.setattr(
        MetricStore, "floats", staticmethod(lambda values: reads.append(1) or original(values))
    )
    trainer = Trainer(
        max_epochs=3,
        enable_progress_bar=False,
        enable_checkpointing=False,
        logger=False,
        compile=True,
    )
    trainer.fit(Logging({"m": dict(on_step=True, on_epoch=True)}), DataLoader(data(16), 4))
    assert reads == []
    assert trainer.callback_metrics["m"] is not None and reads == [1]
