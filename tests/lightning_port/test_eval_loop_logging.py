"""A port of Lightning 2.6's ``tests/tests_pytorch/trainer/logging_/test_eval_loop_logging.py``.

Same names, inputs and assertions; ``BoringModel`` is the MLX one of ``boring_classes.py``,
values are floats, ``mock.patch(TensorBoardLogger.log_metrics)`` is a ``RecordingLogger``
(without Lightning's ``hp_metric`` call), ``trainer.state.fn`` is ``trainer.state_fn``, and a test
that keeps values from inside a step runs with ``compile=False``. Left out: several dataloaders
(``dataloader_idx``), the printed results tables, devices.
"""

from __future__ import annotations

import collections
import itertools
from unittest.mock import ANY, call

import mlx.core as mx
import numpy as np
import pytest
from boring_classes import BoringModel, RecordingLogger, fit, test, validate

from mlx_audio.train import Trainer, callbacks

MisconfigurationException = ValueError  # Lightning's MisconfigurationException


def test__validation_step__log(tmp_path):
    """Tests that validation_step can log."""

    class TestModel(BoringModel):
        def training_step(self, batch, batch_idx):
            out = super().training_step(batch, batch_idx)
            self.log("a", out["loss"], on_step=True, on_epoch=True)
            self.log("a2", 2)
            return out

        def validation_step(self, batch, batch_idx):
            out = super().validation_step(batch, batch_idx)
            self.log("b", out["x"], on_step=True, on_epoch=True)
            return out

    model = TestModel()
    trainer = Trainer(
        default_root_dir=tmp_path,
        limit_train_batches=2,
        limit_val_batches=2,
        max_epochs=2,
        log_every_n_steps=1,
        enable_model_summary=False,
    )
    fit(trainer, model)

    assert set(trainer.logged_metrics) == {"a2", "a_step", "a_epoch", "b_step", "b_epoch"}

    # we don't want to enable val metrics during steps because it is not something that users should do
    # on purpose DO NOT allow b_step... it's silly to monitor val step metrics
    assert set(trainer.callback_metrics) == {"a", "a2", "b", "a_epoch", "b_epoch", "a_step"}
    assert all(isinstance(v, float) for v in trainer.callback_metrics.values())
    assert all(isinstance(v, float) for v in trainer.logged_metrics.values())
    assert all(isinstance(v, float) for v in trainer.progress_bar_metrics.values())


def test__validation_step__epoch_end__log(tmp_path):
    """Tests that on_validation_epoch_end can log."""

    class TestModel(BoringModel):
        def training_step(self, batch, batch_idx):
            out = super().training_step(batch, batch_idx)
            self.log("a", out["loss"])
            self.log("b", out["loss"], on_step=True, on_epoch=True)
            return out

        def validation_step(self, batch, batch_idx):
            out = super().validation_step(batch, batch_idx)
            self.log("c", out["x"])
            self.log("d", out["x"], on_step=True, on_epoch=True)
            return out

        def on_validation_epoch_end(self):
            self.log("g", mx.array(2), on_epoch=True)

    model = TestModel()

    trainer = Trainer(
        default_root_dir=tmp_path,
        limit_train_batches=2,
        limit_val_batches=2,
        max_epochs=2,
        log_every_n_steps=1,
        enable_model_summary=False,
    )
    fit(trainer, model)

    # make sure all the metrics are available for loggers
    assert set(trainer.logged_metrics) == {"a", "b_step", "b_epoch", "c", "d_step", "d_epoch", "g"}

    assert not trainer.progress_bar_metrics

    # we don't want to enable val metrics during steps because it is not something that users should do
    assert set(trainer.callback_metrics) == {
        "a",
        "b",
        "b_epoch",
        "c",
        "d",
        "d_epoch",
        "g",
        "b_step",
    }


