"""Our side of the differential suite: the same scenarios through mlx_audio.train."""

from __future__ import annotations

import os
from typing import Any

import common
import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim

from mlx_audio.data import ArrayDataset, DataLoader
from mlx_audio.loggers import CSVLogger
from mlx_audio.train import Trainer, TrainModule
from mlx_audio.train.callbacks import Callback, EarlyStopping, LearningRateMonitor, ModelCheckpoint


class Module(TrainModule):
    def __init__(self, recorder: common.Recorder) -> None:
        super().__init__()
        self.layer = nn.Linear(common.DIM, 1)
        object.__setattr__(self, "recorder", recorder)

    def training_step(self, batch: Any, batch_idx: Any) -> Any:
        x, y = batch
        loss = mx.mean((self.layer(x) - y) ** 2)
        self.log("train_loss", loss)
        self.recorder.log_extras(self, "train", batch_idx)
        return loss

    def validation_step(self, batch: Any, batch_idx: Any) -> None:
        x, y = batch
        self.log("val_loss", mx.mean((self.layer(x) - y) ** 2))
        self.recorder.log_extras(self, "val", batch_idx)

    def configure_optimizers(self) -> optim.Optimizer:
        return optim.SGD(learning_rate=0.01)


common.count_module_hooks(Module, TrainModule)
Recording = common.recording_callback(Callback)


def loader(batches: int, seed: int) -> DataLoader:
    x, y = common.arrays(batches, seed)
    return DataLoader(ArrayDataset(x, y), batch_size=common.BATCH)


def run(scenario: dict[str, Any], root: str) -> dict[str, Any]:
    recorder = common.Recorder.for_scenario(scenario)
    traces = []
    for index, run_args in enumerate(scenario["runs"]):
        args = dict(run_args)
        ckpt_path = args.pop("ckpt_path", None)
        callbacks: list[Any] = [Recording(recorder)]
        checkpoint = None
        if scenario.get("checkpoint") is not None:
            kwargs = {"save_last": False, **scenario["checkpoint"]}  # Lightning's default
            checkpoint = ModelCheckpoint(dirpath=os.path.join(root, "ckpt"), **kwargs)
            callbacks.append(checkpoint)
        if scenario.get("early_stopping") is not None:
            callbacks.append(EarlyStopping(**scenario["early_stopping"]))
        if scenario.get("lr_monitor") is not None:
            callbacks.append(LearningRateMonitor(**scenario["lr_monitor"]))
        logger = CSVLogger(root, name="logs", version=index)
        args.setdefault("log_every_n_steps", 1)
        trainer = Trainer(
            logger=logger,
            callbacks=callbacks,
            enable_checkpointing=checkpoint is not None,
            enable_progress_bar=False,
            default_root_dir=root,
            seed=0,
            **args,
        )
        val = None if scenario.get("no_val") else loader(scenario.get("val", 3), 1)
        trainer.fit(Module(recorder), loader(scenario.get("train", 6), 0), val, ckpt_path=ckpt_path)
        traces.append(
            {
                "global_step": trainer.global_step,
                "current_epoch": trainer.current_epoch,
                "files": common.kept(checkpoint.dirpath if checkpoint else None, ""),
                "best": os.path.basename(checkpoint.best_model_path) if checkpoint else None,
                "best_score": common.clean_score(checkpoint.best_model_score)
                if checkpoint
                else None,
                "csv": common.read_csv_rows(os.path.join(logger.log_dir, "metrics.csv")),
                "metrics": common.extra_metrics(trainer),
            }
        )
    return {"events": recorder.events, "counts": recorder.counts, "runs": traces}
