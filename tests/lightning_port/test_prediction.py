"""Ports of Lightning 2.6's ``loops/test_prediction_loop.py::test_prediction_loop_stores_predictions``
and ``trainer/test_trainer.py``'s ``test_predict_return_predictions_cpu``,
``test_repeated_fit_calls_with_max_epochs_and_steps`` and
``test_trainer_access_in_configure_optimizers``, and what ``predict`` does to the metric views.

Same names, inputs and assertions, except: ``limit_predict_batches=2`` becomes a loader of 2
batches and ``trainer.predict_loop.predictions`` (Lightning's internals) is left out;
``precision="64-true"`` is left out (MLX has no float64 on the GPU: a ``ValueError`` here).
"""

from __future__ import annotations

import mlx.core as mx
import pytest
from boring_classes import BoringModel, RandomDataset, fit

from mlx_audio.data import DataLoader
from mlx_audio.train import Trainer


def test_prediction_loop_stores_predictions(tmp_path):
    class MyModel(BoringModel):
        def predict_step(self, batch, batch_idx):
            return batch_idx

    model = MyModel()
    trainer = Trainer(
        default_root_dir=tmp_path,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    predictions = trainer.predict(model, DataLoader(RandomDataset(32, 2)), return_predictions=True)
    assert predictions == [0, 1]

    trainer = Trainer(
        default_root_dir=tmp_path,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    predictions = trainer.predict(model, DataLoader(RandomDataset(32, 2)), return_predictions=False)
    assert predictions is None


@pytest.mark.parametrize("return_predictions", [None, False, True])
@pytest.mark.parametrize("precision", ["32-true"])
def test_predict_return_predictions_cpu(return_predictions, precision, tmp_path):
    """Test that `return_predictions=True`."""
    mx.random.seed(42)
    model = BoringModel()

    trainer = Trainer(default_root_dir=tmp_path, fast_dev_run=True, precision=precision)
    preds = trainer.predict(
        model, dataloaders=model.train_dataloader(), return_predictions=return_predictions
    )
    if return_predictions or return_predictions is None:
        assert len(preds) == 1
        assert preds[0].shape == (1, 2)
        assert preds[0].dtype == mx.float32


@pytest.mark.parametrize(("max_steps", "max_epochs", "global_step"), [(10, 5, 10), (20, None, 20)])
def test_repeated_fit_calls_with_max_epochs_and_steps(tmp_path, max_steps, max_epochs, global_step):
    """Ensure that the training loop is bound by `max_steps` and `max_epochs` for repeated calls of `trainer.fit`, and
    disabled if the limit is reached."""

    dataset_len = 200
    batch_size = 10

    train_data = DataLoader(RandomDataset(32, dataset_len), batch_size=batch_size)

    model = BoringModel()

    trainer = Trainer(default_root_dir=tmp_path, max_steps=max_steps, max_epochs=max_epochs)
    trainer.fit(model, train_data)
    assert trainer.global_step == global_step
    trainer.fit(model, train_data)
    assert trainer.global_step == global_step


def test_trainer_access_in_configure_optimizers(tmp_path):
    """Verify that the configure optimizer function can reference the trainer."""

    class TestModel(BoringModel):
        def configure_optimizers(self):
            assert self.trainer is not None, (
                "Expect to have access to the trainer within `configure_optimizers`"
            )

    train_data = DataLoader(RandomDataset(32, 64))

    model = TestModel()
    trainer = Trainer(default_root_dir=tmp_path, fast_dev_run=True)
    trainer.fit(model, train_data)


def test_predict_resets_the_metric_views(tmp_path):
    """As Lightning 2.6 (checked with its Trainer): like ``validate`` and ``test``, ``predict``
    starts with empty ``callback_metrics``, ``progress_bar_metrics`` and ``logged_metrics``."""

    class Logging(BoringModel):
        def training_step(self, batch, batch_idx):
            self.log("a", 1.0, prog_bar=True)
            return super().training_step(batch, batch_idx)

    model = Logging()
    trainer = Trainer(
        default_root_dir=tmp_path,
        max_epochs=1,
        limit_train_batches=2,
        enable_progress_bar=False,
        enable_checkpointing=False,
        enable_model_summary=False,
    )
    model.val_dataloader = None
    fit(trainer, model)
    assert trainer.callback_metrics and trainer.progress_bar_metrics and trainer.logged_metrics
    predictions = trainer.predict(model, DataLoader(RandomDataset(32, 64)))
    assert len(predictions) == 64
    assert dict(trainer.callback_metrics) == {}
    assert dict(trainer.progress_bar_metrics) == {}
    assert dict(trainer.logged_metrics) == {}
