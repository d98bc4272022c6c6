"""Freeze and unfreeze parts of a model while it trains (Lightning 2.6's ``BaseFinetuning`` and
``BackboneFinetuning``).

In MLX "trainable" is "optimized": the step differentiates ``module.trainable_parameters()`` and
the optimizer updates what it gets, so Lightning's ``requires_grad=False`` is MLX's ``freeze()``
and adding a parameter group is unfreezing (the optimizer's state gains the new entries, and the
compiled step retraces once for the larger tree).

NOTE [the backbone's learning rate]: an MLX optimizer has one learning rate. The parameters one
``unfreeze_and_add_param_group`` call adds form a group with its own rate: ``install_rate`` (run
by the Trainer once the optimizer is configured, before its state is restored or the step is
compiled) wraps the optimizer's ``apply_gradients`` so that the update of a group's parameters
is scaled by ``group rate / optimizer rate``. For SGD (with momentum, Nesterov), Adam, AdamW,
RMSprop, Adagrad, AdaDelta and Lion the update is linear in the learning rate, so this is the
update at the group's rate. The group rates live in the optimizer's state (``finetune_lrs``, one
entry per group), read inside the compiled step and saved with it: a resumed run continues with
the same rates. The group's parameter names are the callback's state, so a resumed run unfreezes
them again before the optimizer's state is restored.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim
from mlx.utils import tree_unflatten

from .._tree import flatten
from .base import Callback

if TYPE_CHECKING:
    from ..module import TrainModule
    from ..trainer import Trainer

log = logging.getLogger(__name__)

Modules = nn.Module | Iterable[Any]
_STATE_KEY = "finetune_lrs"


def multiplicative(epoch: int) -> float:
    """Lightning's default ``lambda_func``: the backbone's rate doubles every epoch."""
    return 2.0


class BaseFinetuning(Callback):
    """Lightning's ``BaseFinetuning``: override ``freeze_before_training(module)`` (called in
    ``setup``, before ``configure_optimizers``) and ``finetune_function(module, epoch,
    optimizer)`` (called at every train epoch's start). ``freeze``/``make_trainable`` map to
    MLX's ``freeze()``/``unfreeze()`` per module; ``unfreeze_and_add_param_group`` unfreezes and
    gives the new parameters their own learning rate (NOTE [the backbone's learning rate]).
    """

    def __init__(self) -> None:
        self._groups: list[dict[str, Any]] = []  # [{"names": [...], "lr": float}, ...]
        self._optimizer: optim.Optimizer | None = None
        self._module: nn.Module | None = None
        self._trainer: Trainer | None = None

    # -- Lightning's static helpers ----------------------------------------------------------------
    @staticmethod
    def flatten_modules(modules: Modules) -> list[nn.Module]:
        """The leaf modules and the modules with parameters of their own."""
        if isinstance(modules, nn.Module):
            found = [m for _, m in modules.named_modules()][::-1]  # parents first, as torch
        else:
            found = [m for item in modules for m in BaseFinetuning.flatten_modules(item)]
        return [m for m in found if not m.children() or _own_keys(m)]

    @staticmethod
    def filter_params(
        modules: Modules, train_bn: bool = True, requires_grad: bool = True
    ) -> Iterator[mx.array]:
        """The trainable (``requires_grad=True``) or frozen parameters of ``modules``."""
        for module in BaseFinetuning.flatten_modules(modules):
            if isinstance(module, nn.BatchNorm) and not train_bn:
                continue
            trainable = set(_own_trainable(module))
            for key in _own_keys(module):
                if (key in trainable) == requires_grad:
                    yield module[key]

    @staticmethod
    def make_trainable(modules: Modules) -> None:
        """Unfreezes the parameters of ``modules`` (a BatchNorm tracks its statistics again)."""
        for module in BaseFinetuning.flatten_modules(modules):
            if isinstance(module, nn.BatchNorm):
                module.track_running_stats = "running_mean" in module
            module.unfreeze(recurse=False)

    @staticmethod
    def freeze_module(module: nn.Module) -> None:
        """Freezes the parameters of ``module`` (a BatchNorm stops tracking its statistics)."""
        if isinstance(module, nn.BatchNorm):
            module.track_running_stats = False
        module.freeze(recurse=False)

    @staticmethod
    def freeze(modules: Modules, train_bn: bool = True) -> None:
        """Freezes ``modules``; with ``train_bn`` their BatchNorm layers stay trainable."""
        for module in BaseFinetuning.flatten_modules(modules):
            if isinstance(module, nn.BatchNorm) and train_bn:
                BaseFinetuning.make_trainable(module)
            else:
                BaseFinetuning.freeze_module(module)

    def unfreeze_and_add_param_group(
        self,
        modules: Modules,
        optimizer: optim.Optimizer,
        lr: float | None = None,
        initial_denom_lr: float = 10.0,
        train_bn: bool = True,
        *,
        lr_scale: float | None = None,
    ) -> None:
        """Unfreezes ``modules``; their newly trainable parameters get the rate ``lr`` (default:
        the optimizer's rate / ``initial_denom_lr``). Parameters that were trainable already
        keep the optimizer's rate (Lightning warns that they are in another group).

        ``lr_scale`` (not in Lightning): the group's rate is ``lr_scale`` times the optimizer's
        rate at every step, so it follows the optimizer's schedule (``lr`` is then unused)."""
        module = self._module
        if module is None:
            raise RuntimeError("unfreeze_and_add_param_group runs inside fit (finetune_function)")
        before = _names(module)
        if train_bn:
            BaseFinetuning.make_trainable(modules)
        else:
            for m in BaseFinetuning.flatten_modules(modules):
                if not isinstance(m, nn.BatchNorm):
                    BaseFinetuning.make_trainable(m)
        names = sorted(_names(module) - before)
        rate = _current_lr(optimizer) if lr is None else float(lr)
        denom = initial_denom_lr if lr is None else 1.0
        if names and lr_scale is not None:
            self._add_group(names, float(lr_scale), scale=True)
        elif names:
            self._add_group(names, rate / denom)

    # -- hooks ---------------------------------------------------------------------------------------
    def setup(self, trainer: Trainer, module: TrainModule, stage: str) -> None:
        if stage == "fit":
            self._module = module
            self.freeze_before_training(module)

    def on_train_epoch_start(self, trainer: Trainer, module: TrainModule) -> None:
        assert self._optimizer is not None, "install_rate runs before training"
        self.finetune_function(module, trainer.current_epoch, self._optimizer)

    def finetune_function(
        self, module: TrainModule, epoch: int, optimizer: optim.Optimizer
    ) -> None:
        """Override to add your unfreeze logic."""
        raise NotImplementedError

    def freeze_before_training(self, module: TrainModule) -> None:
        """Override to add your freeze logic."""
        raise NotImplementedError

    # -- state ---------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"param_groups": [dict(g) for g in self._groups]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._groups = [
            {"names": list(g["names"]), "lr": float(g["lr"]), "scale": bool(g.get("scale"))}
            for g in state["param_groups"]
        ]

    # -- the groups' rates (NOTE [the backbone's learning rate]) ---------------------------------------
    @property
    def group_lrs(self) -> list[float]:
        """The learning rate of each added group, in the order they were added (for an
        ``lr_scale`` group: the scale)."""
        return [float(g["lr"]) for g in self._groups]

    def set_group_lr(self, index: int, lr: float) -> None:
        """Sets the rate of added group ``index`` (Lightning: ``param_groups[index + 1]["lr"]``)."""
        self._groups[index]["lr"] = float(lr)
        self._write_rates()

    def _add_group(self, names: list[str], lr: float, scale: bool = False) -> None:
        optimizer, module = self._optimizer, self._module
        assert optimizer is not None and module is not None
        self._groups.append({"names": names, "lr": float(lr), "scale": scale})
        optimizer.init(module.trainable_parameters())  # state for the new parameters
        runner = self._trainer.runner if self._trainer is not None else None
        if runner is not None:  # the accumulator's zeros: the new, larger gradient tree
            runner.builder._zeros = None
        self._write_rates()

    def _write_rates(self) -> None:
        assert self._optimizer is not None
        rates = [g["lr"] for g in self._groups] or [0.0]
        _state_of(self._optimizer)[_STATE_KEY] = mx.array(rates, dtype=mx.float32)

    def install_rate(self, trainer: Trainer) -> None:
        """NOTE [the backbone's learning rate]: called by the Trainer once the optimizer is
        configured; unfreezes the groups a restored state names, so that the optimizer's saved
        state matches the trainable parameters, and wraps the optimizer's update."""
        optimizer, module = trainer.optimizer, trainer.module
        assert optimizer is not None and module is not None
        self._optimizer, self._module, self._trainer = optimizer, module, trainer
        if self._groups:  # resumed: the groups were unfrozen when the checkpoint was saved
            _unfreeze_names(module, [n for g in self._groups for n in g["names"]])
            optimizer.init(module.trainable_parameters())
        self._write_rates()
        if getattr(optimizer, "_finetuning_wrapped", False):
            return
        original = optimizer.apply_gradients

        def apply_gradients(gradients: Any, parameters: Any) -> Any:
            updated = original(gradients, parameters)
            if not self._groups:
                return updated
            rates = _state_of(optimizer)[_STATE_KEY]
            base = _state_of(optimizer)["learning_rate"].astype(mx.float32)
            new, old = dict(flatten(updated)), dict(flatten(parameters))
            for index, group in enumerate(self._groups):
                ratio = (
                    rates[index]
                    if group["scale"]
                    else mx.where(base == 0, 0.0, rates[index] / base)
                )
                for name in group["names"]:
                    if name in new:
                        delta = (new[name] - old[name]).astype(mx.float32) * ratio
                        new[name] = (old[name] + delta).astype(new[name].dtype)
            return tree_unflatten(list(new.items()))

        optimizer.apply_gradients = apply_gradients  # type: ignore[method-assign]
        optimizer._finetuning_wrapped = True  # type: ignore[attr-defined]


class BackboneFinetuning(BaseFinetuning):
    """Lightning's ``BackboneFinetuning``: the module's ``backbone`` (an ``nn.Module``) is
    frozen until epoch ``unfreeze_backbone_at_epoch`` (0-based), then trained with its own rate:
    ``backbone_initial_lr`` or the optimizer's rate times ``backbone_initial_ratio_lr``, then
    each epoch ``lambda_func(epoch + 1)`` times the previous, capped at the optimizer's rate
    when ``should_align``. The optimizer's rate is the one its next step uses (its schedule's
    value): a schedule moves only the rest of the model's rate.
    """

    def __init__(
        self,
        unfreeze_backbone_at_epoch: int = 10,
        lambda_func: Callable[[int], float] = multiplicative,
        backbone_initial_ratio_lr: float = 10e-2,
        backbone_initial_lr: float | None = None,
        should_align: bool = True,
        initial_denom_lr: float = 10.0,
        train_bn: bool = True,
        verbose: bool = False,
        rounding: int = 12,
    ) -> None:
        super().__init__()
        self.unfreeze_backbone_at_epoch = unfreeze_backbone_at_epoch
        self.lambda_func = lambda_func
        self.backbone_initial_ratio_lr = backbone_initial_ratio_lr
        self.backbone_initial_lr = backbone_initial_lr
        self.should_align = should_align
        self.initial_denom_lr = initial_denom_lr
        self.train_bn = train_bn
        self.verbose = verbose
        self.rounding = rounding
        self.previous_backbone_lr: float | None = None

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "previous_backbone_lr": self.previous_backbone_lr}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.previous_backbone_lr = state["previous_backbone_lr"]
        super().load_state_dict(state)

    def setup(self, trainer: Trainer, module: TrainModule, stage: str) -> None:
        if stage == "fit" and not isinstance(getattr(module, "backbone", None), nn.Module):
            raise ValueError("The TrainModule should have a nn.Module `backbone` attribute")
        super().setup(trainer, module, stage)

    def freeze_before_training(self, module: TrainModule) -> None:
        self.freeze(module.backbone)

    def finetune_function(
        self, module: TrainModule, epoch: int, optimizer: optim.Optimizer
    ) -> None:
        if epoch == self.unfreeze_backbone_at_epoch:
            current_lr = _current_lr(optimizer)
            initial = (
                self.backbone_initial_lr
                if self.backbone_initial_lr is not None
                else current_lr * self.backbone_initial_ratio_lr
            )
            self.previous_backbone_lr = initial
            self.unfreeze_and_add_param_group(
                module.backbone,
                optimizer,
                initial,
                train_bn=self.train_bn,
                initial_denom_lr=self.initial_denom_lr,
            )
            if self.verbose:
                log.info(
                    f"Current lr: {round(current_lr, self.rounding)}, "
                    f"Backbone lr: {round(initial, self.rounding)}"
                )
        elif epoch > self.unfreeze_backbone_at_epoch and self._groups:
            assert self.previous_backbone_lr is not None
            current_lr = _current_lr(optimizer)
            following = self.lambda_func(epoch + 1) * self.previous_backbone_lr
            following = current_lr if self.should_align and following > current_lr else following
            self.set_group_lr(len(self._groups) - 1, following)
            self.previous_backbone_lr = following
            if self.verbose:
                log.info(
                    f"Current lr: {round(current_lr, self.rounding)}, "
                    f"Backbone lr: {round(following, self.rounding)}"
                )


# -- helpers ---------------------------------------------------------------------------------------
def _state_of(optimizer: optim.Optimizer) -> dict[str, Any]:
    """Where the rates live: a MultiOptimizer's first optimizer's state, else its own."""
    if isinstance(optimizer, optim.MultiOptimizer):
        return _state_of(optimizer.optimizers[0])
    state: dict[str, Any] = optimizer.state
    return state


def _current_lr(optimizer: optim.Optimizer) -> float:
    """The rate the optimizer's next step uses (torch's ``param_groups[0]["lr"]``)."""
    inner = optimizer.optimizers[0] if isinstance(optimizer, optim.MultiOptimizer) else optimizer
    schedule = inner._schedulers.get("learning_rate")
    if schedule is not None:
        return float(schedule(inner.step).item())
    return float(inner.learning_rate.item())


def _names(module: nn.Module) -> set[str]:
    return {name for name, _ in flatten(module.trainable_parameters())}


def _own_keys(module: nn.Module) -> list[str]:
    """The module's own arrays (not its children's)."""
    return [k for k, v in module.items() if isinstance(v, mx.array)]


def _own_trainable(module: nn.Module) -> list[str]:
    own = set(_own_keys(module))
    return [k for k in module.trainable_parameters() if k in own]


def _unfreeze_names(module: nn.Module, names: list[str]) -> None:
    """Unfreezes the parameters at the dotted ``names``."""
    for name in names:
        path, _, key = name.rpartition(".")
        owner = module
        for part in path.split(".") if path else []:
            owner = owner[int(part)] if isinstance(owner, list) else owner[part]
        if isinstance(owner, nn.BatchNorm):  # make_trainable's: it tracks its statistics again
            owner.track_running_stats = "running_mean" in owner
        if isinstance(owner, nn.Module):
            owner.unfreeze(keys=[key], recurse=False, strict=False)
