"""A port of Lightning 2.6's ``tests/tests_pytorch/trainer/logging_/test_train_loop_logging.py``.

Each test keeps Lightning's name, inputs and assertions; ``BoringModel`` is the MLX one of
``boring_classes.py``. Changes: metric values are floats (Lightning: tensors); a test that keeps
values from inside a step runs with ``compile=False`` (in a compiled step they are placeholders);
``mock.patch(TensorBoardLogger.log_metrics)`` is a ``RecordingLogger``. Left out: torchmetrics,
``sync_dist`` across devices (tests/lightning_parity and test_distributed.py cover ours),
``dataloader_iter`` and the private ``trainer._results``.
"""

from __future__ import annotations

import collections
import itertools
from re import escape
from unittest.mock import call

import mlx.core as mx
import numpy as np
import pytest
from boring_classes import BoringModel, RandomDataset, RecordingLogger, fit

from mlx_audio.data import DataLoader
from mlx_audio.train import Trainer, callbacks
from mlx_audio.train.callbacks import ModelCheckpoint

MisconfigurationException = ValueError  # Lightning's MisconfigurationException


def test__training_step__log(tmp_path):
    """Tests that only training_step can be used."""

    class TestModel(BoringModel):
        def training_step(self, batch, batch_idx):
            out = super().training_step(batch, batch_idx)
            loss = out["loss"]
            self.log("default", loss)
            self.log("l_s", loss, on_step=True, on_epoch=False, prog_bar=False, logger=True)
            self.log("l_e", loss, on_step=False, on_epoch=True, prog_bar=False, logger=True)
            self.log("l_se", loss, on_step=True, on_epoch=True, prog_bar=False, logger=True)
            self.log("p_s", loss, on_step=True, on_epoch=False, prog_bar=True, logger=False)
            self.log("p_e", loss, on_step=False, on_epoch=True, prog_bar=True, logger=False)
            self.log("p_se", loss, on_step=True, on_epoch=True, prog_bar=True, logger=False)
            return loss

    model = TestModel()
    model.val_dataloader = None

    trainer = Trainer(
        default_root_dir=tmp_path,
        limit_train_batches=2,
        limit_val_batches=2,
        max_epochs=2,
        log_every_n_steps=1,
        enable_model_summary=False,
        callbacks=[ModelCheckpoint(monitor="l_se")],
    )
    fit(trainer, model)

    logged_metrics = set(trainer.logged_metrics)
    assert logged_metrics == {"default", "l_e", "l_s", "l_se_step", "l_se_epoch"}

    pbar_metrics = set(trainer.progress_bar_metrics)
    assert pbar_metrics == {"p_e", "p_s", "p_se_step", "p_se_epoch"}

    assert set(trainer.callback_metrics) == (logged_metrics | pbar_metrics | {"p_se", "l_se"})
    assert all(isinstance(v, float) for v in trainer.callback_metrics.values())
    assert all(isinstance(v, float) for v in trainer.logged_metrics.values())
    assert all(isinstance(v, float) for v in trainer.progress_bar_metrics.values())


def test__training_step__epoch_end__log(tmp_path):
    class TestModel(BoringModel):
        def training_step(self, batch, batch_idx):
            out = super().training_step(batch, batch_idx)
            loss = out["loss"]
            self.log("a", loss, on_step=True, on_epoch=True)
            self.log_dict({"a1": loss, "a2": loss})
            return out

        def on_train_epoch_end(self):
            self.log("b1", mx.array(1.0))
            self.log("b", mx.array(2.0), on_epoch=True, prog_bar=True, logger=True)

    model = TestModel()
    model.val_dataloader = None

    trainer = Trainer(
        default_root_dir=tmp_path,
        limit_train_batches=2,
        limit_val_batches=2,
        max_epochs=2,
        log_every_n_steps=1,
        enable_model_summary=False,
    )
    fit(trainer, model)

    logged_metrics = set(trainer.logged_metrics)
    assert logged_metrics == {"a_step", "a_epoch", "b", "b1", "a1", "a2"}

    pbar_metrics = set(trainer.progress_bar_metrics)
    assert pbar_metrics == {"b"}

    assert set(trainer.callback_metrics) == (logged_metrics | pbar_metrics | {"a"})


