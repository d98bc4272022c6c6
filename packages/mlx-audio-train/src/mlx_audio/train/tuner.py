"""Lightning's ``Tuner``: ``lr_find`` (the learning-rate range test) and ``scale_batch_size``
(the largest batch that fits in memory), run on the model and loaders you pass, with the
Trainer's settings; the model's weights are restored afterwards.

NOTE [tuner runs]: each search is a short ``fit`` of a second Trainer made from yours (its
precision, compile, accumulation, clipping, accelerator and limits; no loggers, checkpoints,
progress bar or sanity check, as Lightning turns them off), so your Trainer's progress and
callbacks are untouched. The weights (and the optimizer, which ``fit`` makes anew from
``configure_optimizers``) are as before the search when it returns, whatever happened.

NOTE [batch size in MLX]: Lightning changes ``model.batch_size`` (or ``hparams``/the datamodule)
and reloads the loaders from the hooks. Here the batch size is the DataLoader's: each trial
rebuilds the ``mlx_audio.data.DataLoader`` you passed with the new ``batch_size`` (same dataset,
sampler, collate and workers); the attribute ``batch_arg_name`` of the model (or its ``hparams``)
is set too when it has one, as Lightning does. Rebuild your loader with the size returned.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import mlx.core as mx
import numpy as np

from ._batch_search import is_oom_error, search_batch_size
from ._reload import rebuilt
from .callbacks.base import Callback

if TYPE_CHECKING:
    from .module import TrainModule
    from .trainer import Trainer

log = logging.getLogger("mlx_audio.train")

_PASSED_ON = (  # the Trainer arguments a search keeps (NOTE [tuner runs])
    "accumulate_grad_batches",
    "gradient_clip_val",
    "gradient_clip_algorithm",
    "precision",
    "compile",
    "accelerator",
    "use_distributed_sampler",
    "collective_timeout",
    "check_val_every_n_epoch",
    "limit_train_batches",
    "limit_val_batches",
    "sync_batchnorm",
)


def _search_trainer(trainer: Trainer, callbacks: list[Callback], **overrides: Any) -> Trainer:
    from .trainer import Trainer

    kwargs = {name: getattr(trainer.args, name) for name in _PASSED_ON}
    max_epochs = trainer.args.max_epochs
    kwargs.update(
        max_epochs=-1 if max_epochs is None else max_epochs,
        default_root_dir=trainer.default_root_dir,
        on_nonfinite_loss="skip",  # a diverging loss is a result, not an error
        num_sanity_val_steps=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=callbacks,
    )
    kwargs.update(overrides)
    search = Trainer(**kwargs)
    search.summarize = False
    return search


class _Restore:
    """The model's weights and mode, and its Trainer, put back on exit (NOTE [tuner runs])."""

    def __init__(self, trainer: Trainer, model: TrainModule) -> None:
        self.trainer, self.model = trainer, model

    def __enter__(self) -> _Restore:
        self.weights = self.model.parameters()  # arrays are immutable: references suffice
        self.training = self.model.training
        return self

    def __exit__(self, *exc: Any) -> None:
        self.model.update(self.weights)
        self.model.train(self.training)
        self.model.trainer = self.trainer
        self.trainer.module = self.model


def _lightning_hasattr(model: Any, name: str) -> bool:
    hparams = getattr(model, "hparams", None)
    return hasattr(model, name) or (isinstance(hparams, dict) and name in hparams)


def _lightning_setattr(model: Any, name: str, value: Any) -> None:
    hparams = getattr(model, "hparams", None)
    if isinstance(hparams, dict) and name in hparams:
        hparams[name] = value
    if hasattr(model, name) or not isinstance(hparams, dict) or name not in hparams:
        setattr(model, name, value)


