import math
import subprocess
import sys
from dataclasses import dataclass

import mlx.core as mx
import numpy as np
import pytest

from mlx_audio.loggers import CSVLogger
from mlx_audio.loggers.base import flatten_params, to_scalar


def test_to_scalar_accepts_mlx_numpy_and_python_and_keeps_nonfinite():
    assert to_scalar(mx.array(2.5)) == 2.5
    assert to_scalar(mx.array([3])) == 3
    assert to_scalar(np.float32(1.5)) == 1.5
    assert to_scalar(np.int64(7)) == 7 and isinstance(to_scalar(np.int64(7)), int)
    assert to_scalar(True) == 1
    assert math.isnan(to_scalar(float("nan"))) and to_scalar(mx.array(float("inf"))) == float("inf")
    with pytest.raises(ValueError, match="'loss' must be a scalar.*3 elements"):
        to_scalar(mx.array([1.0, 2.0, 3.0]), "loss")
    with pytest.raises(ValueError, match="must be a scalar"):
        to_scalar("high", "x")


@dataclass
class Config:
    lr: float = 1e-3
    layers: tuple = (1, 2)


def test_flatten_params_nests_with_slash_and_stringifies():
    flat = flatten_params(
        {
            "optim": {"lr": 0.1, "betas": (0.9, 0.99)},
            "seed": 3,
            "fn": len,
            "none": None,
            "scale": np.float32(2),
        }
    )
    assert flat == {
        "optim/lr": 0.1,
        "optim/betas": "(0.9, 0.99)",
        "seed": 3,
        "fn": "<built-in function len>",
        "none": None,
        "scale": 2.0,
    }
    assert flatten_params(Config()) == {"lr": 1e-3, "layers": "(1, 2)"}


def test_only_rank_zero_writes(tmp_path):
    code = f"""
import os
os.environ["MLX_RANK"] = "1"
from mlx_audio.loggers import CSVLogger
logger = CSVLogger({str(tmp_path)!r}, name="run")
logger.log_hyperparams({{"a": 1}})
logger.log_metrics({{"loss": 1.0}}, step=0)
logger.finalize("success")
"""
    subprocess.run([sys.executable, "-c", code], check=True)
    assert not (tmp_path / "run").exists()


def test_bad_status_and_step(tmp_path):
    logger = CSVLogger(tmp_path)
    with pytest.raises(ValueError, match="status must be one of"):
        logger.finalize("done")
    with pytest.raises(ValueError, match="non-negative int"):
        logger.log_metrics({"a": 1.0}, step=-1)


@pytest.mark.parametrize(
    "logger, extra",
    [("TensorBoardLogger", "tensorboard"), ("WandbLogger", "wandb"), ("MLflowLogger", "mlflow")],
)
def test_missing_backend_names_the_extra(logger, extra):
    module = {"tensorboard": "tensorboardX", "wandb": "wandb", "mlflow": "mlflow"}[extra]
    code = f"""
import sys
sys.modules[{module!r}] = None  # as if it were not installed
from mlx_audio.loggers import {logger}
try:
    {logger}()
except ImportError as error:
    print(error)
"""
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert f"mlx-audio-loggers[{extra}]" in out


def test_import_is_lazy():
    code = "import sys, mlx_audio.loggers; print(any(m in sys.modules for m in ('wandb', 'mlflow', 'tensorboardX', 'mlx.core')))"
    assert (
        subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        ).stdout.strip()
        == "False"
    )


def test_lightning_spelling_of_the_mlflow_logger():
    from mlx_audio.loggers import MLFlowLogger, MLflowLogger
    from mlx_audio.train.loggers import MLFlowLogger as FromTrain

    assert MLFlowLogger is MLflowLogger is FromTrain
