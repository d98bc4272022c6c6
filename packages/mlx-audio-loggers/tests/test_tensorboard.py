import math

import mlx.core as mx
import numpy as np
from loggers_testing import tensorboard_scalars

from mlx_audio.loggers import TensorBoardLogger


def test_scalars_read_back_with_tensorboards_reader(tmp_path):
    logger = TensorBoardLogger(tmp_path, name="tb")
    logger.log_hyperparams({"optim": {"lr": 0.01}, "layers": [1, 2]})
    logger.log_metrics({"train_loss": mx.array(0.5), "lr": 1e-3}, step=1)
    logger.log_metrics({"train_loss": np.float32(0.25), "lr": 2e-3}, step=2)
    logger.log_metrics({"val_loss": 0.75, "epoch": 0}, step=2)
    logger.log_metrics({"train_loss": float("inf")}, step=3)
    logger.finalize("success")
    scalars = tensorboard_scalars(logger.log_dir)
    assert set(scalars) == {"train_loss", "lr", "val_loss", "epoch"}  # no hp_metric
    assert scalars["train_loss"][:2] == [(1, 0.5), (2, 0.25)] and math.isinf(
        scalars["train_loss"][2][1]
    )
    assert [s for s, _ in scalars["lr"]] == [1, 2]
    assert scalars["val_loss"] == [(2, 0.75)] and scalars["epoch"] == [(2, 0.0)]


def test_hparams_land_in_the_same_run_without_a_sub_run(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    logger = TensorBoardLogger(tmp_path, name="tb")
    logger.log_hyperparams({"lr": 0.01, "name": "x"})
    logger.log_metrics({"loss": 1.0}, step=0)
    logger.finalize("success")
    run_dirs = {p.parent for p in (tmp_path / "tb").rglob("events.out.tfevents.*")}
    assert run_dirs == {tmp_path / "tb" / "version_0"}
    accumulator = EventAccumulator(logger.log_dir)
    accumulator.Reload()
    assert accumulator.PluginTagToContent("hparams")
