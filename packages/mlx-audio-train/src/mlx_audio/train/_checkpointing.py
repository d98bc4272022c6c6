"""Checkpoint saving and exact restoring for the Trainer (see :mod:`mlx_audio.train.checkpoint`)."""

from __future__ import annotations

import os
from typing import Any

from mlx.utils import tree_flatten, tree_unflatten

from . import checkpoint as ckpt
from ._support import is_stateful_loader, rng_state, set_rng_state, versions
from .module import TrainModule


class CheckpointMixin:
    """Part of :class:`~mlx_audio.train.Trainer`: ``save_checkpoint`` and ``ckpt_path`` resume."""

    def save_checkpoint(self, path: str) -> str:
        """Write a complete checkpoint directory at ``path`` (see mlx_audio.train.checkpoint)."""
        module, optimizer = self.module, self.optimizer
        assert module is not None and optimizer is not None, "save_checkpoint needs a running fit"
        loader = self._train_loader
        state: dict[str, Any] = {
            "epoch": self.current_epoch,
            "global_step": self.global_step,
            "batch_in_epoch": self._batch_in_epoch,
            "epoch_finished": self._epoch_finished,
            "should_stop": bool(self.should_stop),
            "rng": rng_state(),
            "rng_base": self._rng_base,
            "loader": loader.state_dict()
            if is_stateful_loader(loader) and not self._epoch_finished
            else None,
            "callbacks": {c.state_key: c.state_dict() for c in self.callbacks},
            "callback_metrics": dict(self.callback_metrics),
            "versions": versions(),
        }
        self._call("on_save_checkpoint", state)
        weights = dict(tree_flatten(module.parameters()))
        return ckpt.save_checkpoint(path, weights, dict(tree_flatten(optimizer.state)), state)

    def _resolve_ckpt(self, ckpt_path: str) -> str:
        if ckpt_path in ("last", "best"):
            callback = self.checkpoint_callback
            if ckpt_path == "best":
                if callback is None or not callback.best_model_path:
                    raise ValueError(
                        'ckpt_path="best" needs a ModelCheckpoint that has saved a best checkpoint'
                    )
                return callback.best_model_path
            dirpath = (
                callback.dirpath
                if callback is not None and callback.dirpath
                else os.path.join(self.default_root_dir, "checkpoints")
            )
            return os.path.join(dirpath, "last")
        return ckpt_path

    def _restore(self, ckpt_path: str, module: TrainModule) -> dict | None:
        path = self._resolve_ckpt(ckpt_path)
        if ckpt_path == "last" and not os.path.lexists(path):
            print(f"Trainer: no checkpoint at {path} yet; starting from scratch.")
            return None
        directory, state = ckpt.read_state(path)
        weights_file = os.path.join(directory, ckpt.MODEL_FILE)
        ckpt.check_against(
            weights_file,
            ckpt.load_arrays(weights_file),
            dict(tree_flatten(module.parameters())),
            "model",
        )
        module.load_checkpoint(directory)
        optimizer_file = os.path.join(directory, ckpt.OPTIMIZER_FILE)
        loaded = ckpt.load_arrays(optimizer_file)
        self.optimizer.init(module.trainable_parameters())
        ckpt.check_against(
            optimizer_file, loaded, dict(tree_flatten(self.optimizer.state)), "optimizer"
        )
        self.optimizer.state = tree_unflatten(list(loaded.items()))
        self.current_epoch, self.global_step = int(state["epoch"]), int(state["global_step"])
        self.callback_metrics = {k: float(v) for k, v in state.get("callback_metrics", {}).items()}
        set_rng_state(state["rng"])
        self._rng_base = int(state["rng_base"])
        for callback in self.callbacks:
            if callback.state_key in state.get("callbacks", {}):
                callback.load_state_dict(state["callbacks"][callback.state_key])
        self._call("on_load_checkpoint", state)
        if state["epoch_finished"]:
            self.current_epoch += 1
            return {
                **state,
                "batch_in_epoch": 0,
                "loader": None,
                "_dir": directory,
                "_finished_epoch": True,
            }
        return {**state, "_dir": directory}

    def _finished(self, resume: dict) -> bool:
        return (
            bool(resume.get("should_stop"))
            or self._step_limit_reached()
            or (self.max_epochs is not None and self.current_epoch >= self.max_epochs)
        )
