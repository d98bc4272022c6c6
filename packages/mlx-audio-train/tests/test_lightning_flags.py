"""Lightning's debugging and launch flags on real runs: ``barebones``, ``overfit_batches``,
``limit_predict_batches``, ``reload_dataloaders_every_n_epochs``, ``strategy``/``num_nodes``,
``sync_batchnorm`` (real ``mlx.launch`` processes) and ``detect_anomaly``. How they resolve and
fail is compared with real Lightning in tests/lightning_parity/test_flags.py."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import mlx.core as mx
import mlx.nn as nn
import numpy as np
import pytest
from train_testing import TinyClassifier, blobs

from mlx_audio.data import DataLoader
from mlx_audio.train import DataModule, Trainer
from mlx_audio.train.callbacks import Callback

HERE = Path(__file__).parent
QUIET = {"enable_progress_bar": False, "enable_model_summary": False}


class Seen(Callback):
    """The first input row of every training and validation batch, per epoch."""

    def __init__(self) -> None:
        self.train: list[list[float]] = []
        self.val: list[list[float]] = []

    def on_train_epoch_start(self, trainer, module):
        self.train.append([])

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        self.train[-1].append(float(batch[0][0, 0]))

    def on_validation_batch_start(self, trainer, module, batch, batch_idx, dataloader_idx=0):
        if not trainer.sanity_checking:
            self.val.append(float(batch[0][0, 0]))


# -- barebones ------------------------------------------------------------------------------------
class Logs(TinyClassifier):
    def training_step(self, batch, batch_idx):
        loss, _ = self.compute_loss(batch)
        self.log("my_loss", loss)
        return loss


def test_barebones_writes_nothing_and_self_log_is_off(in_tmp):
    trainer = Trainer(max_epochs=1, barebones=True)
    assert not trainer.loggers and trainer.checkpoint_callback is None
    assert trainer.num_sanity_val_steps == 0 and trainer.log_every_n_steps == 0
    with pytest.warns(UserWarning, match=r"`Trainer\(barebones=True\)` is configured"):
        trainer.fit(Logs(), DataLoader(blobs(32), batch_size=8))
    assert trainer.global_step == 4
    assert "my_loss" not in trainer.callback_metrics
    assert os.listdir(in_tmp) == []  # no checkpoints, no logs
    with pytest.raises(ValueError, match="Checkpointing can impact raw speed"):
        Trainer(barebones=True, enable_checkpointing=True)


# Ported from Lightning 2.6 (tests/tests_pytorch/trainer/flags/test_barebones.py).
def test_barebones_disables_logging():
    module = TinyClassifier()
    module.trainer = Trainer(barebones=True)
    with pytest.warns(match=r"barebones=True\)` is configured"):
        module.log("foo", 1.0)
    with pytest.warns(match=r"barebones=True\)` is configured"):
        module.log_dict({"foo": 1.0})


def test_barebones_argument_selection(caplog):
    from mlx_audio.train import PassThroughProfiler
    from mlx_audio.train.callbacks import ModelSummary, ProgressBar

    with caplog.at_level(logging.INFO, logger="mlx_audio.train"):
        trainer = Trainer(barebones=True)
    assert "running in `Trainer(barebones=True)` mode" in caplog.text
    assert trainer.barebones
    assert trainer.checkpoint_callback is None
    assert not trainer.loggers
    assert not any(isinstance(cb, (ProgressBar, ModelSummary)) for cb in trainer.callbacks)
    assert not trainer.log_every_n_steps
    assert not trainer.num_sanity_val_steps
    assert not trainer.fast_dev_run
    assert not trainer.detect_anomaly
    assert isinstance(trainer.profiler, PassThroughProfiler)


def test_barebones_raises():
    with pytest.raises(ValueError, match=r"enable_checkpointing=True\)` was passed"):
        Trainer(barebones=True, enable_checkpointing=True)
    with pytest.raises(ValueError, match=r"logger=True\)` was passed"):
        Trainer(barebones=True, logger=True)
    with pytest.raises(ValueError, match=r"enable_progress_bar=True\)` was passed"):
        Trainer(barebones=True, enable_progress_bar=True)
    with pytest.raises(ValueError, match=r"enable_model_summary=True\)` was passed"):
        Trainer(barebones=True, enable_model_summary=True)
    with pytest.raises(ValueError, match=r"log_every_n_steps=1\)` was passed"):
        Trainer(barebones=True, log_every_n_steps=1)
    with pytest.raises(ValueError, match=r"num_sanity_val_steps=1\)` was passed"):
        Trainer(barebones=True, num_sanity_val_steps=1)
    with pytest.raises(ValueError, match=r"fast_dev_run=1\)` was passed"):
        Trainer(barebones=True, fast_dev_run=1)
    with pytest.raises(ValueError, match=r"detect_anomaly=True\)` was passed"):
        Trainer(barebones=True, detect_anomaly=True)
    with pytest.raises(ValueError, match=r"profiler='simple'\)` was passed"):
        Trainer(barebones=True, profiler="simple")


# -- overfit_batches and limit_predict_batches ------------------------------------------------------
def test_overfit_batches_trains_and_validates_the_same_first_batches_in_order(in_tmp):
    data, val = blobs(64), blobs(32, seed=1)
    first = [float(data[i * 8][0][0]) for i in range(3)]
    first_val = [float(val[i * 8][0][0]) for i in range(3)]
    seen = Seen()
    trainer = Trainer(max_epochs=3, overfit_batches=3, callbacks=[seen], logger=False, **QUIET)
    with pytest.warns(UserWarning) as caught:
        trainer.fit(
            TinyClassifier(),
            DataLoader(data, batch_size=8, shuffle=True, seed=1),
            DataLoader(val, batch_size=8, shuffle=True, seed=2),
        )
    said = [str(w.message) for w in caught]
    for prefix in ("train", "val"):
        assert (
            f"You requested to overfit but enabled {prefix} dataloader shuffling. We are turning "
            f"off the {prefix} dataloader shuffling for you." in said
        )
    assert seen.train == [first, first, first]
    assert seen.val == first_val * 3
    assert trainer.limit_train_batches == trainer.limit_val_batches == 3


def test_overfit_batches_fraction_takes_that_share_of_each_loader(in_tmp):
    seen = Seen()
    trainer = Trainer(max_epochs=1, overfit_batches=0.25, callbacks=[seen], logger=False, **QUIET)
    trainer.fit(TinyClassifier(), DataLoader(blobs(64), batch_size=8))  # 8 batches, in order
    assert len(seen.train[0]) == 2 and trainer.num_training_batches == 2


class Predicts(TinyClassifier):
    def __init__(self) -> None:
        super().__init__()
        self.hooks: list[str] = []

    def predict_step(self, batch, batch_idx):
        return self(batch[0])

    def on_predict_start(self):
        self.hooks.append("on_predict_start")


@pytest.mark.parametrize("limit, count", [(2, 2), (0.5, 3), (1.0, 6), (10, 6)])
def test_limit_predict_batches(in_tmp, limit, count):
    trainer = Trainer(limit_predict_batches=limit, logger=False, max_epochs=1, **QUIET)
    assert len(trainer.predict(Predicts(), DataLoader(blobs(48), batch_size=8))) == count


def test_limit_predict_batches_zero_returns_none_without_hooks(in_tmp):
    model = Predicts()
    trainer = Trainer(limit_predict_batches=0, logger=False, max_epochs=1, **QUIET)
    assert trainer.predict(model, DataLoader(blobs(48), batch_size=8)) is None
    assert model.hooks == []


# -- reload_dataloaders_every_n_epochs ---------------------------------------------------------------
class Data(DataModule):
    """Each train loader made holds other data (its seed), so the test sees which one trained."""

    def __init__(self) -> None:
        super().__init__()
        object.__setattr__(self, "made", 0)

    def train_dataloader(self):
        object.__setattr__(self, "made", self.made + 1)
        return DataLoader(blobs(16, seed=self.made), batch_size=8)

    def val_dataloader(self):
        return DataLoader(blobs(16, seed=100), batch_size=8)


def test_reload_dataloaders_asks_the_datamodule_every_n_epochs(in_tmp):
    data, seen = Data(), Seen()
    trainer = Trainer(
        max_epochs=5, reload_dataloaders_every_n_epochs=2, callbacks=[seen], logger=False, **QUIET
    )
    trainer.fit(TinyClassifier(), datamodule=data)
    assert data.made == 3  # fit's, then at epochs 2 and 4 (Lightning's rule)
    firsts = [float(blobs(16, seed=s)[0][0][0]) for s in (1, 1, 2, 2, 3)]
    assert [epoch[0] for epoch in seen.train] == firsts


class HookedModel(TinyClassifier):
    made = 0

    def train_dataloader(self):
        HookedModel.made += 1
        return DataLoader(blobs(16), batch_size=8)


def test_reload_keeps_loaders_given_to_fit(in_tmp):
    """Lightning: a loader passed to fit is its own source; the module's hook is not asked."""
    trainer = Trainer(max_epochs=3, reload_dataloaders_every_n_epochs=1, logger=False, **QUIET)
    trainer.fit(HookedModel(), DataLoader(blobs(16), batch_size=8))
    assert HookedModel.made == 0 and trainer.global_step == 6


