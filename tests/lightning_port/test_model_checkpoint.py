"""Ports of Lightning 2.6's ``checkpointing/test_model_checkpoint.py``: checkpoint names
(``format_checkpoint_name``), ``monitor=None`` keeping one name, ``current_score``,
``trainer.checkpoint_callbacks`` and the default directory under the logger's version.

Same names, inputs and assertions. Changes: a checkpoint is a directory, so it has no ``.ckpt``
extension (``ModelCheckpoint.FILE_EXTENSION`` is ``""``) and is read back from its
``trainer_state.json`` instead of ``torch.load``; the default ``save_last=True`` adds a
``last`` link next to the checkpoints (a documented difference), so directory listings leave it
out. ``ModelCheckpoint``'s state key is ours (``state_key``), not Lightning's string.
Lightning's ``MisconfigurationException`` is a ``ValueError`` here.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from boring_classes import BoringModel, fit

from mlx_audio.loggers import TensorBoardLogger
from mlx_audio.train import Trainer
from mlx_audio.train.callbacks import ModelCheckpoint

MisconfigurationException = ValueError


def _listdir(path) -> list[str]:
    """``os.listdir`` without our ``last`` link (``save_last=True`` is the default here)."""
    return [name for name in os.listdir(path) if name != "last"]


def test_model_checkpoint_format_checkpoint_name(tmp_path, monkeypatch):
    model_checkpoint = ModelCheckpoint(dirpath=tmp_path)

    # empty filename:
    ckpt_name = model_checkpoint._format_checkpoint_name("", {"epoch": 3, "step": 2})
    assert ckpt_name == "epoch=3-step=2"

    ckpt_name = model_checkpoint._format_checkpoint_name(
        None, {"epoch": 3, "step": 2}, prefix="test"
    )
    assert ckpt_name == "test-epoch=3-step=2"

    # no groups case:
    ckpt_name = model_checkpoint._format_checkpoint_name("ckpt", {}, prefix="test")
    assert ckpt_name == "test-ckpt"

    # no prefix
    ckpt_name = model_checkpoint._format_checkpoint_name(
        "{epoch:03d}-{acc}", {"epoch": 3, "acc": 0.03}
    )
    assert ckpt_name == "epoch=003-acc=0.03"

    # one metric name is substring of another
    ckpt_name = model_checkpoint._format_checkpoint_name(
        "{epoch:03d}-{epoch_test:03d}", {"epoch": 3, "epoch_test": 3}
    )
    assert ckpt_name == "epoch=003-epoch_test=003"

    # prefix
    model_checkpoint.CHECKPOINT_JOIN_CHAR = "@"
    ckpt_name = model_checkpoint._format_checkpoint_name(
        "{epoch},{acc:.5f}", {"epoch": 3, "acc": 0.03}, prefix="test"
    )
    assert ckpt_name == "test@epoch=3,acc=0.03000"
    monkeypatch.undo()

    # non-default char for equals sign
    model_checkpoint.CHECKPOINT_EQUALS_CHAR = ":"
    ckpt_name = model_checkpoint._format_checkpoint_name(
        "{epoch:03d}-{acc}", {"epoch": 3, "acc": 0.03}
    )
    assert ckpt_name == "epoch:003-acc:0.03"
    monkeypatch.undo()

    # no dirpath set
    ckpt_name = ModelCheckpoint(monitor="early_stop_on", dirpath=None).format_checkpoint_name(
        {"epoch": 3, "step": 2}
    )
    assert ckpt_name == "epoch=3-step=2"
    ckpt_name = ModelCheckpoint(monitor="early_stop_on", dirpath="").format_checkpoint_name(
        {"epoch": 5, "step": 4}
    )
    assert ckpt_name == "epoch=5-step=4"

    # CWD
    ckpt_name = ModelCheckpoint(monitor="early_stop_on", dirpath=".").format_checkpoint_name(
        {"epoch": 3, "step": 4}
    )
    assert ckpt_name == str(Path(".").resolve() / "epoch=3-step=4")

    # with version
    ckpt = ModelCheckpoint(monitor="early_stop_on", dirpath=tmp_path, filename="name")
    ckpt_name = ckpt.format_checkpoint_name({}, ver=3)
    assert ckpt_name == str(tmp_path / "name-v3")

    # with prefix
    ckpt_name = ModelCheckpoint(
        monitor="early_stop_on", dirpath=tmp_path, filename="name"
    ).format_checkpoint_name({}, prefix="test")
    assert ckpt_name == str(tmp_path / "test-name")

    # using slashes
    ckpt = ModelCheckpoint(monitor="early_stop_on", dirpath=None, filename="{epoch}_{val/loss:.5f}")
    ckpt_name = ckpt.format_checkpoint_name({"epoch": 4, "val/loss": 0.03})
    assert ckpt_name == "epoch=4_val/loss=0.03000"

    # auto_insert_metric_name=False
    ckpt_name = model_checkpoint._format_checkpoint_name(
        "epoch={epoch:03d}-val_acc={val/acc}",
        {"epoch": 3, "val/acc": 0.03},
        auto_insert_metric_name=False,
    )
    assert ckpt_name == "epoch=003-val_acc=0.03"

    # dots in the metric name
    ckpt_name = model_checkpoint._format_checkpoint_name(
        "mAP@0.50={val/mAP@0.50:.4f}", {"val/mAP@0.50": 0.2}, auto_insert_metric_name=False
    )
    assert ckpt_name == "mAP@0.50=0.2000"


def test_none_monitor_top_k(tmp_path):
    """Test that a warning appears for positive top_k with monitor=None."""
    with pytest.raises(
        MisconfigurationException,
        match=r"ModelCheckpoint\(save_top_k=3, monitor=None\) is not a valid*",
    ):
        ModelCheckpoint(dirpath=tmp_path, save_top_k=3)
    # These should not fail
    ModelCheckpoint(dirpath=tmp_path, save_top_k=-1)
    ModelCheckpoint(dirpath=tmp_path, save_top_k=0)
    ModelCheckpoint(dirpath=tmp_path, save_top_k=1)


def test_none_monitor_not_alternating(tmp_path):
    """Regression test for the case where the callback saved alternating `model.ckpt` and
    `model-v1.ckpt` files."""

    class ListDirModel(BoringModel):
        def on_train_epoch_start(self):
            if self.current_epoch > 0:
                assert _listdir(tmp_path) == ["model"]

    model = ListDirModel()
    model_checkpoint = ModelCheckpoint(
        dirpath=tmp_path, monitor=None, save_top_k=1, filename="model"
    )
    trainer = Trainer(
        callbacks=model_checkpoint,
        limit_train_batches=1,
        limit_val_batches=0,
        max_epochs=3,
        enable_model_summary=False,
        enable_progress_bar=False,
        logger=False,
    )
    fit(trainer, model)


def test_configure_model_checkpoint(tmp_path):
    """Test all valid and invalid ways a checkpoint callback can be passed to the Trainer."""
    kwargs = {"default_root_dir": tmp_path}
    callback1 = ModelCheckpoint(monitor="foo")
    callback2 = ModelCheckpoint(monitor="bar")

    # no callbacks
    trainer = Trainer(enable_checkpointing=False, callbacks=[], **kwargs)
    assert not any(isinstance(c, ModelCheckpoint) for c in trainer.callbacks)
    assert trainer.checkpoint_callback is None

    # default configuration
    trainer = Trainer(callbacks=[], **kwargs)
    assert sum(1 for c in trainer.callbacks if isinstance(c, ModelCheckpoint)) == 1
    assert isinstance(trainer.checkpoint_callback, ModelCheckpoint)

    # custom callback passed to callbacks list, enable_checkpointing=True is ignored
    trainer = Trainer(enable_checkpointing=True, callbacks=[callback1], **kwargs)
    assert [c for c in trainer.callbacks if isinstance(c, ModelCheckpoint)] == [callback1]
    assert trainer.checkpoint_callback == callback1

    # multiple checkpoint callbacks
    trainer = Trainer(callbacks=[callback1, callback2], **kwargs)
    assert trainer.checkpoint_callback == callback1
    assert trainer.checkpoint_callbacks == [callback1, callback2]

    with pytest.raises(
        MisconfigurationException, match="`enable_checkpointing=False` but found `ModelCheckpoint`"
    ):
        Trainer(enable_checkpointing=False, callbacks=[callback1], **kwargs)


def _callback_state(ckpt: Path, callback: ModelCheckpoint) -> dict:
    state = json.loads((ckpt / "trainer_state.json").read_text())
    return state["callbacks"][callback.state_key]


def test_current_score(tmp_path):
    """Check that the current_score value is correct and was saved."""

    class TestModel(BoringModel):
        def training_step(self, *args):
            self.log("foo", (self.current_epoch + 1) / 10)
            return super().training_step(*args)

    model_checkpoint = ModelCheckpoint(dirpath=tmp_path, save_top_k=3, monitor="foo", mode="min")
    trainer = Trainer(
        default_root_dir=tmp_path,
        max_epochs=3,
        limit_train_batches=1,
        limit_val_batches=1,
        callbacks=[model_checkpoint],
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        compile=False,  # the step logs current_epoch (frozen in a compiled step)
    )
    fit(trainer, TestModel())
    assert model_checkpoint.current_score == pytest.approx(0.3)
    ckpts = [p for p in tmp_path.iterdir() if p.name != "last"]
    ckpts = [_callback_state(ckpt, model_checkpoint) for ckpt in ckpts]
    assert sorted(ckpt["current_score"] for ckpt in ckpts) == pytest.approx([0.1, 0.2, 0.3])


@pytest.mark.parametrize("mode", ["min", "max"])
def test_current_score_when_nan(tmp_path, mode: str):
    """Check that ModelCheckpoint handles NaN values correctly."""

    class TestModel(BoringModel):
        def training_step(self, *args):
            self.log("foo", float("nan"))
            return super().training_step(*args)

    model_checkpoint = ModelCheckpoint(dirpath=tmp_path, save_top_k=1, monitor="foo", mode=mode)
    trainer = Trainer(
        default_root_dir=tmp_path,
        max_epochs=1,
        limit_train_batches=1,
        limit_val_batches=1,
        callbacks=[model_checkpoint],
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    fit(trainer, TestModel())
    expected = float("inf" if mode == "min" else "-inf")
    assert model_checkpoint.best_model_score == expected
    assert model_checkpoint.current_score == expected


class LogInTwoMethods(BoringModel):
    def training_step(self, batch, batch_idx):
        out = super().training_step(batch, batch_idx)
        self.log("early_stop_on", out["loss"])
        return out

    def on_validation_epoch_end(self):
        self.log("val_acc", 1.23)


@pytest.mark.parametrize(
    ("logger_version", "expected"), [(None, "version_0"), (1, "version_1"), ("awesome", "awesome")]
)
def test_model_checkpoint_path(tmp_path, logger_version, expected: str):
    """Test that "version_" prefix is only added when logger's version is an integer."""
    model = LogInTwoMethods()
    logger = TensorBoardLogger(tmp_path, version=logger_version)

    trainer = Trainer(default_root_dir=tmp_path, overfit_batches=0.2, max_epochs=2, logger=logger)
    fit(trainer, model)

    ckpt_version = Path(trainer.checkpoint_callback.dirpath).parent.name
    assert ckpt_version == expected