@pytest.mark.parametrize(("batches", "log_interval", "max_epochs"), [(1, 1, 1), (64, 32, 2)])
def test_eval_epoch_logging(tmp_path, batches, log_interval, max_epochs):
    class TestModel(BoringModel):
        def on_validation_epoch_end(self):
            self.log("c", mx.array(2), on_epoch=True, prog_bar=True, logger=True)
            self.log("d/e/f", 2)

    model = TestModel()

    trainer = Trainer(
        default_root_dir=tmp_path,
        limit_train_batches=batches,
        limit_val_batches=batches,
        max_epochs=max_epochs,
        log_every_n_steps=log_interval,
        enable_model_summary=False,
    )
    fit(trainer, model)

    # assert the loggers received the expected number
    logged_metrics = set(trainer.logged_metrics)
    assert logged_metrics == {"c", "d/e/f"}

    pbar_metrics = set(trainer.progress_bar_metrics)
    assert pbar_metrics == {"c"}

    # make sure all the metrics are available for callbacks
    callback_metrics = set(trainer.callback_metrics)
    assert callback_metrics == (logged_metrics | pbar_metrics)


def test_eval_float_logging(tmp_path):
    class TestModel(BoringModel):
        def validation_step(self, batch, batch_idx):
            loss = self.step(batch)
            self.log("a", 12.0)
            return {"x": loss}

    model = TestModel()

    trainer = Trainer(
        default_root_dir=tmp_path,
        limit_train_batches=2,
        limit_val_batches=2,
        max_epochs=1,
        log_every_n_steps=1,
        enable_model_summary=False,
    )
    fit(trainer, model)

    assert set(trainer.logged_metrics) == {"a"}


def test_eval_logging_auto_reduce(tmp_path):
    class TestModel(BoringModel):
        val_losses = []
        manual_epoch_end_mean = None

        def validation_step(self, batch, batch_idx):
            loss = self.step(batch)
            self.val_losses.append(loss)
            self.log("val_loss", loss, on_epoch=True, on_step=True, prog_bar=True)
            return {"x": loss}

        def on_validation_epoch_end(self) -> None:
            object.__setattr__(self, "manual_epoch_end_mean", mx.stack(self.val_losses).mean())

    model = TestModel()
    trainer = Trainer(
        default_root_dir=tmp_path,
        limit_train_batches=3,
        limit_val_batches=3,
        max_epochs=1,
        log_every_n_steps=1,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        compile=False,  # val_losses keeps values from inside the step
    )
    fit(trainer, model)

    # make sure all the metrics are available for callbacks
    assert set(trainer.callback_metrics) == {"val_loss", "val_loss_epoch"}

    # make sure values are correct
    mean = model.manual_epoch_end_mean.item()
    assert trainer.logged_metrics["val_loss_epoch"] == pytest.approx(mean)
    assert trainer.callback_metrics["val_loss_epoch"] == pytest.approx(mean)
    assert trainer.callback_metrics["val_loss"] == pytest.approx(mean)
    assert trainer.logged_metrics["val_loss_step"] == pytest.approx(model.val_losses[-1].item())


@pytest.mark.parametrize(("batches", "log_interval", "max_epochs"), [(1, 1, 1), (64, 32, 2)])
def test_eval_epoch_only_logging(tmp_path, batches, log_interval, max_epochs):
    """Tests that on_test_epoch_end can be used to log, and we return them in the results."""

    class TestModel(BoringModel):
        def on_test_epoch_end(self):
            self.log("c", mx.array(2))
            self.log("d/e/f", 2)

    model = TestModel()
    trainer = Trainer(
        default_root_dir=tmp_path,
        max_epochs=max_epochs,
        limit_test_batches=batches,
        log_every_n_steps=log_interval,
        enable_model_summary=False,
    )
    results = test(trainer, model)

    assert len(results) == 1
    assert results[0] == {"c": 2, "d/e/f": 2}


