"""TrainModule: an ``nn.Module`` that knows how to train itself (Lightning's LightningModule)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim
from mlx.utils import tree_flatten

if TYPE_CHECKING:
    from .trainer import Trainer


class ParameterTree(dict):
    """The nested parameter dict MLX returns, whose ``values()`` yields the leaf arrays.

    ``sum(p.size for p in model.parameters().values())`` (the tutorial) then counts every
    parameter, while MLX — which walks the tree through ``items()`` and the C API — sees the
    usual nested dict: ``nn.value_and_grad``, optimizers, ``tree_flatten``/``tree_map``,
    ``save_weights``/``load_weights`` and ``mx.compile`` behave exactly as with a plain dict.
    """

    def values(self) -> Iterator[mx.array]:  # type: ignore[override]
        return iter([leaf for _, leaf in tree_flatten(dict(self))])


@dataclass
class OptimizerConfig:
    """What ``configure_optimizers`` returns: the optimizer and a label for its schedule.

    ``lr_schedule_name`` only names the schedule in logs and the progress bar; the schedule
    itself is the optimizer's ``learning_rate`` callable.
    """

    optimizer: optim.Optimizer
    lr_schedule_name: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.optimizer, optim.Optimizer):
            raise TypeError(
                f"OptimizerConfig.optimizer must be an mlx.optimizers.Optimizer, got {type(self.optimizer).__name__}"
            )


class TrainModule(nn.Module):
    """Subclass and implement ``compute_loss(batch) -> (loss, metrics)`` (the tutorial's way)
    or Lightning's ``training_step(batch, batch_idx) -> loss | {"loss": ..., ...}``, plus
    ``configure_optimizers() -> OptimizerConfig | Optimizer``.

    Inside a compiled step (the default), ``batch_idx`` is a 0-d ``mx.array``, values passed
    to :meth:`log` are returned as outputs of the trace, and attributes read there (such as
    ``self.global_step``) are frozen at trace time; ``Trainer(compile=False)`` runs eagerly.
    """

    def __init__(self) -> None:
        super().__init__()
        self._trainer_ref: Trainer | None = None
        self._logged: dict[str, Any] = {}

    # -- what users implement ----------------------------------------------------------------
    def compute_loss(self, batch: Any) -> tuple[mx.array, dict[str, mx.array]]:
        raise NotImplementedError(
            f"{type(self).__name__} must implement compute_loss(batch) or training_step(batch, batch_idx)"
        )

    def training_step(self, batch: Any, batch_idx: Any) -> Any:
        return self.compute_loss(batch)

    def validation_step(self, batch: Any, batch_idx: Any) -> Any:
        return self.compute_loss(batch)

    def test_step(self, batch: Any, batch_idx: Any) -> Any:
        return self.validation_step(batch, batch_idx)

    def predict_step(self, batch: Any, batch_idx: Any) -> Any:
        inputs = batch[0] if isinstance(batch, (tuple, list)) else batch
        return self(inputs)

    def configure_optimizers(self) -> OptimizerConfig | optim.Optimizer:
        raise NotImplementedError(f"{type(self).__name__} must implement configure_optimizers()")

    # -- hooks (no-ops) ----------------------------------------------------------------------
    def on_fit_start(self) -> None: ...
    def on_fit_end(self) -> None: ...
    def on_train_start(self) -> None: ...
    def on_train_end(self) -> None: ...
    def on_train_epoch_start(self) -> None: ...
    def on_train_epoch_end(self) -> None: ...
    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None: ...
    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None: ...
    def on_validation_start(self) -> None: ...
    def on_validation_end(self) -> None: ...
    def on_save_checkpoint(self, checkpoint: dict) -> None: ...
    def on_load_checkpoint(self, checkpoint: dict) -> None: ...

    # -- trainer access ----------------------------------------------------------------------
    @property
    def trainer(self) -> Trainer:
        if self._trainer_ref is None:
            raise RuntimeError(
                f"{type(self).__name__} is not attached to a Trainer (call trainer.fit(model, ...))"
            )
        return self._trainer_ref

    @trainer.setter
    def trainer(self, trainer: Trainer | None) -> None:
        self._trainer_ref = trainer

    @property
    def current_epoch(self) -> int:
        return self._trainer_ref.current_epoch if self._trainer_ref is not None else 0

    @property
    def global_step(self) -> int:
        return self._trainer_ref.global_step if self._trainer_ref is not None else 0

    def log(self, name: str, value: Any, prog_bar: bool = False, **_: Any) -> None:
        """Record a scalar for the loggers (as ``train_<name>`` / ``val_<name>`` by stage)."""
        if not isinstance(name, str) or not name:
            raise ValueError(f"log() needs a non-empty metric name, got {name!r}")
        self._logged[name] = value

    def log_dict(self, metrics: dict[str, Any], **kwargs: Any) -> None:
        for name, value in metrics.items():
            self.log(name, value, **kwargs)

    def _take_logged(self) -> dict[str, Any]:
        logged, self._logged = self._logged, {}
        return logged

    # -- parameters --------------------------------------------------------------------------
    def parameters(self) -> ParameterTree:  # type: ignore[override]
        return ParameterTree(super().parameters())

    def trainable_parameters(self) -> ParameterTree:  # type: ignore[override]
        return ParameterTree(super().trainable_parameters())

    def load_checkpoint(self, path: str, strict: bool = True) -> TrainModule:
        """Load the weights of a checkpoint directory (or its ``last`` link) into this model."""
        from .checkpoint import load_model_weights

        load_model_weights(self, os.fspath(path), strict=strict)
        return self

    def __setattr__(self, key: str, value: Any) -> None:
        if key in ("_trainer_ref", "_logged"):  # plain attributes, never part of the module tree
            object.__setattr__(self, key, value)
        else:
            super().__setattr__(key, value)

    def __getattr__(self, key: str) -> Any:
        if key in ("_trainer_ref", "_logged"):
            raise AttributeError(key)
        return super().__getattr__(key)
