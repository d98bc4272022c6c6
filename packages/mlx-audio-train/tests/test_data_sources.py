"""Several validation/test/predict loaders, DataModule, and save_hyperparameters /
load_from_checkpoint: what the Lightning ports (tests/lightning_port) do not cover -- the
tutorial's ``compute_loss`` idiom over several loaders, the JSON rule for hyperparameters, our
checkpoint directories and ``last`` links, rank-0 ``prepare_data``."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import mlx.core as mx
import mlx.nn as nn
import numpy as np
import pytest
from train_testing import TinyClassifier, blobs, flat

from mlx_audio.data import DataLoader
from mlx_audio.loggers import CSVLogger
from mlx_audio.train import DataModule, Trainer
from mlx_audio.train import distributed as dist
from mlx_audio.train.callbacks import Callback


def _trainer(tmp_path, **kwargs):
    defaults = dict(
        default_root_dir=str(tmp_path),
        enable_progress_bar=False,
        enable_model_summary=False,
        logger=False,
        seed=0,
    )
    return Trainer(**{**defaults, **kwargs})


def _means(model, loader):
    """The batch-size-weighted mean of compute_loss's loss and accuracy over a loader."""
    model.eval()
    total, acc, n = 0.0, 0.0, 0
    for batch in loader:
        loss, metrics = model.compute_loss(batch)
        size = batch[0].shape[0]
        total += loss.item() * size
        acc += metrics["accuracy"].item() * size
        n += size
    return total / n, acc / n


def test_compute_loss_idiom_over_several_validation_loaders(tmp_path):
    """The tutorial's idiom logs val_loss/dataloader_idx_N per loader, as Lightning would name a
    self.log("val_loss") in a validation_step with several loaders; validate returns one dict each."""
    model = TinyClassifier()
    a = DataLoader(blobs(32, seed=1), batch_size=8)
    b = DataLoader(blobs(24, seed=2), batch_size=8)
    trainer = _trainer(tmp_path, max_epochs=1)
    trainer.fit(model, DataLoader(blobs(32), batch_size=8), val_dataloaders=[a, b])
    names = set(trainer.callback_metrics)
    for i in (0, 1):
        assert {f"val_loss/dataloader_idx_{i}", f"val_accuracy/dataloader_idx_{i}"} <= names
    assert "val_loss" not in names
    assert trainer.num_val_batches == [4, 3]

    results = trainer.validate(model, {"first": a, "second": b})
    assert [set(r) for r in results] == [
        {f"val_loss/dataloader_idx_{i}", f"val_accuracy/dataloader_idx_{i}"} for i in (0, 1)
    ]
    for i, loader in enumerate((a, b)):
        loss, acc = _means(model, loader)
        assert results[i][f"val_loss/dataloader_idx_{i}"] == pytest.approx(loss, rel=1e-5)
        assert results[i][f"val_accuracy/dataloader_idx_{i}"] == pytest.approx(acc, rel=1e-5)


def test_test_limits_each_loader_and_a_list_of_batches_is_one_loader(tmp_path):
    model = TinyClassifier()
    data = blobs(32)
    x, y = (mx.array(a) for a in data.arrays)
    batches = [(x[i : i + 8], y[i : i + 8]) for i in range(0, 32, 8)]
    trainer = _trainer(tmp_path, limit_test_batches=2)
    (one,) = trainer.test(model, batches)  # a list of (x, y) batches: one loader
    assert set(one) == {"test_loss", "test_accuracy"}
    assert trainer.num_test_batches == [2]
    two = trainer.test(model, [DataLoader(data, batch_size=8), DataLoader(data, batch_size=4)])
    assert trainer.num_test_batches == [2, 2]
    assert len(two) == 2 and "test_loss/dataloader_idx_1" in two[1]


def test_predict_returns_a_list_per_loader(tmp_path):
    seen = []

    class Model(TinyClassifier):
        def predict_step(self, batch, batch_idx, dataloader_idx=0):
            seen.append(dataloader_idx)
            return self(batch[0])

    model = Model()
    data = blobs(16)
    trainer = _trainer(tmp_path)
    single = trainer.predict(model, DataLoader(data, batch_size=8))
    assert len(single) == 2 and single[0].shape == (8, 3)
    assert seen == [0, 0]  # the default: Lightning passes no dataloader_idx with one loader
    seen.clear()
    several = trainer.predict(
        model, [DataLoader(data, batch_size=8), DataLoader(data, batch_size=16)]
    )
    assert [len(x) for x in several] == [2, 1]
    assert seen == [0, 0, 1]
    assert trainer.num_predict_batches == [2, 1]


