"""``self.log`` options beyond the differential suite: weighting by real batch sizes, duplicate
values inside the compiled step, errors. (Lightning's per-hook defaults, ``name_step``/
``name_epoch``, reduce_fx, prog_bar and logger=False are compared with real Lightning in
tests/lightning_parity, scenarios ``log_opts_*``.)"""

import csv

import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim
import numpy as np
import pytest

from mlx_audio.data import ArrayDataset, DataLoader
from mlx_audio.loggers import CSVLogger
from mlx_audio.train import Trainer, TrainModule


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
