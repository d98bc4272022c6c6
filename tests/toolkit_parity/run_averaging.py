"""Lightning's side of the weight-averaging differential test:
``.venv-anchor/bin/python run_averaging.py OUT``."""

from __future__ import annotations

import json
import os
import sys

if "LD_PRELOAD" in os.environ:  # torch's own BLAS, not the tests' OpenBLAS: the last bits differ
    env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
    os.execve(sys.executable, [sys.executable, *sys.argv], env)
import tempfile
import warnings

import lightning.pytorch as pl
import torch
from averaging_cases import BATCH, CASES, LR, problem, rounded
from lightning.pytorch.callbacks import (
    EMAWeightAveraging,
    StochasticWeightAveraging,
    WeightAveraging,
)
from torch.utils.data import DataLoader, TensorDataset


class Linear(pl.LightningModule):
    def __init__(self, p):
        super().__init__()
        self.fc = torch.nn.Linear(p["weight"].shape[1], 1)
        with torch.no_grad():
            self.fc.weight.copy_(torch.from_numpy(p["weight"]))
            self.fc.bias.copy_(torch.from_numpy(p["bias"]))
        self.val_losses = []

    def training_step(self, batch, batch_idx):
        x, y = batch
        return torch.mean((self.fc(x) - y) ** 2)

    def validation_step(self, batch, batch_idx):
        x, y = batch
        loss = torch.mean((self.fc(x) - y) ** 2)
        self.val_losses.append(float(loss))
        return loss

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=LR)


def run(name):
    kind, kwargs, trainer_kwargs = CASES[name]
    p = problem()
    model = Linear(p)
    train = DataLoader(TensorDataset(torch.from_numpy(p["x"]), torch.from_numpy(p["y"])), BATCH)
    val = DataLoader(TensorDataset(torch.from_numpy(p["vx"]), torch.from_numpy(p["vy"])), BATCH)
    make = {"ema": EMAWeightAveraging, "mean": WeightAveraging, "swa": StochasticWeightAveraging}
    callback = make[kind](**kwargs)
    with tempfile.TemporaryDirectory() as root:
        trainer = pl.Trainer(
            callbacks=[callback],
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            num_sanity_val_steps=0,
            default_root_dir=root,
            **trainer_kwargs,
        )
        trainer.fit(model, train, val)
    return {
        "final": rounded(torch.cat([model.fc.weight.ravel(), model.fc.bias]).detach().numpy()),
        "val_losses": rounded(model.val_losses),
        "n_averaged": int(
            callback.n_averaged if kind == "swa" else callback._average_model.n_averaged
        ),
        "global_step": trainer.global_step,
    }


if __name__ == "__main__":
    warnings.filterwarnings("ignore")
    torch.manual_seed(0)
    results = {name: run(name) for name in CASES}
    with open(sys.argv[1], "w") as f:
        json.dump(results, f)
