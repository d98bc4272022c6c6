"""Clear errors before the first step."""

import logging

import mlx.core as mx
import mlx.optimizers as optim
import pytest
from train_testing import TinyClassifier, blobs

from mlx_audio.data import DataLoader
from mlx_audio.train import Trainer
from mlx_audio.train.callbacks import (
    EarlyStopping,
    LearningRateMonitor,
    ModelCheckpoint,
    ProgressBar,
    Timer,
)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"max_epochs": -2}, "max_epochs must be an int >= 0"),
        ({"max_epochs": 1, "max_steps": -5}, "max_steps"),
        ({"max_epochs": 1, "accumulate_grad_batches": 0}, "accumulate_grad_batches"),
        ({"max_epochs": 1, "gradient_clip_val": -1.0}, "gradient_clip_val"),
        ({"max_epochs": 1, "gradient_clip_algorithm": "max"}, "gradient_clip_algorithm"),
        ({"max_epochs": 1, "precision": "8-true"}, "Precision .8-true. is invalid"),
        ({"max_epochs": 1, "precision": "64-true"}, "not available with MLX: MLX has no float64"),
        ({"max_epochs": 1, "limit_train_batches": 1.5}, "fraction in \\(0, 1\\]"),
        ({"max_epochs": 1, "val_check_interval": 0}, "val_check_interval"),
        ({"max_epochs": 1, "log_every_n_steps": 0}, "log_every_n_steps"),
        ({"max_epochs": 1, "num_sanity_val_steps": -2}, "num_sanity_val_steps"),
        ({"max_epochs": 1, "on_nonfinite_loss": "ignore"}, "on_nonfinite_loss"),
        ({"max_epochs": 1, "callbacks": [object()]}, "Callback instances"),
    ],
)
def test_trainer_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Trainer(**kwargs)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: EarlyStopping(mode="best"), "mode must be 'min' or 'max'"),
        (lambda: EarlyStopping(patience=-1), "patience"),
        (lambda: ModelCheckpoint(save_top_k=-2), "save_top_k"),
        (lambda: ModelCheckpoint(every_n_train_steps=-1), "every_n_train_steps"),
        (lambda: ModelCheckpoint(every_n_train_steps=5, every_n_epochs=1), "mutually exclusive"),
        (lambda: ProgressBar(refresh_rate=-1), "refresh_rate"),
        (lambda: LearningRateMonitor(logging_interval="batch"), "logging_interval"),
        (lambda: Timer("forever"), "DD:HH:MM:SS"),
    ],
)
def test_callback_arguments(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def trainer(**kwargs):
    return Trainer(
        **{
            "max_epochs": 1,
            "enable_progress_bar": False,
            "logger": False,
            "enable_checkpointing": False,
            **kwargs,
        }
    )


class NonScalar(TinyClassifier):
    def compute_loss(self, batch):
        x, y = batch
        return self(x).sum(axis=-1), {}


class BadMetric(TinyClassifier):
    def compute_loss(self, batch):
        loss, _ = super().compute_loss(batch)
        return loss, {"per_sample": mx.ones(4)}


class WrongOptimizer(TinyClassifier):
    def configure_optimizers(self):
        return {"optimizer": optim.SGD(learning_rate=0.1)}


@pytest.mark.parametrize(
    "model, message",
    [
        (NonScalar(), "must return a scalar loss"),
        (BadMetric(), "metric 'per_sample' .* must be a scalar"),
        (WrongOptimizer(), "must return an OptimizerConfig or an mlx.optimizers.Optimizer"),
    ],
)
def test_module_mistakes(model, message):
    with pytest.raises((ValueError, TypeError), match=message):
        trainer().fit(model, DataLoader(blobs(16), batch_size=4))


def test_monitor_that_is_never_logged_lists_the_logged_ones(tmp_path):
    loader = DataLoader(blobs(32), batch_size=8)
    # Lightning's EarlyStopping(strict=True): a RuntimeError listing what is logged
    with pytest.raises(RuntimeError, match=r"'val_acc'.*not available.*val_accuracy"):
        trainer(callbacks=[EarlyStopping(monitor="val_acc")], default_root_dir=str(tmp_path)).fit(
            TinyClassifier(), loader, loader
        )


def test_empty_loader(caplog):
    caplog.set_level(logging.INFO, "mlx_audio.train")
    t = trainer()
    t.fit(TinyClassifier(), [])  # Lightning: "No training batches", nothing trained
    assert t.global_step == 0 and "no training batches" in caplog.text


def test_nonfinite_loss_raises_with_the_step_or_is_skipped():
    class Exploding(TinyClassifier):
        def compute_loss(self, batch):
            loss, metrics = super().compute_loss(batch)
            return mx.where(
                self.fc1.bias.sum() == self.fc1.bias.sum(), loss * mx.nan, loss
            ), metrics

    with pytest.raises(FloatingPointError, match=r"at step 0 \(epoch 0, batch 0\): loss = nan"):
        trainer().fit(Exploding(), DataLoader(blobs(16), batch_size=4))
    t = trainer(on_nonfinite_loss="skip")
    model = Exploding()
    before = {k: v for k, v in model.parameters()["fc1"].items()}
    t.fit(model, DataLoader(blobs(16), batch_size=4))
    assert t.global_step == 0 and all(mx.array_equal(before[k], model.fc1[k]) for k in before)


def frozen() -> TinyClassifier:
    model = TinyClassifier()
    model.freeze()
    return model


@pytest.mark.parametrize(
    "model, data, message",
    [
        (
            frozen(),
            "loader",
            r"the TinyClassifier has no trainable parameter \(every one frozen.*unfreeze",
        ),
        (TinyClassifier(), "model", r"train_dataloaders is a TinyClassifier, a model: fit takes"),
        (TinyClassifier(), "data/train", r"train_dataloaders is a path \('data/train'\)"),
        (TinyClassifier(), ("loader", "data/val"), r"val_dataloaders is a path \('data/val'\)"),
        (TinyClassifier(), ("loader", "model"), r"val_dataloaders is a TinyClassifier, a model"),
    ],
    ids=["frozen", "model-as-data", "path-as-data", "path-as-val", "model-as-val"],
)
def test_fit_mistakes_say_what_went_wrong(model, data, message):
    """Each was a ValueError from deep inside (``[grad] Must specify at least one argument``,
    ``too many values to unpack``) before."""
    loader = DataLoader(blobs(16), batch_size=4)
    named = {"loader": loader, "model": model}
    train, val = data if isinstance(data, tuple) else (data, None)
    with pytest.raises((TypeError, ValueError), match=message):
        trainer().fit(model, named.get(train, train), named.get(val, val))


def test_a_generator_as_train_data_trains_one_epoch_and_says_so():
    def batches():
        yield from DataLoader(blobs(32), batch_size=8)

    t = trainer(max_epochs=3)
    with pytest.warns(
        UserWarning, match=r"iterator \(generator\).*once, so fit trains one epoch, not 3"
    ):
        t.fit(TinyClassifier(), batches())
    assert (t.current_epoch, t.global_step) == (1, 4)  # before: 3 epochs, the last two empty
