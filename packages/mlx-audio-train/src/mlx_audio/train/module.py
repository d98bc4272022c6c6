"""TrainModule: an ``nn.Module`` that knows how to train itself (Lightning's LightningModule)."""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim

from ._hparams import HyperparametersMixin
from ._log_rules import LogOptions, check_value
from ._metrics import REPEAT, metric_step_value
from ._publish import log_from_hook
from ._tree import flatten
from .metrics.base import Metric

if TYPE_CHECKING:
    from .trainer import Trainer


_M = TypeVar("_M", bound="TrainModule")
_PLAIN = (
    "_trainer_ref",
    "_logged",
    "_log_options",
    "_step_fx",
    "_default_step",
    "_hparams",  # NOTE [JSON hyperparameters] in _hparams.py: never part of the module tree
    "_hparams_initial",
    "_hparams_name",
    "_log_hyperparams",
)


class ParameterTree(dict[str, Any]):
    """The nested parameter dict MLX returns, whose ``values()`` yields the leaf arrays.

    ``sum(p.size for p in model.parameters().values())`` (the tutorial) then counts every
    parameter, while MLX — which walks the tree through ``items()`` and the C API — sees the
    usual nested dict: ``nn.value_and_grad``, optimizers, ``tree_flatten``/``tree_map``,
    ``save_weights``/``load_weights`` and ``mx.compile`` behave exactly as with a plain dict.
    """

    def values(self) -> Iterator[mx.array]:  # type: ignore[override]
        return iter([leaf for _, leaf in flatten(dict(self))])


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


class NoOptimizer(optim.Optimizer):
    """What a fit runs with when ``configure_optimizers`` returns None (Lightning's
    ``_MockOptimizer``): the steps run and count, the weights never change."""

    def init_single(self, parameter: mx.array, state: dict[str, Any]) -> None:
        pass

    def apply_single(
        self, gradient: mx.array, parameter: mx.array, state: dict[str, Any]
    ) -> mx.array:
        return parameter


