"""Metric objects (mlx_audio.train.metrics) updated inside the compiled steps and logged with
``self.log(name, metric)``: the epoch value is ``compute()`` over the whole epoch (not a mean of
batch values), the step value is the batch's, the metric is reset after each epoch, and the same
numbers come out with and without ``compile``. (Parity with torchmetrics:
tests/toolkit_parity/test_metrics_parity.py.)"""

from __future__ import annotations

import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim
import numpy as np
import pytest

from mlx_audio.data import ArrayDataset, DataLoader
from mlx_audio.train import Trainer, TrainModule
from mlx_audio.train.metrics import Accuracy, AveragePrecision, F1Score


def tagged(n: int, seed: int) -> ArrayDataset:
    """Multi-label points: label j is on when feature j is positive (plus noise)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 6)).astype(np.float32)
    y = (x[:, :4] + 0.5 * rng.standard_normal((n, 4)) > 0).astype(np.int32)
    return ArrayDataset(x, y)


class Tagger(TrainModule):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(6, 4)
        self.train_acc = Accuracy("multilabel", num_labels=4)
        self.val_map = AveragePrecision("multilabel", num_labels=4, average="macro")
        self.val_f1 = F1Score("multilabel", num_labels=4, average="macro")

    def __call__(self, x):
        return self.fc(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        self.train_acc(logits, y)
        self.log("train_acc", self.train_acc, on_step=True, on_epoch=True)
        return mx.mean(nn.losses.binary_cross_entropy(logits, y.astype(mx.float32)))

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        self.val_map.update(logits, y)
        self.val_f1(logits, y)
        self.log("val_mAP", self.val_map)
        self.log("val_f1", self.val_f1)

    def configure_optimizers(self):
        return optim.SGD(learning_rate=0.5)


def fit(compile: bool):
    mx.random.seed(0)
    model = Tagger()
    trainer = Trainer(
        max_epochs=2,
        seed=3,
        compile=compile,
        logger=False,
        enable_progress_bar=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
    )
    val = DataLoader(tagged(40, 2), batch_size=16)  # 16 + 16 + 8: batch means would differ
    trainer.fit(model, DataLoader(tagged(64, 1), batch_size=16), val)
    return model, trainer, val


@pytest.mark.parametrize("compile", [True, False])
def test_logged_metric_is_computed_over_the_epoch(compile):
    model, trainer, val = fit(compile)
    metrics = trainer.callback_metrics
    # the last validation's value: the metric over the whole validation set, final weights
    reference = AveragePrecision("multilabel", num_labels=4)
    per_batch = []
    for x, y in val:
        reference.update(model(x), y)
        one = AveragePrecision("multilabel", num_labels=4)
        one.update(model(x), y)
        per_batch.append(float(one.compute()))
    assert metrics["val_mAP"] == pytest.approx(float(reference.compute()), abs=1e-6)
    assert metrics["val_mAP"] != pytest.approx(float(np.mean(per_batch)), abs=1e-4)
    assert {"train_acc_step", "train_acc_epoch", "val_f1"} <= set(metrics)
    assert model.val_map.update_count == 0 and model.train_acc.update_count == 0  # reset


def test_compiled_and_eager_steps_give_the_same_metrics():
    _, compiled, _ = fit(True)
    _, eager, _ = fit(False)
    for key in ("val_mAP", "val_f1", "train_acc_epoch", "train_acc_step"):
        assert compiled.callback_metrics[key] == pytest.approx(
            eager.callback_metrics[key], abs=1e-6
        )


def test_on_step_needs_the_batch_value():
    class OnlyUpdate(Tagger):
        def training_step(self, batch, batch_idx):
            x, y = batch
            self.train_acc.update(self(x), y)
            self.log("train_acc", self.train_acc)  # on_step=True by default in training_step
            return mx.mean(self(x))

    trainer = Trainer(
        max_epochs=1, logger=False, enable_progress_bar=False, enable_checkpointing=False
    )
    with pytest.raises(ValueError, match="call the metric"):
        trainer.fit(OnlyUpdate(), DataLoader(tagged(16, 1), batch_size=16))


def test_compute_inside_a_step_is_refused():
    class Computes(Tagger):
        def validation_step(self, batch, batch_idx):
            x, y = batch
            self.val_map.update(self(x), y)
            self.log("val_mAP", self.val_map.compute())  # frozen at trace time if allowed

    trainer = Trainer(
        max_epochs=1, logger=False, enable_progress_bar=False, enable_checkpointing=False
    )
    data = DataLoader(tagged(16, 1), batch_size=16)
    with pytest.raises(RuntimeError, match="compute\\(\\) inside a step"):
        trainer.fit(Computes(), data, data)