class LRFinder:
    """What ``lr_find`` found (Lightning's ``_LRFinder``): ``results`` (``{"lr": [...],
    "loss": [...]}``, the smoothed loss of each step), ``suggestion()`` and ``plot()``."""

    def __init__(self, mode: str, lr_min: float, lr_max: float, num_training: int) -> None:
        if mode not in ("linear", "exponential"):
            raise ValueError(f"lr_find: mode must be 'linear' or 'exponential', got {mode!r}")
        self.mode, self.lr_min, self.lr_max = mode, lr_min, lr_max
        self.num_training = num_training
        self.results: dict[str, Any] = {}
        self._optimal_idx: int | None = None

    def lr_at(self, step: int) -> float:
        """The rate of update ``step`` (Lightning's ``_ExponentialLR``/``_LinearLR``: the first
        update at ``min_lr``, update k > 0 at fraction (k + 1) / num_training of the range)."""
        if step == 0:
            return self.lr_min
        r = (step + 1) / self.num_training
        if self.mode == "linear":
            return self.lr_min + r * (self.lr_max - self.lr_min)
        return float(self.lr_min * (self.lr_max / self.lr_min) ** r)

    def schedule(self, step: mx.array) -> mx.array:
        """:meth:`lr_at` as an MLX schedule (inside the compiled step)."""
        r = (step.astype(mx.float32) + 1) / self.num_training
        if self.mode == "linear":
            rate = self.lr_min + r * (self.lr_max - self.lr_min)
        else:
            rate = self.lr_min * mx.power(self.lr_max / self.lr_min, r)
        return mx.where(step > 0, rate, mx.array(self.lr_min, dtype=mx.float32))

    def suggestion(self, skip_begin: int = 10, skip_end: int = 1) -> float | None:
        """The rate at the steepest descent of the loss (Lightning's rule: the most negative
        gradient of the loss over the rates, skipping ``skip_begin`` first and ``skip_end``
        last points and the non-finite ones); None with fewer than 2 points left."""
        losses = np.asarray(self.results["loss"][skip_begin:-skip_end], dtype=np.float32)
        lrs = np.asarray(self.results["lr"][skip_begin:-skip_end], dtype=np.float32)
        finite = np.isfinite(losses)
        losses, lrs = losses[finite], lrs[finite]
        if len(losses) < 2:
            log.error(
                "Failed to compute suggestion for learning rate because there are not enough "
                "points. Increase the loop iteration limits or the size of your dataset/dataloader."
            )
            self._optimal_idx = None
            return None
        gradients = np.gradient(losses, lrs)
        kept = np.arange(len(self.results["loss"]))[skip_begin:-skip_end][finite]
        self._optimal_idx = int(kept[int(np.argmin(gradients))])
        return float(self.results["lr"][self._optimal_idx])

    def plot(self, suggest: bool = False, show: bool = False, ax: Any = None) -> Any:
        """The loss against the rate (matplotlib, imported here; log scale in exponential
        mode); ``suggest`` marks the suggestion with a red point. Returns the figure."""
        try:
            import matplotlib.pyplot as plt
        except ImportError:
            raise ImportError(
                "To use the `plot` method, you must have Matplotlib installed. Install it by "
                "running `pip install -U matplotlib`."
            ) from None
        lrs, losses = self.results["lr"], self.results["loss"]
        if ax is None:
            fig, ax = plt.subplots()
        else:
            fig = ax.figure
        ax.plot(lrs, losses)
        if self.mode == "exponential":
            ax.set_xscale("log")
        ax.set_xlabel("Learning rate")
        ax.set_ylabel("Loss")
        if suggest:
            self.suggestion()
            if self._optimal_idx:
                i = self._optimal_idx
                ax.plot(lrs[i], losses[i], markersize=10, marker="o", color="red")
        if show:
            plt.show()
        return fig