@pytest.mark.parametrize(
    ("batches", "fx", "result"),
    [(3, min, 0), (3, mx.max, 2), (11, max, 10), (5, "avg", 2), (5, "SUM", 10)],
)
def test__training_step__log_max_reduce_fx(tmp_path, batches, fx, result):
    """Tests that log works correctly with different tensor types."""

    class TestModel(BoringModel):
        def training_step(self, batch, batch_idx):
            acc = self.step(batch[0])
            self.log(
                "foo",
                mx.array(batch_idx).astype(mx.int64),
                on_step=False,
                on_epoch=True,
                reduce_fx=fx,
            )
            return acc

        def validation_step(self, batch, batch_idx):
            loss = self.step(batch)
            self.log(
                "bar",
                mx.array(batch_idx).astype(mx.float32),
                on_step=False,
                on_epoch=True,
                reduce_fx=fx,
            )
            return {"x": loss}

    model = TestModel()
    trainer = Trainer(
        default_root_dir=tmp_path,
        limit_train_batches=batches,
        limit_val_batches=batches,
        max_epochs=2,
        enable_model_summary=False,
    )
    fit(trainer, model)

    # make sure types are correct
    assert trainer.logged_metrics["foo"] == result
    assert trainer.logged_metrics["bar"] == result


def test_log_works_in_train_callback(tmp_path):
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

        def on_train_start(self, _, pl_module):
            self.make_logging(
                pl_module,
                "on_train_start",
                on_steps=[False],
                on_epochs=[True],
                prob_bars=self.choices,
            )

        def on_train_epoch_start(self, _, pl_module):
            self.make_logging(
                pl_module,
                "on_train_epoch_start",
                on_steps=[False],
                on_epochs=[True],
                prob_bars=self.choices,
            )

        def on_train_batch_start(self, _, pl_module, *__):
            self.make_logging(
                pl_module,
                "on_train_batch_start",
                on_steps=self.choices,
                on_epochs=self.choices,
                prob_bars=self.choices,
            )

        def on_train_batch_end(self, _, pl_module, *__):
            self.make_logging(
                pl_module,
                "on_train_batch_end",
                on_steps=self.choices,
                on_epochs=self.choices,
                prob_bars=self.choices,
            )

        def on_train_epoch_end(self, _, pl_module):
            self.make_logging(
                pl_module,
                "on_train_epoch_end",
                on_steps=[False],
                on_epochs=[True],
                prob_bars=self.choices,
            )

    class TestModel(BoringModel):
        seen_losses = []

        def training_step(self, batch, batch_idx):
            loss = super().training_step(batch, batch_idx)["loss"]
            self.seen_losses.append(loss)
            self.log("train_loss", loss, prog_bar=True)
            return {"loss": loss}

    model = TestModel()
    cb = TestCallback()
    trainer = Trainer(
        default_root_dir=tmp_path,
        limit_train_batches=2,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        max_epochs=1,
        callbacks=[cb],
        compile=False,  # seen_losses keeps values from inside the step
    )

    fit(trainer, model)

    # Lightning reads trainer.progress_bar_callback.get_metrics(...)["train_loss"]
    assert trainer.progress_bar_metrics["train_loss"] == pytest.approx(model.seen_losses[-1].item())
    assert trainer.callback_metrics["train_loss"] == pytest.approx(model.seen_losses[-1].item())

    assert cb.call_counter == {
        "on_train_start": 1,
        "on_train_epoch_start": 1,
        "on_train_batch_start": 2,
        "on_train_batch_end": 2,
        "on_train_epoch_end": 1,
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


def test_progress_bar_metrics_contains_values_on_train_epoch_end(tmp_path: str):
    class TestModel(BoringModel):
        def training_step(self, *args):
            self.log(
                "foo", mx.array(self.current_epoch), on_step=False, on_epoch=True, prog_bar=True
            )
            return super().training_step(*args)

        def on_train_epoch_end(self, *_):
            self.log(
                "foo_2",
                mx.array(self.current_epoch),
                prog_bar=True,
                on_epoch=True,
                sync_dist=True,
                reduce_fx="sum",
            )
            object.__setattr__(self, "on_train_epoch_end_called", True)

    class TestProgressBar(callbacks.Callback):  # Lightning: a TQDMProgressBar's get_metrics
        def on_train_end(self, trainer, model):
            metrics = trainer.progress_bar_metrics
            assert metrics["foo"] == trainer.current_epoch - 1
            assert metrics["foo_2"] == trainer.current_epoch - 1
            object.__setattr__(model, "callback_on_train_end_called", True)

    progress_bar = TestProgressBar()
    trainer = Trainer(
        default_root_dir=tmp_path,
        callbacks=[progress_bar],
        max_epochs=2,
        limit_train_batches=1,
        limit_val_batches=0,
        enable_checkpointing=False,
        logger=False,
        enable_model_summary=False,
        compile=False,  # current_epoch is read inside the step (frozen at trace time when compiled)
    )
    model = TestModel()
    fit(trainer, model)
    assert model.on_train_epoch_end_called
    assert model.callback_on_train_end_called


@pytest.mark.parametrize(
    "value",
    [
        None,
        {"a": None},
        {"a": 1},
        {"a": {"b": None}},
        {"a": {"b": 1}},
        "foo",
        [1, 2, 3],
        (1, 2, 3),
        [[1, 2], 3],
    ],
)
def test_log_invalid_raises(tmp_path, value):
    class TestModel(BoringModel):
        def training_step(self, *args):
            self.log("foo", value)

    trainer = Trainer(default_root_dir=tmp_path, fast_dev_run=1)
    model = TestModel()
    match = escape(f"self.log(foo, {value})` was called")
    with pytest.raises(ValueError, match=match):
        fit(trainer, model)


def test_logging_raises(tmp_path):
    class TestModel(BoringModel):
        def training_step(self, batch, batch_idx):
            self.log("foo/dataloader_idx_0", -1)

    def new_trainer():  # Lightning reuses one Trainer; a fit after a failed one continues its
        # epoch here (Lightning restarts it), so each case gets a fresh Trainer
        return Trainer(
            default_root_dir=tmp_path,
            limit_train_batches=1,
            limit_val_batches=0,
            max_epochs=1,
            enable_progress_bar=False,
            enable_checkpointing=False,
            logger=False,
            enable_model_summary=False,
        )

    trainer = new_trainer()
    model = TestModel()
    with pytest.raises(
        MisconfigurationException, match="`self.log` with the key `foo/dataloader_idx_0`"
    ):
        fit(trainer, model)

    # (Lightning's torchmetrics cases are left out: MLX has no Metric objects to log)

    class TestModel(BoringModel):
        def training_step(self, *args):
            self.log("foo", -1, prog_bar=False)
            self.log("foo", -1, prog_bar=True)
            return super().training_step(*args)

    model, trainer = TestModel(), new_trainer()
    with pytest.raises(
        MisconfigurationException, match=r"self.log\(foo, ...\)` twice in `training_step`"
    ):
        fit(trainer, model)

    class TestModel(BoringModel):
        def training_step(self, *args):
            self.log("foo", -1, reduce_fx=mx.argmax)
            return super().training_step(*args)

    model, trainer = TestModel(), new_trainer()
    with pytest.raises(
        MisconfigurationException, match=r"reduce_fx={min,max,mean,sum}\)` are supported"
    ):
        fit(trainer, model)

    class TestModel(BoringModel):
        def on_train_start(self):
            self.log("foo", mx.array([1.0, 2.0]))

    model, trainer = TestModel(), new_trainer()
    with pytest.raises(ValueError, match="tensor must have a single element"):
        fit(trainer, model)


def test_sanity_metrics_are_reset(tmp_path):
    class TestModel(BoringModel):
        def validation_step(self, batch, batch_idx):
            output = super().validation_step(batch, batch_idx)
            if self.trainer.sanity_checking:
                self.log("val_loss", output["x"], prog_bar=True, logger=True)
            return output

        def training_step(self, batch, batch_idx):
            loss = super().training_step(batch, batch_idx)["loss"]
            if batch_idx == 0:
                assert self.trainer.progress_bar_metrics == {}
                assert self.trainer.logged_metrics == {}
                assert self.trainer.callback_metrics == {}
            self.log("train_loss", loss, prog_bar=True, logger=True)
            return loss

    trainer = Trainer(
        default_root_dir=tmp_path,
        max_epochs=1,
        limit_train_batches=1,
        limit_val_batches=2,
        num_sanity_val_steps=2,
        compile=False,  # `if batch_idx == 0` needs a concrete batch_idx
    )
    fit(trainer, TestModel())

    assert "val_loss" not in trainer.progress_bar_metrics


def test_on_epoch_logging_with_sum_and_on_batch_start(tmp_path):
    class TestModel(BoringModel):
        def on_train_epoch_end(self):
            self.log("on_train_epoch_end", 3.0, reduce_fx="mean")
            # (Lightning also reads the private trainer._results here)
            assert all(v == 3 for v in self.trainer.callback_metrics.values())

        def on_validation_epoch_end(self):
            self.log("on_validation_epoch_end", 3.0, reduce_fx="mean")
            assert all(v == 3 for v in self.trainer.callback_metrics.values())

        def on_train_batch_start(self, *_):
            self.log("on_train_batch_start", 1.0, on_step=False, on_epoch=True, reduce_fx="sum")

        def on_train_batch_end(self, *_):
            self.log("on_train_batch_end", 1.0, on_step=False, on_epoch=True, reduce_fx="sum")

        def on_validation_batch_start(self, *_):
            self.log("on_validation_batch_start", 1.0, reduce_fx="sum")

        def on_validation_batch_end(self, *_):
            self.log("on_validation_batch_end", 1.0, reduce_fx="sum")

    model = TestModel()
    trainer = Trainer(
        default_root_dir=tmp_path,
        enable_progress_bar=False,
        limit_train_batches=3,
        limit_val_batches=3,
        num_sanity_val_steps=3,
        max_epochs=1,
    )
    train_data = DataLoader(RandomDataset(32, 64), batch_size=2)
    val_data = DataLoader(RandomDataset(32, 64), batch_size=2)
    trainer.fit(model, train_dataloaders=train_data, val_dataloaders=val_data)


def test_log_metrics_epoch_step_values(tmp_path):
    """Tests the default epoch and step values logged."""

    class MyModel(BoringModel):
        def training_step(self, batch, batch_idx):
            self.log("foo", 0.0, on_step=True, on_epoch=True)
            return super().training_step(batch, batch_idx)

    model = MyModel()
    mock_log_metrics = RecordingLogger()
    trainer = Trainer(
        default_root_dir=tmp_path,
        limit_train_batches=2,
        limit_val_batches=0,
        max_epochs=2,
        log_every_n_steps=1,
        enable_model_summary=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        logger=mock_log_metrics,
    )
    fit(trainer, model)

    assert mock_log_metrics.mock_calls == [
        call(metrics={"foo_step": 0.0, "epoch": 0}, step=0),
        call(metrics={"foo_step": 0.0, "epoch": 0}, step=1),
        call(metrics={"foo_epoch": 0.0, "epoch": 0}, step=1),
        call(metrics={"foo_step": 0.0, "epoch": 1}, step=2),
        call(metrics={"foo_step": 0.0, "epoch": 1}, step=3),
        call(metrics={"foo_epoch": 0.0, "epoch": 1}, step=3),
    ]


def test_log_on_train_start(tmp_path):
    """Tests that logged metrics on_train_start get reset after the first epoch."""

    class MyModel(BoringModel):
        def on_train_start(self):
            self.log("foo", 123)

    model = MyModel()
    mock_log_metrics = RecordingLogger()
    trainer = Trainer(
        default_root_dir=tmp_path,
        limit_train_batches=1,
        limit_val_batches=0,
        max_epochs=2,
        log_every_n_steps=1,
        enable_model_summary=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        logger=mock_log_metrics,
    )
    fit(trainer, model)

    assert mock_log_metrics.mock_calls == [call(metrics={"foo": 123.0, "epoch": 0}, step=0)]
    assert trainer.max_epochs > 1


def test_unsqueezed_tensor_logging(tmp_path):
    """Lightning logs by hand with ``_current_fx_name``; here from ``on_train_epoch_end``."""

    class MyModel(BoringModel):
        def on_train_epoch_end(self):
            self.log("foo", mx.array([1.2]), on_epoch=True)

    trainer = Trainer(
        default_root_dir=tmp_path, max_epochs=1, limit_train_batches=1, limit_val_batches=0
    )
    fit(trainer, MyModel())
    assert trainer.callback_metrics["foo"] == pytest.approx(1.2)
