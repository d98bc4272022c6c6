"""A port of Lightning 2.6's ``tests/tests_pytorch/trainer/logging_/test_eval_loop_logging.py``.

Same names, inputs and assertions; ``BoringModel`` is the MLX one of ``boring_classes.py``,
values are floats, ``mock.patch(TensorBoardLogger.log_metrics)`` is a ``RecordingLogger``
(without Lightning's ``hp_metric`` call), ``trainer.state.fn`` is ``trainer.state_fn``, and a test
that keeps values from inside a step runs with ``compile=False``; ``trainer._results`` is
``trainer._eval_results``. Left out: the printed results tables, devices.
"""

from __future__ import annotations

import collections
import itertools
from unittest.mock import ANY, call

import mlx.core as mx
import numpy as np
import pytest
from boring_classes import BoringModel, RandomDataset, RecordingLogger, fit, test, validate

from mlx_audio.data import DataLoader
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


@pytest.mark.parametrize("num_dataloaders", [1, 2])
def test_eval_step_logging(tmp_path, num_dataloaders):
    """Test that eval step during fit/validate/test is updated correctly."""
    fn_names = {"fit": "fit", "validation": "validate", "test": "test"}

    class CustomBoringModel(BoringModel):
        def validation_step(self, batch, batch_idx, dataloader_idx=None):
            self.log(
                f"val_log_{fn_names[self.trainer.state_fn]}",
                batch_idx,
                on_step=True,
                on_epoch=False,
            )

        def test_step(self, batch, batch_idx, dataloader_idx=None):
            self.log("test_log", batch_idx, on_step=True, on_epoch=False)

        def val_dataloader(self):
            return [super().val_dataloader()] * num_dataloaders

        def test_dataloader(self):
            return [super().test_dataloader()] * num_dataloaders

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

    def get_suffix(dl_idx):
        return f"/dataloader_idx_{dl_idx}" if num_dataloaders == 2 else ""

    eval_steps = range(limit_batches)
    fit(trainer, model)
    fit_calls = [
        call(
            metrics={f"val_log_fit{get_suffix(dl_idx)}": float(step)},
            step=step + (limit_batches * epoch),
        )
        for epoch in range(max_epochs)
        for dl_idx in range(num_dataloaders)
        for step in eval_steps
    ]
    assert mock_log_metrics.mock_calls == fit_calls

    mock_log_metrics.reset_mock()
    validate(trainer, model)
    validate_calls = [
        call(metrics={f"val_log_validate{get_suffix(dl_idx)}": float(val)}, step=val)
        for dl_idx in range(num_dataloaders)
        for val in eval_steps
    ]
    assert mock_log_metrics.mock_calls == validate_calls

    mock_log_metrics.reset_mock()
    test(trainer, model)
    test_calls = [
        call(metrics={f"test_log{get_suffix(dl_idx)}": float(val)}, step=val)
        for dl_idx in range(num_dataloaders)
        for val in eval_steps
    ]
    assert mock_log_metrics.mock_calls == test_calls


@pytest.mark.parametrize("suffix", [False, True])
def test_multi_dataloaders_add_suffix_properly(suffix, tmp_path):
    class TestModel(BoringModel):
        def test_step(self, batch, batch_idx, dataloader_idx=0):
            out = super().test_step(batch, batch_idx)
            self.log("test_loss", out["y"], on_step=True, on_epoch=True)
            return out

        def test_dataloader(self):
            if suffix:
                return [
                    DataLoader(RandomDataset(32, 64)),
                    DataLoader(RandomDataset(32, 64)),
                ]
            return super().test_dataloader()

    model = TestModel()

    trainer = Trainer(
        default_root_dir=tmp_path,
        limit_train_batches=0,
        limit_val_batches=0,
        limit_test_batches=2,
        max_epochs=1,
        log_every_n_steps=1,
        enable_model_summary=False,
    )
    results = test(trainer, model)

    assert len(results) == (2 if suffix else 1)
    for i, r in enumerate(results):
        expected = {"test_loss_epoch"}
        if suffix:
            expected = {e + f"/dataloader_idx_{i}" for e in expected}
        assert set(r) == expected