def test_loaders_from_the_module_or_the_datamodule_and_lightnings_errors(tmp_path):
    model = TinyClassifier()
    trainer = _trainer(tmp_path, max_epochs=1)
    with pytest.raises(TypeError, match=r"`Trainer.validate\(\)` requires a `LightningModule`"):
        trainer.validate()
    with pytest.raises(ValueError, match="`train_dataloader` must be implemented"):
        trainer.fit(model)

    class Data(DataModule):
        def train_dataloader(self):
            return DataLoader(blobs(16), batch_size=8)

    loader = DataLoader(blobs(16), batch_size=8)
    with pytest.raises(ValueError, match="You cannot pass `train_dataloader` or `val_dataloaders`"):
        trainer.fit(model, loader, datamodule=Data())
    with pytest.raises(ValueError, match=r"You cannot pass both `trainer.test\(dataloaders"):
        trainer.test(model, loader, datamodule=Data())
    with pytest.raises(ValueError, match="`test_dataloader` must be implemented"):
        trainer.test(model, datamodule=Data())
    with pytest.raises(TypeError, match="train_dataloaders holds several loaders"):
        trainer.fit(model, [loader, loader])
    trainer.fit(model, Data())  # a DataModule where the loaders go is the datamodule
    assert trainer.global_step == 2 and trainer.num_val_batches == []
    assert len(trainer.predict(dataloaders=loader)) == 2  # the model of the previous run

    class WithLoaders(TinyClassifier):
        def train_dataloader(self):
            return DataLoader(blobs(16), batch_size=8)

        def val_dataloader(self):
            return [DataLoader(blobs(8), batch_size=8), DataLoader(blobs(8), batch_size=4)]

    trainer = _trainer(tmp_path, max_epochs=1)
    trainer.fit(WithLoaders())
    assert trainer.num_val_batches == [1, 2]


@pytest.mark.parametrize(
    ("read", "sanity", "expected"),
    [  # what Lightning 2.6.6 records for the same module and callback
        (False, 2, ["on_sanity_check_start", "val_dataloader", "train_dataloader"]),
        (False, 0, ["train_dataloader", "val_dataloader"]),
        (
            True,
            2,
            ["train_dataloader", ("estimated", 2), "on_sanity_check_start", "val_dataloader"],
        ),
    ],
)
def test_fit_asks_for_the_loaders_when_lightning_does(tmp_path, read, sanity, expected):
    """The validation loaders at the sanity check, the train loader after it; the train loader
    first when configure_optimizers reads estimated_stepping_batches (Lightning loads it then)."""
    called = []

    class Recorder(Callback):
        def on_sanity_check_start(self, trainer, module):
            called.append("on_sanity_check_start")

        def on_train_start(self, trainer, module):
            called.append("on_train_start")

    class Model(TinyClassifier):
        def setup(self, stage):
            called.append("setup")

        def configure_optimizers(self):
            called.append("configure_optimizers")
            if read:
                called.append(("estimated", self.trainer.estimated_stepping_batches))
            return super().configure_optimizers()

        def on_fit_start(self):
            called.append("on_fit_start")

        def train_dataloader(self):
            called.append("train_dataloader")
            return DataLoader(blobs(16), batch_size=8)

        def val_dataloader(self):
            called.append("val_dataloader")
            return DataLoader(blobs(16), batch_size=8)

    trainer = _trainer(tmp_path, max_epochs=1, num_sanity_val_steps=sanity, callbacks=[Recorder()])
    trainer.fit(Model())
    configured = ["configure_optimizers", *expected[:2]] if read else ["configure_optimizers"]
    rest = expected[2:] if read else expected
    assert called == ["setup", *configured, "on_fit_start", *rest, "on_train_start"]


def test_prepare_data_runs_on_rank_zero_only(tmp_path, monkeypatch):
    calls = []

    class Data(DataModule):
        def prepare_data(self):
            calls.append("prepare")

        def setup(self, stage):
            calls.append(stage)

        def test_dataloader(self):
            return DataLoader(blobs(8), batch_size=8)

    trainer = _trainer(tmp_path)
    trainer.test(TinyClassifier(), datamodule=Data())
    assert calls == ["prepare", "test"]
    calls.clear()
    monkeypatch.setattr(dist, "global_rank", lambda: 1)
    trainer.test(TinyClassifier(), datamodule=Data())
    assert calls == ["test"]


