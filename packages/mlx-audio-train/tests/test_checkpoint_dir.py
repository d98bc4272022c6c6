"""ModelCheckpoint's default directory, as Lightning's (the first logger's
``save_dir/name/version_N/checkpoints``, without loggers ``default_root_dir/checkpoints``), and
``ckpt_path="last"`` going on from the newest ``last`` of the logger's earlier versions (a
documented difference: Lightning looks in the new version only and starts from scratch)."""

import logging
import os

import pytest
from train_testing import TinyClassifier, blobs

from mlx_audio.data import DataLoader
from mlx_audio.loggers import CSVLogger, Logger
from mlx_audio.train import Trainer
from mlx_audio.train.callbacks import ModelCheckpoint


class Remote(Logger):
    """A logger without a local ``save_dir`` (a tracking server's URI, or none): Lightning takes
    the Trainer's ``default_root_dir`` instead; without a version yet (a run that starts in the
    background), ``default_root_dir/checkpoints``."""

    def __init__(self, save_dir=None, version=3):
        self._save_dir, self._version = save_dir, version

    @property
    def save_dir(self):
        return self._save_dir

    @property
    def name(self) -> str:
        return "remote"

    @property
    def version(self):
        return self._version

    def log_metrics(self, metrics, step):
        pass

    def log_hyperparams(self, params):
        pass


def fit(root, ckpt_path=None, max_steps=4, **kwargs):
    trainer = Trainer(
        max_steps=max_steps,
        seed=0,
        default_root_dir=str(root),
        enable_progress_bar=False,
        num_sanity_val_steps=0,
        **kwargs,
    )
    model = TinyClassifier(total_steps=8)
    loader = DataLoader(blobs(64), batch_size=16, shuffle=True, seed=0)
    trainer.fit(model, loader, ckpt_path=ckpt_path)
    return trainer


@pytest.mark.parametrize(
    ("logger", "expected"),
    [
        (None, "logs/version_0/checkpoints"),  # the default CSVLogger(root, name="logs")
        (False, "checkpoints"),
        ("tb", "tb/run/awesome/checkpoints"),  # a string version as it is
        (Remote(), "remote/version_3/checkpoints"),
        (Remote("http://localhost:5000", "run-id"), "remote/run-id/checkpoints"),
        (Remote(version=None), "checkpoints"),
    ],
    ids=["csv", "none", "tensorboard", "no-save-dir", "uri", "no-version"],
)
def test_default_dirpath_is_lightnings(tmp_path, logger, expected):
    if logger == "tb":
        from mlx_audio.loggers import TensorBoardLogger

        logger = TensorBoardLogger(tmp_path / "tb", name="run", version="awesome")
    trainer = fit(tmp_path, max_steps=2, logger=logger)
    dirpath = trainer.checkpoint_callback.dirpath
    assert dirpath == os.path.realpath(tmp_path / expected)
    assert os.path.islink(os.path.join(dirpath, "last"))


def test_an_explicit_dirpath_is_kept(tmp_path):
    callback = ModelCheckpoint(dirpath=tmp_path / "mine")
    fit(tmp_path, max_steps=2, callbacks=[callback])
    assert callback.dirpath == os.path.realpath(tmp_path / "mine")
    assert [p for p in tmp_path.rglob("*") if p.name == "checkpoints"] == []


def test_last_goes_on_from_the_newest_earlier_logger_version(tmp_path, caplog):
    first = fit(tmp_path, max_steps=2)
    v0 = os.path.realpath(tmp_path / "logs" / "version_0" / "checkpoints")
    assert first.checkpoint_callback.dirpath == v0
    with caplog.at_level(logging.INFO, logger="mlx_audio"):
        second = fit(tmp_path, ckpt_path="last", max_steps=4)  # a new Trainer: version_1
    assert second.ckpt_path == os.path.join(v0, "last")
    assert "the newest `last` of an earlier version of this logger" in caplog.text
    assert second.global_step == 4  # went on from step 2
    v1 = os.path.realpath(tmp_path / "logs" / "version_1" / "checkpoints")
    assert second.checkpoint_callback.dirpath == v1
    assert os.path.realpath(os.path.join(v1, "last")).endswith("step=4")
    third = fit(tmp_path, ckpt_path="last", max_steps=4)  # the newest: version_1's, done
    assert third.ckpt_path == os.path.join(v1, "last") and third.global_step == 4
    # validate on a fresh Trainer loads it too, without Lightning's "no last checkpoint" warning
    trainer = Trainer(default_root_dir=str(tmp_path), enable_progress_bar=False)
    trainer.validate(
        TinyClassifier(total_steps=8), DataLoader(blobs(32), batch_size=16), ckpt_path="last"
    )
    assert trainer.ckpt_path == os.path.join(v1, "last")


def test_last_without_any_earlier_version_starts_fresh(tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger="mlx_audio"):
        trainer = fit(tmp_path, ckpt_path="last", max_steps=2, logger=CSVLogger(tmp_path, "x"))
    assert trainer.ckpt_path is None and "starting from scratch" in caplog.text


def test_a_changed_dirpath_keeps_only_best_model_path_with_lightnings_warning(tmp_path):
    callback = ModelCheckpoint(monitor="train_loss", dirpath=tmp_path / "a")
    fit(tmp_path, max_steps=2, callbacks=[callback], logger=False)
    best = callback.best_model_path
    assert best and callback.best_k_models
    again = ModelCheckpoint(monitor="train_loss", dirpath=tmp_path / "b")
    state = {"dirpath": callback.dirpath, **callback.state_dict()}
    with pytest.warns(UserWarning, match="The dirpath has changed from .* won't be reloaded"):
        again.load_state_dict(state)
    assert again.best_model_path == best and again.best_k_models == {}