class _LRCallback(Callback):
    """Lightning's ``_LRCallback``: the rate before each update, the smoothed loss after it
    (``beta`` 0.98, bias-corrected by the step count), and the stop when the loss diverges
    (``early_stop_threshold`` times the best)."""

    def __init__(self, finder: LRFinder, early_stop_threshold: float | None, beta: float = 0.98):
        self.finder, self.early_stop_threshold, self.beta = finder, early_stop_threshold, beta
        self.losses: list[float] = []
        self.lrs: list[float] = []
        self.avg_loss = 0.0
        self.best_loss = 0.0

    def on_train_batch_start(
        self, trainer: Trainer, module: TrainModule, batch: Any, batch_idx: int
    ) -> None:
        if (batch_idx + 1) % trainer.accumulate_grad_batches == 0:
            self.lrs.append(self.finder.lr_at(trainer.global_step))

    def on_train_batch_end(
        self, trainer: Trainer, module: TrainModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if (batch_idx + 1) % trainer.accumulate_grad_batches != 0:
            return
        current = float(outputs["loss"].item())
        step = trainer.global_step
        self.avg_loss = self.beta * self.avg_loss + (1 - self.beta) * current
        smoothed = self.avg_loss / (1 - self.beta ** (step + 1))
        threshold = self.early_stop_threshold
        if threshold is not None and step > 1 and smoothed > threshold * self.best_loss:
            trainer.should_stop = True
        if smoothed < self.best_loss or step == 1:
            self.best_loss = smoothed
        self.losses.append(smoothed)


class Tuner:
    """Lightning's ``Tuner(trainer)``: :meth:`lr_find` and :meth:`scale_batch_size`."""

    def __init__(self, trainer: Trainer) -> None:
        self._trainer = trainer

    def lr_find(
        self,
        model: TrainModule,
        train_dataloaders: Iterable[Any],
        val_dataloaders: Iterable[Any] | None = None,
        min_lr: float = 1e-8,
        max_lr: float = 1,
        num_training: int = 100,
        mode: str = "exponential",
        early_stop_threshold: float | None = 4.0,
        update_attr: bool = True,
        attr_name: str = "",
    ) -> LRFinder | None:
        """The learning-rate range test (Lightning's algorithm): ``num_training`` updates with
        the rate rising from ``min_lr`` to ``max_lr`` (``"exponential"`` or ``"linear"``),
        stopping when the smoothed loss exceeds ``early_stop_threshold`` times its best. The
        optimizer is the model's ``configure_optimizers``' with its learning rate replaced.
        ``update_attr``: set the model's ``lr``/``learning_rate`` (or ``attr_name``) to the
        suggestion. Returns the :class:`LRFinder` (None under ``fast_dev_run``)."""
        import warnings

        from .module import OptimizerConfig

        trainer = self._trainer
        if trainer.fast_dev_run:
            warnings.warn(
                "Skipping learning rate finder since `fast_dev_run` is enabled.", stacklevel=2
            )
            return None
        if update_attr:
            attr_name = _lr_attr_name(model, attr_name)
        finder = LRFinder(mode, min_lr, max_lr, num_training)
        callback = _LRCallback(finder, early_stop_threshold)
        search = _search_trainer(
            trainer, [callback], max_steps=num_training, limit_val_batches=num_training
        )

        def configure_optimizers() -> OptimizerConfig:
            config = type(model).configure_optimizers(model)  # the model's own
            if config is None:
                raise ValueError("lr_find needs the optimizer of configure_optimizers(): got None")
            if not isinstance(config, OptimizerConfig):
                config = OptimizerConfig(config)
            config.optimizer._maybe_schedule("learning_rate", finder.schedule)
            return config

        with _Restore(trainer, model):
            object.__setattr__(model, "configure_optimizers", configure_optimizers)
            try:
                search.fit(model, train_dataloaders, val_dataloaders)
            finally:
                object.__delattr__(model, "configure_optimizers")
        if search.global_step != num_training:
            log.info(
                f"LR finder stopped early after {search.global_step} steps due to diverging loss."
            )
        finder.results = {"lr": callback.lrs, "loss": callback.losses}
        if update_attr:
            lr = finder.suggestion()
            if lr is not None:
                _lightning_setattr(model, attr_name, lr)
                log.info(f"Learning rate set to {lr}")
        return finder

    def scale_batch_size(
        self,
        model: TrainModule,
        train_dataloaders: Any,
        val_dataloaders: Any = None,
        mode: str = "power",
        steps_per_trial: int = 3,
        init_val: int = 2,
        max_trials: int = 25,
        batch_arg_name: str = "batch_size",
        margin: float = 0.05,
        max_val: int = 8192,
    ) -> int | None:
        """The largest batch size that trains without running out of memory (Lightning's
        search: ``"power"`` doubles from ``init_val`` until MLX's out-of-memory error;
        ``"binsearch"`` then bisects, and takes ``margin`` off the result), each trial
        ``steps_per_trial`` steps of a ``fit`` on the loaders rebuilt with that batch size
        (NOTE [batch size in MLX]). Returns the size (None under ``fast_dev_run``)."""
        if mode not in ("power", "binsearch"):
            raise ValueError(f"scale_batch_size: mode must be 'power' or 'binsearch', got {mode!r}")
        if not 0.0 <= margin < 1.0:
            raise ValueError(f"`margin` should be between 0 and 1. Found {margin=}")
        trainer = self._trainer
        if trainer.fast_dev_run:
            import warnings

            warnings.warn(
                "Skipping batch size scaler since `fast_dev_run` is enabled.", stacklevel=2
            )
            return None
        rebuilt(train_dataloaders)  # a TypeError now for what cannot be rebuilt

        def trial(size: int) -> None:
            search = _search_trainer(
                trainer,
                [],
                max_steps=steps_per_trial,
                limit_train_batches=1.0,
                limit_val_batches=steps_per_trial,
            )
            val = None if val_dataloaders is None else rebuilt(val_dataloaders, batch_size=size)
            search.fit(model, rebuilt(train_dataloaders, batch_size=size), val)

        def set_size(size: int) -> None:
            if _lightning_hasattr(model, batch_arg_name):
                _lightning_setattr(model, batch_arg_name, size)

        with _Restore(trainer, model):
            size = search_batch_size(
                trial,
                set_size,
                len(train_dataloaders.dataset),
                mode,
                init_val,
                max_trials,
                margin,
                max_val,
            )
        set_size(size)
        return size


def _lr_attr_name(model: Any, attr_name: str) -> str:
    """Lightning's ``_determine_lr_attr_name`` (its messages)."""
    if attr_name:
        if not _lightning_hasattr(model, attr_name):
            raise AttributeError(
                f"The attribute name for the learning rate was set to {attr_name}, but could not "
                "find this as a field in `model` or `model.hparams`."
            )
        return attr_name
    for name in ("lr", "learning_rate"):
        if _lightning_hasattr(model, name):
            return name
    raise AttributeError(
        "When using the learning rate finder, either `model` or `model.hparams` should have one "
        "of these fields: ('lr', 'learning_rate'). If your model has a different name for the "
        "learning rate, set it with `.lr_find(attr_name=...)`."
    )


__all__ = ["LRFinder", "Tuner", "is_oom_error"]