class Described(TinyClassifier):
    def __init__(self, width: int = 16, lr: float = 1e-2, tags=("a", "b"), head=None):
        super().__init__(lr=lr)
        self.save_hyperparameters(ignore="head")
        self.fc1 = nn.Linear(8, width)
        self.fc2 = head if head is not None else nn.Linear(width, 3)


def test_hyperparameters_rebuild_the_module_from_a_checkpoint_and_reach_the_logger(tmp_path):
    model = Described(width=12, lr=0.02)
    assert model.hparams == {"width": 12, "lr": 0.02, "tags": ("a", "b")}
    assert model.hparams.width == 12 and "_hparams" not in model  # not part of the module tree
    trainer = _trainer(tmp_path, max_epochs=1, logger=CSVLogger(str(tmp_path), name="logs"))
    trainer.fit(model, DataLoader(blobs(16), batch_size=8))
    logged = json.loads((tmp_path / "logs" / "version_0" / "hparams.json").read_text())
    assert logged["width"] == 12 and logged["lr"] == 0.02

    last = os.path.join(str(tmp_path), "logs", "version_0", "checkpoints", "last")  # the logger's
    with open(os.path.join(last, "trainer_state.json")) as f:
        state = json.load(f)
    assert state["hyper_parameters"] == {"width": 12, "lr": 0.02, "tags": ["a", "b"]}
    rebuilt = Described.load_from_checkpoint(last)  # the `last` link
    assert rebuilt.hparams.width == 12 and rebuilt.fc1.weight.shape == (12, 8)
    for key, value in flat(model.parameters()).items():
        np.testing.assert_array_equal(flat(rebuilt.parameters())[key], value)
    wider = Described.load_from_checkpoint(last, lr=0.5)
    assert wider.hparams.lr == 0.5
    with pytest.raises(Exception, match="model"):  # the weights are checked against the shapes
        Described.load_from_checkpoint(last, width=4)


def test_save_hyperparameters_refuses_what_json_cannot_hold():
    class Bad(TinyClassifier):
        def __init__(self, encoder, width=4):
            super().__init__()
            self.save_hyperparameters()

    with pytest.raises(TypeError, match=r"'encoder' is of type Linear.*ignore=\['encoder'\]"):
        Bad(nn.Linear(2, 2))
    with pytest.raises(TypeError, match=r"'encoder\[0\]' is of type array"):
        Bad([mx.zeros(2)])

    class Fine(TinyClassifier):
        def __init__(self, encoder, width=4):
            super().__init__()
            self.save_hyperparameters(ignore=["encoder"])

    assert Fine(nn.Linear(2, 2)).hparams == {"width": 4}


def test_a_validation_step_without_a_loader_warns_as_lightning(tmp_path):
    class Model(TinyClassifier):
        def validation_step(self, batch, batch_idx):
            self.log("v", 1.0)

    trainer = _trainer(tmp_path, max_epochs=1)
    with pytest.warns(UserWarning, match="You defined a `validation_step` but have no"):
        trainer.fit(Model(), DataLoader(blobs(16), batch_size=8))
    assert trainer.num_val_batches == []


def test_datamodule_hyperparameters_and_state_come_back_from_a_checkpoint(tmp_path):
    class Data(DataModule):
        def __init__(self, batch_size=8, root="data"):
            super().__init__()
            self.save_hyperparameters()
            self.seen = 0

        def train_dataloader(self):
            return DataLoader(blobs(16), batch_size=self.hparams.batch_size)

        def state_dict(self):
            return {"seen": 3}

        def load_state_dict(self, state):
            self.seen = state["seen"]

    loads = []

    class Model(TinyClassifier):
        def on_load_checkpoint(self, checkpoint):
            loads.append(checkpoint["global_step"])

    trainer = _trainer(tmp_path, max_epochs=1)
    trainer.fit(Model(), datamodule=Data(batch_size=4, root="elsewhere"))
    last = os.path.join(str(tmp_path), "checkpoints", "last")
    data = Data.load_from_checkpoint(last)
    assert data.hparams == {"batch_size": 4, "root": "elsewhere"} and data.seen == 3
    assert Data.load_from_checkpoint(last, batch_size=2).hparams.batch_size == 2
    Model.load_from_checkpoint(last)
    assert loads == [4]