def test_log_works_in_test_callback(tmp_path):
    """Tests that log can be called within callback."""

    class TestCallback(callbacks.Callback):
        # helpers
        count = 0
        choices = [False, True]

        # used to compute expected values
        callback_funcs_called = collections.defaultdict(list)
        funcs_called_count = collections.defaultdict(int)
        funcs_attr = {}

        def make_logging(self, pl_module, func_name, on_steps, on_epochs, prob_bars):
            original_func_name = func_name[:]
            self.funcs_called_count[original_func_name] += 1

            for idx, (on_step, on_epoch, prog_bar) in enumerate(
                itertools.product(on_steps, on_epochs, prob_bars)
            ):
                func_name = original_func_name[:]
                custom_func_name = f"{idx}_{func_name}"

                if not on_step and not on_epoch:
                    with pytest.raises(MisconfigurationException, match="is not useful"):
                        pl_module.log(
                            custom_func_name, self.count, on_step=on_step, on_epoch=on_epoch
                        )
                    continue
                pl_module.log(
                    custom_func_name,
                    self.count,
                    on_step=on_step,
                    on_epoch=on_epoch,
                    prog_bar=prog_bar,
                )

                num_dl_ext = ""
                dl_idx = pl_module.trainer._eval_results.dataloader_idx
                if dl_idx is not None:
                    num_dl_ext = f"/dataloader_idx_{dl_idx}"
                    func_name += num_dl_ext

                # catch information for verification
                self.callback_funcs_called[func_name].append([self.count])
                self.funcs_attr[custom_func_name + num_dl_ext] = {
                    "on_step": on_step,
                    "on_epoch": on_epoch,
                    "prog_bar": prog_bar,
                    "func_name": func_name,
                }
                if on_step and on_epoch:
                    self.funcs_attr[f"{custom_func_name}_step" + num_dl_ext] = {
                        "on_step": True,
                        "on_epoch": False,
                        "prog_bar": prog_bar,
                        "func_name": func_name,
                    }

                    self.funcs_attr[f"{custom_func_name}_epoch" + num_dl_ext] = {
                        "on_step": False,
                        "on_epoch": True,
                        "prog_bar": prog_bar,
                        "func_name": func_name,
                    }

        def on_test_start(self, _, pl_module):
            self.make_logging(
                pl_module,
                "on_test_start",
                on_steps=[False],
                on_epochs=[True],
                prob_bars=self.choices,
            )

        def on_test_epoch_start(self, _, pl_module):
            self.make_logging(
                pl_module,
                "on_test_epoch_start",
                on_steps=[False],
                on_epochs=[True],
                prob_bars=self.choices,
            )

        def on_test_batch_end(self, _, pl_module, *__):
            self.make_logging(
                pl_module,
                "on_test_batch_end",
                on_steps=self.choices,
                on_epochs=self.choices,
                prob_bars=self.choices,
            )

        def on_test_epoch_end(self, _, pl_module):
            self.make_logging(
                pl_module,
                "on_test_epoch_end",
                on_steps=[False],
                on_epochs=[True],
                prob_bars=self.choices,
            )

    num_dataloaders = 2

    class TestModel(BoringModel):
        seen_losses = {i: [] for i in range(num_dataloaders)}

        def test_step(self, batch, batch_idx, dataloader_idx=0):
            loss = super().test_step(batch, batch_idx)["y"]
            self.log("test_loss", loss)
            self.seen_losses[dataloader_idx].append(loss)

        def test_dataloader(self):
            return [DataLoader(RandomDataset(32, 64)) for _ in range(num_dataloaders)]

    model = TestModel()
    cb = TestCallback()
    trainer = Trainer(
        default_root_dir=tmp_path,
        limit_test_batches=2,
        num_sanity_val_steps=0,
        max_epochs=2,
        callbacks=[cb],
        compile=False,
    )
    test(trainer, model)

    assert cb.funcs_called_count["on_test_start"] == 1
    assert cb.funcs_called_count["on_test_epoch_start"] == 1
    assert cb.funcs_called_count["on_test_batch_end"] == 4
    assert cb.funcs_called_count["on_test_epoch_end"] == 1

    callback_metrics = trainer.callback_metrics
    for func_name in cb.callback_funcs_called:
        for key in callback_metrics:
            if func_name in key:
                break
        else:
            pytest.fail(f"{func_name}, {list(callback_metrics)}")

    def get_expected(on_epoch, values):
        reduction = np.mean if on_epoch else np.max
        return reduction(values)

    # Make sure the func_name output equals the average from all logged values when on_epoch true
    for dl_idx in range(num_dataloaders):
        key = f"test_loss/dataloader_idx_{dl_idx}"
        assert key in trainer.callback_metrics
        expected = float(mx.mean(mx.stack(model.seen_losses[dl_idx])).item())
        assert trainer.callback_metrics.pop(key) == pytest.approx(expected)
        trainer.metrics.callback.pop(key)  # the port's views are copies: drop it at the source

    for func_name, output_value in trainer.callback_metrics.items():
        func_attr = cb.funcs_attr[func_name]
        original_values = cb.callback_funcs_called[func_attr["func_name"]]
        expected_output = get_expected(func_attr["on_epoch"], original_values)
        assert output_value == expected_output

    for fx, attrs in cb.funcs_attr.items():
        should_include = attrs["prog_bar"] and attrs["on_step"] ^ attrs["on_epoch"]
        is_included = fx in trainer.progress_bar_metrics
        assert is_included if should_include else not is_included