def test_log_works_in_val_callback(tmp_path):
    """Tests that log can be called within callback."""

    class TestCallback(callbacks.Callback):
        count = 0
        choices = [False, True]

        # used to compute expected values
        logged_values = collections.defaultdict(list)
        call_counter = collections.Counter()
        logged_arguments = {}

        def make_logging(self, pl_module, func_name, on_steps, on_epochs, prob_bars):
            self.call_counter.update([func_name])

            for idx, (on_step, on_epoch, prog_bar) in enumerate(
                itertools.product(on_steps, on_epochs, prob_bars)
            ):
                fx = f"{func_name}_{idx}"
                if not on_step and not on_epoch:
                    with pytest.raises(MisconfigurationException, match="is not useful"):
                        pl_module.log(fx, self.count, on_step=on_step, on_epoch=on_epoch)
                    continue
                pl_module.log(fx, self.count, on_step=on_step, on_epoch=on_epoch, prog_bar=prog_bar)
                self.logged_values[fx].append(self.count)
                self.logged_arguments[fx] = {
                    "on_step": on_step,
                    "on_epoch": on_epoch,
                    "prog_bar": prog_bar,
                }
                self.count += 1

        def on_validation_start(self, _, pl_module):
            self.make_logging(
                pl_module,
                "on_validation_start",
                on_steps=[False],
                on_epochs=[True],
                prob_bars=self.choices,
            )

        def on_validation_epoch_start(self, _, pl_module):
            self.make_logging(
                pl_module,
                "on_validation_epoch_start",
                on_steps=[False],
                on_epochs=[True],
                prob_bars=self.choices,
            )

        def on_validation_batch_end(self, _, pl_module, *__):
            self.make_logging(
                pl_module,
                "on_validation_batch_end",
                on_steps=self.choices,
                on_epochs=self.choices,
                prob_bars=self.choices,
            )

        def on_validation_epoch_end(self, _, pl_module):
            self.make_logging(
                pl_module,
                "on_validation_epoch_end",
                on_steps=[False],
                on_epochs=[True],
                prob_bars=self.choices,
            )

    class TestModel(BoringModel):
        def validation_step(self, batch, batch_idx):
            loss = super().validation_step(batch, batch_idx)["x"]
            self.log("val_loss", loss)

    model = TestModel()
    cb = TestCallback()
    trainer = Trainer(
        default_root_dir=tmp_path,
        limit_train_batches=1,
        limit_val_batches=4,
        num_sanity_val_steps=0,
        max_epochs=1,
        callbacks=[cb],
    )
    fit(trainer, model)

    assert cb.call_counter == {
        "on_validation_batch_end": 4,
        "on_validation_start": 1,
        "on_validation_epoch_start": 1,
        "on_validation_epoch_end": 1,
    }

    def get_expected(on_epoch, values):
        reduction = np.mean if on_epoch else np.max
        return reduction(values)

    for fx, value in trainer.callback_metrics.items():
        actual = value
        if fx not in cb.logged_arguments:
            continue
        on_epoch = cb.logged_arguments[fx]["on_epoch"]
        values = cb.logged_values[fx]
        expected = get_expected(on_epoch, values)
        assert actual == expected

    for fx, attrs in cb.logged_arguments.items():
        should_include = attrs["prog_bar"] and attrs["on_step"] ^ attrs["on_epoch"]
        is_included = fx in trainer.progress_bar_metrics
        assert is_included if should_include else not is_included