def test_every_entry_point_logs_the_hyperparameters_unless_logger_false(tmp_path):
    class Recorder(CSVLogger):
        def __init__(self):
            super().__init__(str(tmp_path), name="rec")
            self.params = []

        def log_hyperparams(self, params):
            self.params.append(dict(params))

    class Quiet(TinyClassifier):
        def __init__(self, width=3):
            super().__init__()
            self.save_hyperparameters(logger=False)

    loader = DataLoader(blobs(8), batch_size=8)
    recorder = Recorder()
    trainer = _trainer(tmp_path, logger=recorder)
    trainer.validate(Described(width=5), loader)
    trainer.test(Described(width=6), loader)
    trainer.predict(Described(width=7), loader)
    trainer.validate(Quiet(), loader)
    trainer.validate(TinyClassifier(), loader)  # saved none: nothing logged
    assert [p["width"] for p in recorder.params] == [5, 6, 7]


_SCRIPT = """
import json, os, sys
from train_testing import TinyClassifier, blobs
from mlx_audio.data import ArrayDataset, DataLoader
from mlx_audio.train import DataModule, Trainer
from mlx_audio.train.callbacks import Callback

out = sys.argv[1]


class Data(DataModule):
    def prepare_data(self):
        with open(os.path.join(out, "prepared"), "a") as f:
            f.write(os.environ.get("MLX_RANK", "alone") + "\\n")

    def setup(self, stage):
        self.train, self.val = blobs(64, seed=1), blobs(48, seed=2)

    def train_dataloader(self):
        return DataLoader(self.train, batch_size=16 // self.trainer.world_size, shuffle=True)

    def val_dataloader(self):
        half = ArrayDataset(*(a[:24] for a in self.val.arrays))
        return [DataLoader(self.val, batch_size=8), DataLoader(half, batch_size=4)]


trainer = Trainer(max_epochs=2, seed=3, enable_progress_bar=False, enable_model_summary=False,
                  logger=False, default_root_dir=out)
trainer.fit(TinyClassifier(dropout=0.0), datamodule=Data())
results = trainer.validate(datamodule=Data())
with open(os.path.join(out, f"seen-{trainer.global_rank}.json"), "w") as f:
    json.dump({"results": results, "num_val_batches": trainer.num_val_batches}, f)
"""


@pytest.mark.skipif(
    shutil.which("mlx.launch", path=os.path.dirname(sys.executable)) is None,
    reason="mlx.launch is not installed next to this Python",
)
def test_two_ranks_prepare_once_and_validate_several_loaders_like_one_process(tmp_path):
    """Under mlx.launch -n 2: prepare_data runs on rank 0 only, each validation loader is split
    across the ranks, and the per-loader results equal a one-process run's."""
    here = os.path.dirname(os.path.abspath(__file__))
    script = tmp_path / "script.py"
    script.write_text(_SCRIPT)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([here, os.environ.get("PYTHONPATH", "")])}
    seen = {}
    for ranks in (1, 2):
        out = tmp_path / f"ranks{ranks}"
        out.mkdir()
        command = [sys.executable, str(script), str(out)]
        if ranks == 2:
            launcher = os.path.join(os.path.dirname(sys.executable), "mlx.launch")
            command = [launcher, "-n", "2", "--backend", "ring", "--python", *command]
        result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=240)
        assert result.returncode == 0, result.stderr[-3000:]
        seen[ranks] = [json.loads((out / f"seen-{r}.json").read_text()) for r in range(ranks)]
        prepared = (out / "prepared").read_text().split()
        assert prepared == ["alone", "alone"] if ranks == 1 else prepared == ["0", "0"]
    alone = seen[1][0]
    assert alone["num_val_batches"] == [6, 6]
    for rank in seen[2]:
        assert rank["num_val_batches"] == [3, 3]  # its half of each loader
        assert [set(r) for r in rank["results"]] == [set(r) for r in alone["results"]]
        for mine, reference in zip(rank["results"], alone["results"]):
            for key, value in reference.items():
                assert mine[key] == pytest.approx(value, abs=1e-5), key