class TrainModule(nn.Module, HyperparametersMixin):
    """Subclass and implement ``compute_loss(batch) -> (loss, metrics)`` (the tutorial's way)
    or Lightning's ``training_step(batch, batch_idx) -> loss | {"loss": ..., ...}``, plus
    ``configure_optimizers() -> OptimizerConfig | Optimizer``.

    Inside a compiled step (the default), ``batch_idx`` is a 0-d ``mx.array``, values passed
    to :meth:`log` are returned as outputs of the trace, and attributes read there (such as
    ``self.global_step``) are frozen at trace time; ``Trainer(compile=False)`` runs eagerly.

    NOTE [two logging idioms]: when a step is TrainModule's own ``training_step`` /
    ``validation_step`` (``test_step`` runs ``validation_step``), i.e. the tutorial's
    ``compute_loss`` -- also through ``super()`` from an override -- the loss and metrics it
    returns are logged automatically as ``train_*`` / ``val_*`` / ``test_*``. A step written in
    Lightning's way logs only what it passes to :meth:`log`, as in Lightning; the progress bar
    still shows the training loss as ``loss``. The default steps set ``_default_step``, which
    ``_forward.forward`` reads once the step has run (at trace time when compiled).
    """

    CHECKPOINT_HYPER_PARAMS_KEY = "hyper_parameters"  # in a checkpoint's trainer_state.json

    def __init__(self) -> None:
        super().__init__()
        self._trainer_ref: Trainer | None = None  # the Trainer running this module
        self._logged: dict[str, Any] = {}
        self._log_options: dict[str, dict[str, LogOptions]] = {}  # hook -> name -> options
        self._step_fx: str | None = None
        self._default_step = False  # NOTE [two logging idioms]

    # -- what users implement ----------------------------------------------------------------
    def compute_loss(self, batch: Any) -> tuple[mx.array, dict[str, mx.array]]:
        raise NotImplementedError(
            f"{type(self).__name__} must implement compute_loss(batch) or training_step(batch, batch_idx)"
        )

    def training_step(self, batch: Any, batch_idx: Any) -> Any:
        self._default_step = True  # NOTE [two logging idioms]
        return self.compute_loss(batch)

    # (batch, batch_idx[, dataloader_idx]): dataloader_idx comes with several loaders only
    def validation_step(self, *args: Any, **kwargs: Any) -> Any:
        self._default_step = True
        return self.compute_loss(args[0] if args else kwargs["batch"])

    def test_step(self, *args: Any, **kwargs: Any) -> Any:
        return self.validation_step(*args, **kwargs)

    def predict_step(self, *args: Any, **kwargs: Any) -> Any:
        batch = args[0] if args else kwargs["batch"]
        inputs = batch[0] if isinstance(batch, (tuple, list)) else batch
        return self(inputs)

    def configure_optimizers(self) -> OptimizerConfig | optim.Optimizer | None:
        raise NotImplementedError(f"{type(self).__name__} must implement configure_optimizers()")

    # -- data hooks (Lightning's DataHooks): used when fit/validate/test/predict get no loader
    # and no DataModule; the defaults here mean "not defined" (_data_source.is_overridden) --
    def prepare_data(self) -> None: ...
    def train_dataloader(self) -> Any:
        raise NotImplementedError(
            "`train_dataloader` must be implemented to be used with the Trainer"
        )

    def val_dataloader(self) -> Any:
        raise NotImplementedError(
            "`val_dataloader` must be implemented to be used with the Trainer"
        )

    def test_dataloader(self) -> Any:
        raise NotImplementedError(
            "`test_dataloader` must be implemented to be used with the Trainer"
        )

    def predict_dataloader(self) -> Any:
        raise NotImplementedError(
            "`predict_dataloader` must be implemented to be used with the Trainer"
        )

    # -- hooks (no-ops; called by the Trainer in Lightning's order, see trainer.py) -------------
    def setup(self, stage: str) -> None: ...
    def teardown(self, stage: str) -> None: ...
    def on_fit_start(self) -> None: ...
    def on_fit_end(self) -> None: ...
    def on_train_start(self) -> None: ...
    def on_train_end(self) -> None: ...
    def on_train_epoch_start(self) -> None: ...
    def on_train_epoch_end(self) -> None: ...
    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None: ...
    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None: ...
    def on_before_optimizer_step(self, optimizer: optim.Optimizer) -> None: ...
    def on_validation_start(self) -> None: ...
    def on_validation_end(self) -> None: ...
    def on_validation_epoch_start(self) -> None: ...
    def on_validation_epoch_end(self) -> None: ...
    def on_validation_batch_start(
        self, batch: Any, batch_idx: int, dataloader_idx: int = 0
    ) -> None: ...
    def on_validation_batch_end(
        self, outputs: Any, batch: Any, batch_idx: int, dataloader_idx: int = 0
    ) -> None: ...
    def on_test_start(self) -> None: ...
    def on_test_end(self) -> None: ...
    def on_test_epoch_start(self) -> None: ...
    def on_test_epoch_end(self) -> None: ...
    def on_test_batch_start(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None: ...
    def on_test_batch_end(
        self, outputs: Any, batch: Any, batch_idx: int, dataloader_idx: int = 0
    ) -> None: ...
    def on_predict_start(self) -> None: ...
    def on_predict_epoch_start(self) -> None: ...
    def on_predict_epoch_end(self) -> None: ...
    def on_predict_batch_start(
        self, batch: Any, batch_idx: int, dataloader_idx: int = 0
    ) -> None: ...
    def on_predict_batch_end(
        self, outputs: Any, batch: Any, batch_idx: int, dataloader_idx: int = 0
    ) -> None: ...
    def on_predict_end(self) -> None: ...
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None: ...

    # Lightning's ModelHooks for the modes of evaluation (the Trainer calls an
    # ``on_*_model_train`` only when you override it; otherwise it puts back every submodule's
    # own mode, as it found it before ``on_*_model_eval``)
    def on_validation_model_eval(self) -> None:
        self.eval()

    def on_validation_model_train(self) -> None:
        self.train()

    def on_test_model_eval(self) -> None:
        self.eval()

    def on_test_model_train(self) -> None:
        self.train()

    def on_predict_model_eval(self) -> None:
        self.eval()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None: ...

    # -- trainer access ----------------------------------------------------------------------
    @property
    def trainer(self) -> Trainer:
        if self._trainer_ref is None:
            raise RuntimeError(
                f"{type(self).__name__} is not attached to a Trainer (call trainer.fit(model, ...))"
            )
        return self._trainer_ref

    @trainer.setter
    def trainer(self, trainer: Trainer) -> None:
        self._trainer_ref = trainer

    @property
    def current_epoch(self) -> int:
        return self._trainer_ref.current_epoch if self._trainer_ref is not None else 0

    @property
    def global_step(self) -> int:
        return self._trainer_ref.global_step if self._trainer_ref is not None else 0

    def log(
        self,
        name: str,
        value: Any,
        prog_bar: bool = False,
        logger: bool | None = None,
        on_step: bool | None = None,
        on_epoch: bool | None = None,
        reduce_fx: str | Callable[..., Any] = "mean",
        sync_dist: bool = False,
        batch_size: int | None = None,
        add_dataloader_idx: bool = True,
    ) -> None:
        """Record a scalar under exactly ``name`` (Lightning's ``self.log``, its checks and
        messages: ``_metrics.LogOptions.make``).

        Defaults follow Lightning per hook: in ``training_step`` and the train-batch hooks
        ``on_step=True, on_epoch=False``; elsewhere (``validation_step``, epoch hooks)
        ``on_step=False, on_epoch=True``. With both, ``name_step`` and ``name_epoch`` are logged.
        Epoch values are means weighted by batch size (or ``reduce_fx``: sum, max, min).
        Hooks that may not log (``setup``, ``configure_optimizers``, ``on_fit_start``,
        ``on_train_end``, ``on_validation_end``, ...) raise a ``ValueError``.
        """
        if not isinstance(name, str) or not name:
            raise ValueError(f"log() needs a non-empty metric name, got {name!r}")
        metric = value if isinstance(value, Metric) else None  # NOTE [logged Metric objects]
        if not isinstance(value, (int, float, mx.array)) and metric is None:
            check_value(name, value)  # Lightning checks the value before anything else
        trainer = self._trainer_ref
        if trainer is None:
            warnings.warn(
                "You are trying to `self.log()` but the `self.trainer` reference is not registered"
                " on the model yet. This is most likely because the model hasn't been passed to the"
                " `Trainer`",
                UserWarning,
                stacklevel=2,
            )
            return
        if trainer.state_fn == "predict":
            raise ValueError(
                "You are trying to `self.log()` but the loop's result collection is not registered"
                " yet. This is most likely because you are trying to log in a `predict` hook, but it"
                " doesn't support logging"
            )
        fx = self._step_fx or trainer.current_hook
        if fx is None:
            raise ValueError(
                "You are trying to `self.log()` but it is not managed by the `Trainer` control flow"
            )
        options = LogOptions.make(
            fx,
            on_step,
            on_epoch,
            prog_bar=prog_bar,
            logger=True if logger is None else bool(logger),
            reduce_fx=reduce_fx,
            sync_dist=sync_dist,
            batch_size=batch_size,
            metric=metric,
            add_dataloader_idx=bool(add_dataloader_idx),
        )
        if add_dataloader_idx and "/dataloader_idx_" in name:
            raise ValueError(
                f"You called `self.log` with the key `{name}` but it should not contain information"
                " about `dataloader_idx` when `add_dataloader_idx=True`"
            )
        if metric is not None:
            value = metric_step_value(name, metric, options.on_step)
        value = check_value(name, value)
        if logger and not trainer.loggers:
            trainer.warn_once(
                f"You called `self.log({name!r}, ..., logger=True)` but have no logger configured."
                " You can enable one by doing `Trainer(logger=ALogger(...))`"
            )
        if self._step_fx is None:
            log_from_hook(trainer, fx, name, value, options)
            return
        known = self._log_options.setdefault(fx, {})  # a (traced) step's output
        key = name
        if name in self._logged:  # NOTE [a name logged twice in a step] (_metrics.py)
            if known.get(name) != options:
                raise ValueError(
                    f"You called `self.log({name}, ...)` twice in `{fx}` with different arguments."
                    " This is not allowed"
                )
            repeats = sum(k.split(REPEAT, 1)[0] == name for k in self._logged)
            key = f"{name}{REPEAT}{repeats}"
        known[name] = options
        self._logged[key] = value

    def log_dict(self, metrics: dict[str, Any], **kwargs: Any) -> None:
        for name, value in metrics.items():
            self.log(name, value, **kwargs)

    def _take_logged(self) -> dict[str, Any]:
        logged = self._logged
        self._logged = {}
        return logged

    # -- parameters --------------------------------------------------------------------------
    def parameters(self) -> ParameterTree:
        return ParameterTree(super().parameters())

    def trainable_parameters(self) -> ParameterTree:
        return ParameterTree(super().trainable_parameters())

    @classmethod
    def load_from_checkpoint(
        cls: type[_M], checkpoint_path: str | os.PathLike[str], strict: bool = True, **kwargs: Any
    ) -> _M:
        """A new module built from a checkpoint's hyperparameters (``save_hyperparameters``),
        updated with ``kwargs``, given ``on_load_checkpoint(state)``, then the checkpoint's
        weights loaded (Lightning's ``load_from_checkpoint``). ``checkpoint_path`` is a checkpoint directory or a ``last``
        link (``trainer.checkpoint_callback.best_model_path`` for the best)."""
        from ._hparams import rebuild_kwargs
        from .checkpoint import read_state

        _, state = read_state(os.fspath(checkpoint_path))
        module = cls(**rebuild_kwargs(cls, state, kwargs))
        module.on_load_checkpoint(state)  # before the weights, as Lightning
        module.load_checkpoint(os.fspath(checkpoint_path), strict=strict)
        return module

    def load_checkpoint(self, path: str, strict: bool = True) -> TrainModule:
        """Load the weights of a checkpoint directory (or its ``last`` link) into this model."""
        from .checkpoint import load_model_weights

        load_model_weights(self, os.fspath(path), strict=strict)
        return self

    def __setattr__(self, key: str, value: Any) -> None:
        if key in _PLAIN:  # plain attributes, never part of the module tree
            object.__setattr__(self, key, value)
        else:
            super().__setattr__(key, value)

    def __getattr__(self, key: str) -> Any:
        if key in _PLAIN:
            raise AttributeError(key)
        return super().__getattr__(key)