def test_validation_step_log_with_tensorboard(tmp_path):
    """This tests make sure we properly log_metrics to loggers."""

    class ExtendedModel(BoringModel):
        val_losses = []

        def training_step(self, batch, batch_idx):
            loss = self.step(batch)
            self.log("train_loss", loss)
            return {"loss": loss}

        def validation_step(self, batch, batch_idx):
            loss = self.step(batch)
            self.val_losses.append(loss)
            self.log("valid_loss_0", loss, on_step=True, on_epoch=True)
            self.log("valid_loss_1", loss, on_step=False, on_epoch=True)
            self.log("valid_loss_2", loss, on_step=True, on_epoch=False)
            return {"val_loss": loss}  # not added to callback_metrics

        def test_step(self, batch, batch_idx):
            loss = self.step(batch)
            self.log("test_loss", loss)
            return {"y": loss}

    model = ExtendedModel()
    mock_log_metrics = RecordingLogger()

    # Initialize a trainer
    trainer = Trainer(
        default_root_dir=tmp_path,
        logger=mock_log_metrics,
        limit_train_batches=1,
        limit_val_batches=2,
        limit_test_batches=2,
        log_every_n_steps=1,
        max_epochs=2,
        compile=False,  # val_losses keeps values from inside the step
    )

    # Train the model
    fit(trainer, model)

    assert set(trainer.callback_metrics) == {
        "train_loss",
        "valid_loss_0_epoch",
        "valid_loss_0",
        "valid_loss_1",
    }
    assert mock_log_metrics.mock_calls == [
        call(metrics={"train_loss": ANY, "epoch": 0}, step=0),
        call(metrics={"valid_loss_0_step": ANY, "valid_loss_2": ANY}, step=0),
        call(metrics={"valid_loss_0_step": ANY, "valid_loss_2": ANY}, step=1),
        call(metrics={"valid_loss_0_epoch": ANY, "valid_loss_1": ANY, "epoch": 0}, step=0),
        call(metrics={"train_loss": ANY, "epoch": 1}, step=1),
        call(metrics={"valid_loss_0_step": ANY, "valid_loss_2": ANY}, step=2),
        call(metrics={"valid_loss_0_step": ANY, "valid_loss_2": ANY}, step=3),
        call(metrics={"valid_loss_0_epoch": ANY, "valid_loss_1": ANY, "epoch": 1}, step=1),
    ]

    def get_metrics_at_idx(idx):
        return mock_log_metrics.mock_calls[idx].kwargs["metrics"]

    def mean(values):
        return mx.stack(values).mean().item()

    losses = [v.item() for v in model.val_losses]
    assert get_metrics_at_idx(1)["valid_loss_0_step"] == pytest.approx(losses[2])
    assert get_metrics_at_idx(2)["valid_loss_0_step"] == pytest.approx(losses[3])
    assert get_metrics_at_idx(3)["valid_loss_1"] == pytest.approx(mean(model.val_losses[2:4]))
    assert get_metrics_at_idx(5)["valid_loss_0_step"] == pytest.approx(losses[4])
    assert get_metrics_at_idx(6)["valid_loss_0_step"] == pytest.approx(losses[5])
    assert get_metrics_at_idx(7)["valid_loss_1"] == pytest.approx(mean(model.val_losses[4:]))

    results = test(trainer, model)
    assert set(trainer.callback_metrics) == {"test_loss"}
    assert set(results[0]) == {"test_loss"}


def test_eval_step_logging(tmp_path):
    """Test that eval step during fit/validate/test is updated correctly (one dataloader)."""
    fn_names = {"fit": "fit", "validation": "validate", "test": "test"}

    class CustomBoringModel(BoringModel):
        def validation_step(self, batch, batch_idx):
            self.log(
                f"val_log_{fn_names[self.trainer.state_fn]}",
                batch_idx,
                on_step=True,
                on_epoch=False,
            )

        def test_step(self, batch, batch_idx):
            self.log("test_log", batch_idx, on_step=True, on_epoch=False)

    limit_batches = 4
    max_epochs = 3
    mock_log_metrics = RecordingLogger()
    trainer = Trainer(
        default_root_dir=tmp_path,
        max_epochs=max_epochs,
        limit_train_batches=1,
        limit_val_batches=limit_batches,
        limit_test_batches=limit_batches,
        logger=mock_log_metrics,
    )
    model = CustomBoringModel()

    eval_steps = range(limit_batches)
    fit(trainer, model)
    fit_calls = [
        call(metrics={"val_log_fit": float(step)}, step=step + (limit_batches * epoch))
        for epoch in range(max_epochs)
        for step in eval_steps
    ]
    assert mock_log_metrics.mock_calls == fit_calls

    mock_log_metrics.reset_mock()
    validate(trainer, model)
    validate_calls = [
        call(metrics={"val_log_validate": float(val)}, step=val) for val in eval_steps
    ]
    assert mock_log_metrics.mock_calls == validate_calls

    mock_log_metrics.reset_mock()
    test(trainer, model)
    test_calls = [call(metrics={"test_log": float(val)}, step=val) for val in eval_steps]
    assert mock_log_metrics.mock_calls == test_calls
