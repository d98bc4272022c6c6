import os

import pytest

# The logger tests' real backends (a live mlflow server, W&B offline) are shared fixtures.
from mlx_audio_loggers_fixtures import (  # noqa: F401
    mlflow_server,
    mlflow_server_process,
    no_wandb_account,
)


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    """Run in a fresh directory (the Trainer writes checkpoints/ and logs/ under the cwd)."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture(autouse=True)
def _quiet_wandb(monkeypatch):
    monkeypatch.setenv("WANDB_SILENT", "true")
    yield
    os.environ.pop("MLX_RANK", None)
