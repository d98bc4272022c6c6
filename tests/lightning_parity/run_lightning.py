"""The Lightning side of the differential suite: run scenarios, print their traces as JSON.

Run by test_parity.py with the anchor venv's interpreter:
``.venv-anchor/bin/python run_lightning.py OUT.json [NAME ...]``.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import tempfile
import warnings
from typing import Any

import common
import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import EarlyStopping, LearningRateMonitor, ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger
from scenarios import SCENARIOS
from torch.utils.data import DataLoader, TensorDataset


class Module(pl.LightningModule):
    def __init__(self, recorder: common.Recorder) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(common.DIM, 1)
        self.recorder = recorder

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        loss = torch.nn.functional.mse_loss(self.layer(x), y)
        self.log("train_loss", loss)
        self.recorder.log_extras(self, "train", batch_idx)
        return loss

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        x, y = batch
        self.log("val_loss", torch.nn.functional.mse_loss(self.layer(x), y))
        self.recorder.log_extras(self, "val", batch_idx)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.01)


common.count_module_hooks(Module, pl.LightningModule)
Recording = common.recording_callback(pl.Callback)


def loader(batches: int, seed: int) -> DataLoader:
    x, y = common.arrays(batches, seed)
    return DataLoader(
        TensorDataset(torch.from_numpy(x), torch.from_numpy(y)), batch_size=common.BATCH
    )


def run(scenario: dict[str, Any], root: str) -> dict[str, Any]:
    recorder = common.Recorder.for_scenario(scenario)
    torch.manual_seed(0)
    traces = []
    for index, run_args in enumerate(scenario["runs"]):
        args = dict(run_args)
        ckpt_path = args.pop("ckpt_path", None)
        callbacks: list[Any] = [Recording(recorder)]
        checkpoint = None
        if scenario.get("checkpoint") is not None:
            checkpoint = ModelCheckpoint(
                dirpath=os.path.join(root, "ckpt"), **scenario["checkpoint"]
            )
            callbacks.append(checkpoint)
        if scenario.get("early_stopping") is not None:
            callbacks.append(EarlyStopping(**scenario["early_stopping"]))
        if scenario.get("lr_monitor") is not None:
            callbacks.append(LearningRateMonitor(**scenario["lr_monitor"]))
        logger = CSVLogger(root, name="logs", version=index)
        args.setdefault("log_every_n_steps", 1)
        trainer = pl.Trainer(
            accelerator="cpu",
            devices=1,
            logger=logger,
            callbacks=callbacks,
            enable_checkpointing=checkpoint is not None,
            enable_progress_bar=False,
            enable_model_summary=False,
            default_root_dir=root,
            **args,
        )
        module = Module(recorder)
        val = None if scenario.get("no_val") else loader(scenario.get("val", 3), 1)
        trainer.fit(module, loader(scenario.get("train", 6), 0), val, ckpt_path=ckpt_path)
        traces.append(
            {
                "global_step": trainer.global_step,
                "current_epoch": trainer.current_epoch,
                "files": common.kept(checkpoint.dirpath if checkpoint else None, ".ckpt"),
                "best": os.path.basename(checkpoint.best_model_path).removesuffix(".ckpt")
                if checkpoint
                else None,
                "best_score": common.clean_score(checkpoint.best_model_score)
                if checkpoint
                else None,
                "csv": common.read_csv_rows(os.path.join(logger.log_dir, "metrics.csv")),
                "metrics": common.extra_metrics(trainer),
            }
        )
    return {"events": recorder.events, "counts": recorder.counts, "runs": traces}


def main() -> None:
    out, names = sys.argv[1], sys.argv[2:]
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    results = {}
    for scenario in SCENARIOS:
        if names and scenario["name"] not in names:
            continue
        with tempfile.TemporaryDirectory() as root:
            try:
                results[scenario["name"]] = run(scenario, root)
            except Exception as error:  # the trace records what Lightning raised
                results[scenario["name"]] = {
                    "error": type(error).__name__,
                    "message": str(error)[:300],
                }
    with open(out, "w") as f:
        json.dump(results, f)


if __name__ == "__main__":
    main()
