"""Differential test of WeightAveraging / EMAWeightAveraging / StochasticWeightAveraging against
Lightning 2.6 on one problem
(averaging_cases.py): the same linear model, initial weights, data and SGD; the weights the
model holds at the end of fit (the averaged ones), the validation losses (computed with the
averaged weights swapped in) and the number of averaged models must match."""

from __future__ import annotations

import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim
import numpy as np
import pytest
from averaging_cases import BATCH, CASES, LR, problem
from toolkit_anchor import check_golden, reference

from mlx_audio.data import ArrayDataset, DataLoader
from mlx_audio.train import Trainer, TrainModule
from mlx_audio.train.callbacks import (
    EMAWeightAveraging,
    StochasticWeightAveraging,
    WeightAveraging,
)


class Record:
    def __init__(self):
        self.val_losses = []


class Linear(TrainModule):
    def __init__(self, p):
        super().__init__()
        self.fc = nn.Linear(p["weight"].shape[1], 1)
        self.fc.weight = mx.array(p["weight"])
        self.fc.bias = mx.array(p["bias"])
        self.record = Record()  # not a list: that would join the module's parameter tree

    def training_step(self, batch, batch_idx):
        x, y = batch
        return mx.mean((self.fc(x) - y) ** 2)

    def validation_step(self, batch, batch_idx):
        x, y = batch
        return mx.mean((self.fc(x) - y) ** 2)

    def on_validation_batch_end(self, outputs, batch, batch_idx):
        self.record.val_losses.append(outputs)  # the compiled step's output (a real array)

    def configure_optimizers(self):
        return optim.SGD(learning_rate=LR)


def run_ours(name, **extra):
    kind, kwargs, trainer_kwargs = CASES[name]
    p = problem()
    model = Linear(p)
    train = DataLoader(ArrayDataset(p["x"], p["y"]), batch_size=BATCH)
    val = DataLoader(ArrayDataset(p["vx"], p["vy"]), batch_size=BATCH)
    make = {"ema": EMAWeightAveraging, "mean": WeightAveraging, "swa": StochasticWeightAveraging}
    callback = make[kind](**kwargs)
    trainer = Trainer(
        callbacks=[callback],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        **{**trainer_kwargs, **extra},
    )
    trainer.fit(model, train, val)
    final = np.concatenate([np.array(model.fc.weight).ravel(), np.array(model.fc.bias)])
    return model, callback, trainer, final


@pytest.fixture(scope="module")
def lightning():
    return reference("weight_averaging")


@pytest.mark.parametrize("name", list(CASES))
def test_same_averaged_weights_as_lightning(name, lightning):
    model, callback, trainer, final = run_ours(name)
    theirs = lightning[name]
    assert trainer.global_step == theirs["global_step"]
    assert callback.n_averaged == theirs["n_averaged"]
    np.testing.assert_allclose(final, theirs["final"], rtol=2e-5, atol=2e-6)
    losses = [float(v) for v in model.record.val_losses]
    np.testing.assert_allclose(losses, theirs["val_losses"], rtol=2e-5, atol=2e-6)


def test_golden_file_is_what_lightning_gives():
    check_golden("weight_averaging")