@pytest.mark.parametrize("val_check_interval", [0.5, 1.0])
def test_multiple_dataloaders_reset(val_check_interval, tmp_path):
    class TestModel(BoringModel):
        def __init__(self):
            super().__init__()
            self.val_outputs = [[], []]  # an MLX module keeps lists as children: set them here

        def training_step(self, batch, batch_idx):
            out = super().training_step(batch, batch_idx)
            value = 1 + batch_idx
            if self.current_epoch != 0:
                value *= 10
            self.log("batch_idx", value, on_step=True, on_epoch=True, prog_bar=True)
            return out

        def on_train_epoch_end(self):
            metrics = self.trainer.progress_bar_metrics
            v = 15 if self.current_epoch == 0 else 150
            assert metrics["batch_idx_epoch"] == (v / 5.0)

        def validation_step(self, batch, batch_idx, dataloader_idx):
            value = (1 + batch_idx) * (1 + dataloader_idx)
            if self.current_epoch != 0:
                value *= 10
            self.val_outputs[dataloader_idx].append(value)
            self.log("val_loss", value, on_step=False, on_epoch=True, prog_bar=True, logger=True)

        def on_validation_epoch_end(self):
            outputs = self.val_outputs
            self.val_outputs = [[], []]

            if self.current_epoch == 0:
                assert sum(outputs[0]) / 5 == 3
                assert sum(outputs[1]) / 5 == 6
            else:
                assert sum(outputs[0]) / 5 == 30
                assert sum(outputs[1]) / 5 == 60

            tot_loss = np.mean(np.array(outputs, dtype=np.float32))
            if self.current_epoch == 0:
                assert tot_loss == (3 + 6) / 2
            else:
                assert tot_loss == (30 + 60) / 2
            entries = self.trainer._eval_results.entries
            assert entries["validation_step.val_loss.0"].reduction.weight == 5
            assert entries["validation_step.val_loss.1"].reduction.weight == 5

        def val_dataloader(self):
            return [super().val_dataloader(), super().val_dataloader()]

    model = TestModel()
    trainer = Trainer(
        default_root_dir=tmp_path,
        limit_train_batches=5,
        limit_val_batches=5,
        num_sanity_val_steps=0,
        val_check_interval=val_check_interval,
        max_epochs=3,
        log_every_n_steps=1,
        enable_model_summary=False,
        compile=False,
    )
    fit(trainer, model)


def test_logging_results_with_no_dataloader_idx(tmp_path):
    num_dataloaders = 2
    log_common_same_val = {"test_log_common": 789}
    log_common_diff_val = "test_log_common_diff_value"
    log_key_no_dl_idx = "test_log_no_dl_idx_{}"
    log_key_dl0 = {"test_log_a_class": 123}
    log_key_dl1 = {"test_log_b_class": 456}

    class CustomBoringModel(BoringModel):
        def test_step(self, batch, batch_idx, dataloader_idx):
            self.log_dict(log_common_same_val)
            self.log(log_common_diff_val, dataloader_idx + 1)
            self.log(
                log_key_no_dl_idx.format(dataloader_idx),
                321 * (dataloader_idx + 1),
                add_dataloader_idx=False,
            )
            self.log_dict(
                log_key_dl0 if dataloader_idx == 0 else log_key_dl1, add_dataloader_idx=False
            )

        def test_dataloader(self):
            return [DataLoader(RandomDataset(32, 64)) for _ in range(num_dataloaders)]

    model = CustomBoringModel()
    trainer = Trainer(default_root_dir=tmp_path, fast_dev_run=1)
    results = test(trainer, model)

    assert len(results) == num_dataloaders
    assert results[0] == {
        "test_log_common/dataloader_idx_0": 789.0,
        "test_log_common_diff_value/dataloader_idx_0": 1.0,
        "test_log_no_dl_idx_0": 321,
        "test_log_a_class": 123.0,
    }
    assert results[1] == {
        "test_log_common/dataloader_idx_1": 789.0,
        "test_log_common_diff_value/dataloader_idx_1": 2.0,
        "test_log_no_dl_idx_1": 321 * 2,
        "test_log_b_class": 456.0,
    }


def test_logging_multi_dataloader_on_epoch_end(tmp_path):
    class CustomBoringModel(BoringModel):
        def __init__(self):
            super().__init__()
            self.outputs = [[], []]

        def test_step(self, batch, batch_idx, dataloader_idx):
            value = dataloader_idx + 1
            self.log("foo", value)
            self.outputs[dataloader_idx].append(value)
            return value

        def on_test_epoch_end(self):
            self.log("foobar", sum(sum(o) for o in self.outputs))

        def test_dataloader(self):
            return [super().test_dataloader(), super().test_dataloader()]

    model = CustomBoringModel()
    mock_log_metrics = RecordingLogger()
    trainer = Trainer(default_root_dir=tmp_path, limit_test_batches=1, logger=mock_log_metrics)
    results = test(trainer, model)

    # what's logged in `on_test_epoch_end` gets included in the results of each dataloader
    assert results == [
        {"foo/dataloader_idx_0": 1, "foobar": 3},
        {"foo/dataloader_idx_1": 2, "foobar": 3},
    ]
    cb_metrics = set(trainer.callback_metrics)
    assert cb_metrics == {"foo/dataloader_idx_0", "foo/dataloader_idx_1", "foobar"}

    logged_metrics = mock_log_metrics.mock_calls[0].kwargs["metrics"]
    cb_metrics.add("epoch")
    assert set(logged_metrics) == cb_metrics
