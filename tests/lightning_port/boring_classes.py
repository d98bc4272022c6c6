"""Lightning's ``lightning.pytorch.demos.boring_classes`` in MLX, for the ported tests.

``BoringModel`` keeps Lightning's shapes and outputs: a ``Linear(32, 2)``, the loss
``mean((out - 1)^2)``, ``training_step -> {"loss": ...}``, ``validation_step -> {"x": ...}``,
``test_step -> {"y": ...}``, SGD at 0.1, and loaders of ``RandomDataset(32, 64)`` with batch size
1. Lightning takes the loaders from the module's ``*_dataloader`` methods; here ``fit``,
``validate`` and ``test`` pass them to the Trainer (``model.val_dataloader = None`` or
``model.validation_step = None``: no validation loader, as Lightning then skips validation).

``RecordingLogger`` stands in for Lightning's ``mock.patch("...TensorBoardLogger.log_metrics")``:
it records ``call(metrics=..., step=...)`` for every ``log_metrics`` (no ``hp_metric`` call: ours
logs hyperparameters with ``log_hyperparams`` only).
"""

from __future__ import annotations

from typing import Any
from unittest.mock import call

import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim
import numpy as np

from mlx_audio.data import DataLoader, Dataset
from mlx_audio.loggers import Logger
from mlx_audio.train import DataModule, TrainModule


class RandomDataset(Dataset):
    def __init__(self, size: int, length: int) -> None:
        self.len = length
        self.data = np.random.default_rng(length).standard_normal((length, size)).astype(np.float32)

    def __getitem__(self, index: int) -> np.ndarray:
        return self.data[index]

    def __len__(self) -> int:
        return self.len


class BoringModel(TrainModule):
    def __init__(self) -> None:
        super().__init__()
        self.layer = nn.Linear(32, 2)

    def __call__(self, x: mx.array) -> mx.array:
        return self.layer(x)

    def loss(self, preds: mx.array, labels: mx.array | None = None) -> mx.array:
        if labels is None:
            labels = mx.ones_like(preds)
        return mx.mean((preds - labels) ** 2)

    def step(self, batch: mx.array) -> mx.array:
        return self.loss(self(batch))

    def training_step(self, batch: mx.array, batch_idx: Any) -> Any:
        return {"loss": self.step(batch)}

    def validation_step(self, batch: mx.array, batch_idx: Any) -> Any:
        return {"x": self.step(batch)}

    def test_step(self, batch: mx.array, batch_idx: Any) -> Any:
        return {"y": self.step(batch)}

    def configure_optimizers(self) -> optim.Optimizer:
        return optim.SGD(learning_rate=0.1)

    def train_dataloader(self) -> DataLoader:
        return DataLoader(RandomDataset(32, 64))

    def val_dataloader(self) -> DataLoader:
        return DataLoader(RandomDataset(32, 64))

    def test_dataloader(self) -> DataLoader:
        return DataLoader(RandomDataset(32, 64))

    def predict_dataloader(self) -> DataLoader:
        return DataLoader(RandomDataset(32, 64))


class BoringDataModule(DataModule):
    """Lightning's ``BoringDataModule``: ``RandomDataset(32, 64 * 4)`` split into four parts of
    64 in ``setup`` (train, val, test, predict), batch size 1."""

    def __init__(self) -> None:
        super().__init__()
        self.random_full = RandomDataset(32, 64 * 4)

    def setup(self, stage: str) -> None:
        data = self.random_full.data
        if stage == "fit":
            self.random_train = data[:64]
        if stage in ("fit", "validate"):
            self.random_val = data[64 : 64 * 2]
        if stage == "test":
            self.random_test = data[64 * 2 : 64 * 3]
        if stage == "predict":
            self.random_predict = data[64 * 3 : 64 * 4]

    def train_dataloader(self) -> DataLoader:
        return DataLoader(_Rows(self.random_train))

    def val_dataloader(self) -> DataLoader:
        return DataLoader(_Rows(self.random_val))

    def test_dataloader(self) -> DataLoader:
        return DataLoader(_Rows(self.random_test))

    def predict_dataloader(self) -> DataLoader:
        return DataLoader(_Rows(self.random_predict))


class _Rows(Dataset):
    def __init__(self, data: np.ndarray) -> None:
        self.data = data

    def __getitem__(self, index: int) -> np.ndarray:
        return self.data[index]

    def __len__(self) -> int:
        return len(self.data)


def fit(trainer: Any, model: BoringModel, **kwargs: Any) -> None:
    """Lightning's ``trainer.fit(model)``: the loaders come from the model."""
    no_val = model.val_dataloader is None or model.validation_step is None
    val = None if no_val else model.val_dataloader()
    trainer.fit(model, model.train_dataloader(), val, **kwargs)


def validate(trainer: Any, model: BoringModel) -> list[dict[str, float]]:
    return trainer.validate(model, model.val_dataloader())


def test(trainer: Any, model: BoringModel) -> list[dict[str, float]]:
    return trainer.test(model, model.test_dataloader())


test.__test__ = False  # type: ignore[attr-defined]  (not a pytest test)


class RecordingLogger(Logger):
    """Records every ``log_metrics`` call as ``call(metrics=..., step=...)``."""

    def __init__(self) -> None:
        self.mock_calls: list[Any] = []

    @property
    def name(self) -> str:
        return "recording"

    @property
    def version(self) -> int:
        return 0

    def log_hyperparams(self, params: Any) -> None:
        pass

    def log_metrics(self, metrics: Any, step: int) -> None:
        self.mock_calls.append(call(metrics=dict(metrics), step=step))

    def reset_mock(self) -> None:
        self.mock_calls = []
