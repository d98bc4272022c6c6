"""Validation, test and predict loops of the Trainer (eval mode, batch-size-weighted means)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import mlx.core as mx

from ._support import MeanTracker, batch_size_of, iter_limited, length_of, limited
from .module import TrainModule
from .step import TraceGuard, make_eval_fn


class EvaluationMixin:
    """Part of :class:`~mlx_audio.train.Trainer`: ``validate``, ``test``, ``predict``."""

    def _evaluate(
        self, loader: Iterable[Any], stage: str, limit: int | float | None
    ) -> dict[str, float]:
        module = self.module
        assert module is not None
        count = limited(length_of(loader), limit)
        was_training = module.training
        module.eval()
        self._call("on_validation_start" if stage == "val" else "on_test_start")
        step = make_eval_fn(module, stage, self.precision, self.compile)
        tracker = MeanTracker()
        for batch_idx, batch in enumerate(iter_limited(loader, count)):
            with TraceGuard(module, None, self.compile and batch_idx == 0):
                loss, metrics = step(batch, mx.array(batch_idx))
                tracker.add({"loss": loss, **metrics}, batch_size_of(batch))
        module.train(was_training)
        results = {f"{stage}_{k}": v for k, v in tracker.means().items()}
        if stage == "val":
            self._val_names = set(results)
        if not self.sanity_checking and results:
            self.log_metrics(
                {**results, "epoch": self.current_epoch} if self.optimizer is not None else results
            )
        if self.sanity_checking:
            self._check_monitors(sanity=True)
        self._call("on_validation_end" if stage == "val" else "on_test_end")
        return results

    def validate(
        self, model: TrainModule, dataloaders: Iterable[Any], ckpt_path: str | None = None
    ) -> list[dict[str, float]]:
        return [self._standalone(model, dataloaders, "val", ckpt_path, self.limit_val_batches)]

    def test(
        self, model: TrainModule, dataloaders: Iterable[Any], ckpt_path: str | None = None
    ) -> list[dict[str, float]]:
        return [self._standalone(model, dataloaders, "test", ckpt_path, self.limit_test_batches)]

    def _standalone(
        self,
        model: TrainModule,
        loader: Iterable[Any],
        stage: str,
        ckpt_path: str | None,
        limit: Any,
    ) -> dict[str, float]:
        self.module, model.trainer = model, self
        if ckpt_path is not None:
            model.load_checkpoint(self._resolve_ckpt(ckpt_path))
        return self._evaluate(loader, stage, limit)

    def predict(
        self, model: TrainModule, dataloaders: Iterable[Any], ckpt_path: str | None = None
    ) -> list[Any]:
        """``predict_step`` on every batch (eval mode), returned as a list."""
        self.module, model.trainer = model, self
        if ckpt_path is not None:
            model.load_checkpoint(self._resolve_ckpt(ckpt_path))
        was_training = model.training
        model.eval()
        self._call("on_predict_start")
        outputs = []
        for batch_idx, batch in enumerate(dataloaders):
            output = model.predict_step(batch, mx.array(batch_idx))
            mx.eval(output)
            outputs.append(output)
        self._call("on_predict_end")
        model.train(was_training)
        return outputs