# -- strategy and num_nodes ---------------------------------------------------------------------------
@pytest.mark.parametrize("strategy", ["auto", "ddp", "DDP", "single_device"])
def test_strategies_that_map_to_what_was_launched(strategy):
    assert Trainer(strategy=strategy, max_epochs=1, logger=False).strategy == strategy.lower()


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"strategy": "ddp_spawn"}, "starts its own processes, which MLX does not do"),
        ({"strategy": "fsdp"}, "is not available with MLX"),
        ({"strategy": object()}, "there are no Strategy objects with MLX"),
        ({"num_nodes": 2}, "num_nodes=2 does not divide the 1 processes"),
        ({"num_nodes": 0}, "num_nodes"),
        ({"sync_batchnorm": "yes"}, "sync_batchnorm must be a bool"),
        ({"reload_dataloaders_every_n_epochs": -1}, "reload_dataloaders_every_n_epochs"),
        ({"profiler": "pytorch"}, "it can only be one of"),
    ],
)
def test_bad_flags_say_what_is_valid(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Trainer(max_epochs=1, logger=False, **kwargs)


# -- sync_batchnorm -------------------------------------------------------------------------------------
@pytest.mark.skipif(
    shutil.which("mlx.launch", path=str(Path(sys.executable).parent)) is None,
    reason="mlx.launch is not installed next to this Python",
)
def test_sync_batchnorm_equals_one_process_with_the_global_batch(tmp_path):
    """Two ``mlx.launch`` processes with batch 8 each train as one with batch 16 (weights and
    running statistics within 1e-5) with ``sync_batchnorm=True``; without it they do not."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
    }
    launcher = str(Path(sys.executable).parent / "mlx.launch")

    def run(out: Path, ranks: int, sync: str) -> dict[str, np.ndarray]:
        out.mkdir()
        script = [str(HERE / "syncbn_script.py"), str(out), str(16 // ranks), sync]
        command = (
            [sys.executable, *script]
            if ranks == 1
            else [launcher, "-n", "2", "--backend", "ring", "--python", sys.executable, *script]
        )
        done = subprocess.run(
            command, cwd=HERE, env=env, capture_output=True, text=True, timeout=300
        )
        assert (out / "weights.safetensors").exists(), done.stdout[-2000:] + done.stderr[-2000:]
        return {k: np.array(v) for k, v in mx.load(str(out / "weights.safetensors")).items()}

    alone = run(tmp_path / "alone", 1, "1")
    synced = run(tmp_path / "synced", 2, "1")
    for key in alone:
        np.testing.assert_allclose(synced[key], alone[key], atol=1e-5, err_msg=key)
    unsynced = run(tmp_path / "unsynced", 2, "0")
    assert np.abs(unsynced["bn.running_var"] - alone["bn.running_var"]).max() > 1e-2


# -- detect_anomaly ---------------------------------------------------------------------------------------
class Log(nn.Module):
    """The layer that goes wrong: a log of its input (negative at batch 2)."""

    def __call__(self, x):
        return mx.log(x)


class Breaks(TinyClassifier):
    def __init__(self) -> None:
        super().__init__(dropout=0.0)
        self.proj = nn.Linear(3, 4)
        self.log_layer = Log()
        self.out = nn.Linear(4, 3)

    def compute_loss(self, batch):
        x, y = batch
        z = mx.abs(self.proj(self(x))) + mx.where(self._batch_idx == 2, -100.0, 1.0)
        out = self.out(self.log_layer(z))
        return mx.mean(nn.losses.cross_entropy(out, y))

    def training_step(self, batch, batch_idx):
        object.__setattr__(self, "_batch_idx", batch_idx)
        return super().training_step(batch, batch_idx)


@pytest.mark.parametrize("compile", [True, False])
@pytest.mark.parametrize("on_nonfinite_loss", ["raise", "skip"])
def test_detect_anomaly_names_the_module_and_the_parameters(in_tmp, compile, on_nonfinite_loss):
    trainer = Trainer(
        max_epochs=1,
        detect_anomaly=True,
        compile=compile,
        on_nonfinite_loss=on_nonfinite_loss,
        logger=False,
        enable_checkpointing=False,
        **QUIET,
    )
    with pytest.raises(FloatingPointError) as caught:
        trainer.fit(Breaks(), DataLoader(blobs(48), batch_size=8))
    message = str(caught.value)
    assert "batch 2" in message
    assert "the first module whose output went non-finite is log_layer (Log)" in message
    assert "non-finite gradients of" in message and "proj.weight" in message
    plain = Trainer(max_epochs=1, logger=False, enable_checkpointing=False, **QUIET)
    with pytest.raises(FloatingPointError) as caught:  # without it: the step, not the module
        plain.fit(Breaks(), DataLoader(blobs(48), batch_size=8))
    assert "log_layer" not in str(caught.value)


# Ported from Lightning 2.6 (tests/tests_pytorch/trainer/flags/test_limit_batches.py).
@pytest.mark.parametrize(
    "argument",
    [
        "limit_train_batches",
        "limit_val_batches",
        "limit_test_batches",
        "limit_predict_batches",
        "overfit_batches",
    ],
)
@pytest.mark.parametrize("value", [1, 1.0])
def test_limit_batches_info_message(caplog, argument, value):
    with caplog.at_level(logging.INFO, logger="mlx_audio.train"):
        Trainer(max_epochs=1, logger=False, **{argument: value})
    assert f"`Trainer({argument}={value})` was configured" in caplog.text
    message = f"configured so {'1' if isinstance(value, int) else '100%'}"
    assert message in caplog.text
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="mlx_audio.train"):
        Trainer(max_epochs=1, logger=False)  # the message should not appear by default
    assert message not in caplog.text
