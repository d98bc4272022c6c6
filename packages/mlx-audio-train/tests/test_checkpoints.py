"""Checkpoint files, the `last` link, pruning, versioning and clear errors for bad files."""

import json
import logging
import os

import mlx.core as mx
import numpy as np
import pytest
from train_testing import TinyClassifier, assert_trees_equal, blobs, flat

from mlx_audio.data import DataLoader
from mlx_audio.train import CheckpointError, Trainer
from mlx_audio.train.callbacks import ModelCheckpoint


def fit(root, callbacks, epochs=3, **kwargs):
    loader = DataLoader(blobs(64), batch_size=16, shuffle=True, seed=0)
    trainer = Trainer(
        max_epochs=epochs,
        seed=0,
        default_root_dir=str(root),
        enable_progress_bar=False,
        logger=False,
        callbacks=callbacks,
        **kwargs,
    )
    model = TinyClassifier(total_steps=12)
    trainer.fit(model, loader, DataLoader(blobs(32, seed=1), batch_size=16))
    return trainer, model


def test_directory_layout_and_loading_weights_into_a_fresh_model(tmp_path):
    trainer, model = fit(
        tmp_path,
        [ModelCheckpoint(monitor="val_loss", save_top_k=2, filename="{epoch:02d}-{val_loss:.3f}")],
    )
    folder = tmp_path / "checkpoints"
    last = folder / "last"
    assert last.is_symlink() and not os.path.isabs(os.readlink(last))
    assert sorted(p.name for p in last.iterdir()) == [
        "model.safetensors",
        "optimizer.safetensors",
        "trainer_state.json",
    ]
    state = json.loads((last / "trainer_state.json").read_text())
    assert state["global_step"] == 12 and state["epoch_finished"] and "mlx" in state["versions"]
    kept = sorted(p.name for p in folder.iterdir() if p.name != "last")
    assert len(kept) <= 3 and all(
        name.startswith("epoch=") and "val_loss=" in name for name in kept
    )
    callback = trainer.checkpoint_callback
    assert callback.best_model_score == min(callback.best_k_models.values())
    fresh = TinyClassifier().load_checkpoint(callback.best_model_path)  # the one documented call
    best_weights = mx.load(os.path.join(callback.best_model_path, "model.safetensors"))
    for key, value in best_weights.items():
        np.testing.assert_array_equal(
            np.array(value),
            np.array(dict(__import__("mlx.utils").utils.tree_flatten(fresh.parameters()))[key]),
        )
    assert_trees_equal(TinyClassifier().load_checkpoint(last).parameters(), model.parameters())


def test_pruning_never_deletes_last_and_ignores_foreign_folders(tmp_path):
    nested = tmp_path / "checkpoints" / "clap"  # the tutorial nests one run's folder in another's
    nested.mkdir(parents=True)
    (nested / "keep.txt").write_text("not ours")
    fit(tmp_path, [ModelCheckpoint(monitor="val_loss", mode="max", save_top_k=1)], epochs=4)
    folder = tmp_path / "checkpoints"
    assert (nested / "keep.txt").exists()
    target = os.path.realpath(folder / "last")
    assert os.path.isdir(target)
    ours = [p for p in folder.iterdir() if p.name.startswith("epoch=")]
    assert len(ours) <= 2


def test_rerun_in_the_same_folder_never_overwrites(tmp_path):
    fit(tmp_path, [ModelCheckpoint(save_top_k=-1)], epochs=2)
    first = {
        p.name: (p / "trainer_state.json").read_text()
        for p in (tmp_path / "checkpoints").iterdir()
        if p.name != "last"
    }
    fit(tmp_path, [ModelCheckpoint(save_top_k=-1)], epochs=2)
    names = {p.name for p in (tmp_path / "checkpoints").iterdir()}
    for name, content in first.items():
        assert (tmp_path / "checkpoints" / name / "trainer_state.json").read_text() == content
    assert any(name.endswith("-v1") for name in names)


def test_ckpt_path_best_and_resume_of_a_finished_run(tmp_path, caplog):
    caplog.set_level(logging.INFO, "mlx_audio.train")
    trainer, _ = fit(
        tmp_path, [ModelCheckpoint(monitor="val_accuracy", mode="max", save_top_k=1)], epochs=2
    )
    result = trainer.validate(
        TinyClassifier(), DataLoader(blobs(32, seed=1), batch_size=16), ckpt_path="best"
    )
    assert set(result[0]) == {"val_loss", "val_accuracy"}
    # the best checkpoint's weights were loaded: its validation metrics come back (a fresh
    # model's val_loss is far off)
    best = json.loads(
        open(os.path.join(trainer.checkpoint_callback.best_model_path, "trainer_state.json")).read()
    )
    assert result[0] == pytest.approx(
        {k: best["callback_metrics"][k] for k in ("val_loss", "val_accuracy")}, rel=1e-6
    )
    fit(
        tmp_path, [ModelCheckpoint(monitor="val_accuracy", mode="max")], epochs=2
    )  # new run, same folder
    trainer = Trainer(
        max_epochs=2, enable_progress_bar=False, logger=False, default_root_dir=str(tmp_path)
    )
    trainer.fit(
        TinyClassifier(total_steps=12), DataLoader(blobs(64), batch_size=16), ckpt_path="last"
    )
    assert "already finished" in caplog.text


@pytest.fixture
def saved(tmp_path):
    fit(tmp_path, [ModelCheckpoint()], epochs=1)
    return os.path.realpath(tmp_path / "checkpoints" / "last")


def resume(tmp_path, path, model=None):
    trainer = Trainer(
        max_epochs=3,
        enable_progress_bar=False,
        logger=False,
        default_root_dir=str(tmp_path / "again"),
    )
    trainer.fit(
        model or TinyClassifier(total_steps=12),
        DataLoader(blobs(64), batch_size=16),
        ckpt_path=path,
    )


def test_truncated_weights_are_refused_with_the_file_name(tmp_path, saved):
    weights = os.path.join(saved, "model.safetensors")
    data = open(weights, "rb").read()
    open(weights, "wb").write(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"model\.safetensors does not match the checksum"):
        resume(tmp_path, saved)


def test_tampered_json_is_refused(tmp_path, saved):
    path = os.path.join(saved, "trainer_state.json")
    open(path, "w").write("{not json")
    with pytest.raises(CheckpointError, match="trainer_state.json is unreadable"):
        resume(tmp_path, saved)


def test_missing_key_and_wrong_shape_name_the_key(tmp_path, saved):
    weights = os.path.join(saved, "model.safetensors")
    arrays = mx.load(weights)
    del arrays["fc2.bias"]
    mx.save_safetensors(weights, arrays)
    state_path = os.path.join(saved, "trainer_state.json")
    state = json.load(open(state_path))
    import hashlib  # re-sign the edited file: the checksum would catch it first; test the key check

    state["sha256"]["model.safetensors"] = hashlib.sha256(open(weights, "rb").read()).hexdigest()
    json.dump(state, open(state_path, "w"))
    with pytest.raises(
        CheckpointError, match=r"model\.safetensors: model key 'fc2.bias' is missing"
    ):
        resume(tmp_path, saved)


def test_a_different_model_is_refused(tmp_path, saved):
    with pytest.raises(
        CheckpointError,
        match=r"'fc1.weight' has shape \(16, 8\) in the checkpoint but \(16, 5\) here",
    ):
        resume(tmp_path, saved, TinyClassifier(dim=5, total_steps=12))


def test_no_checkpoint_at_an_explicit_path(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint directory"):
        resume(tmp_path, str(tmp_path / "nowhere"))


def test_deletion_is_atomic_and_leftovers_are_cleaned(tmp_path):
    import subprocess
    import sys

    from mlx_audio.train.checkpoint import clean_leftovers, delete_checkpoint, save_checkpoint

    ckpt = save_checkpoint(str(tmp_path / "epoch=0-step=1"), {"w": mx.ones(3)}, {}, {"epoch": 0})
    delete_checkpoint(ckpt)
    assert os.listdir(tmp_path) == []  # renamed to .trash-..., then removed
    # what crashed runs leave: a deletion cut short, a write of a dead process, a stray link
    (tmp_path / ".trash-epoch=0-step=2-abcd").mkdir()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / f".tmp-epoch=0-step=3-{dead.pid}-abcd").mkdir()
    live = tmp_path / f".tmp-epoch=0-step=4-{os.getpid()}-abcd"  # a write in progress: kept
    live.mkdir()
    os.symlink("nowhere", tmp_path / ".last-1234")
    removed = clean_leftovers(str(tmp_path))
    assert sorted(removed) == sorted(
        [".trash-epoch=0-step=2-abcd", f".tmp-epoch=0-step=3-{dead.pid}-abcd", ".last-1234"]
    )
    assert os.listdir(tmp_path) == [live.name]


def _edit_state(saved, edit):
    path = os.path.join(saved, "trainer_state.json")
    state = json.load(open(path))
    edit(state)
    json.dump(state, open(path, "w"))


EDITS = {
    "sha256 removed": (lambda s: s.pop("sha256"), "'sha256'.*missing"),
    "sha256 without the model": (
        lambda s: s["sha256"].pop("model.safetensors"),
        "no checksum for model.safetensors",
    ),
    "format_version 99": (lambda s: s.update(format_version=99), "'format_version' is 99.*newer"),
    "format_version removed": (lambda s: s.pop("format_version"), "'format_version' is None"),
    "epoch negative": (lambda s: s.update(epoch=-1), "'epoch' must be a non-negative int"),
    "global_step a string": (
        lambda s: s.update(global_step="7"),
        "'global_step' must be a non-negative int",
    ),
    "rng removed": (lambda s: s.pop("rng"), "'rng' is missing"),
    "rng garbled": (lambda s: s.update(rng={"numpy": [1, 2], "python": []}), "'rng' must hold"),
    "rng_base a float": (lambda s: s.update(rng_base=1.5), "'rng_base' must be int"),
    "callbacks a list": (lambda s: s.update(callbacks=[]), "'callbacks' must be dict"),
    "callback_metrics text": (
        lambda s: s.update(callback_metrics={"val_loss": "low"}),
        "'callback_metrics' must map",
    ),
    "accumulated_batches negative": (
        lambda s: s.update(accumulated_batches=-2),
        "'accumulated_batches'",
    ),
    "not an object": (lambda s: s.clear() or s.update(x=1), "'format_version' is None"),
}


@pytest.mark.parametrize("edit", list(EDITS))
def test_every_edited_field_is_refused_naming_file_and_key(tmp_path, saved, edit):
    change, message = EDITS[edit]
    _edit_state(saved, change)
    with pytest.raises(CheckpointError, match=f"trainer_state.json.*{message}"):
        resume(tmp_path, saved)


class StartRecorder(TinyClassifier):
    """Keeps its parameters as they are when training starts (after a checkpoint loaded)."""

    def on_train_start(self) -> None:
        object.__setattr__(self, "at_start", flat(self.parameters()))  # not a parameter


def test_unverified_loading_is_an_explicit_choice(tmp_path, saved, monkeypatch):
    _edit_state(saved, lambda s: s.pop("sha256"))
    monkeypatch.setenv("MLX_AUDIO_UNVERIFIED_CHECKPOINTS", "1")
    model = StartRecorder(total_steps=12)
    initial = flat(model.parameters())
    resume(tmp_path, saved, model)  # loads, unverified, because the user said so
    stored = {k: np.array(v) for k, v in mx.load(os.path.join(saved, "model.safetensors")).items()}
    assert stored.keys() == model.at_start.keys() == initial.keys()
    for key, value in stored.items():  # training resumed from the checkpoint's weights
        np.testing.assert_array_equal(model.at_start[key], value, err_msg=key)
        assert not np.array_equal(initial[key], value), key  # not the model's own ones


FULL_DISK = """
import resource, signal, sys
from train_testing import TinyClassifier, blobs
from mlx_audio.data import DataLoader
from mlx_audio.train import Trainer

signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead
resource.setrlimit(resource.RLIMIT_FSIZE, (1000, 1000))  # the weights file needs more
trainer = Trainer(max_epochs=1, logger=False, enable_progress_bar=False, default_root_dir=sys.argv[1])
trainer.fit(TinyClassifier(), DataLoader(blobs(16), batch_size=4))
"""


def test_a_checkpoint_that_cannot_be_written_names_its_path(tmp_path):
    """MLX says only "[write] Unable to write 8 bytes to file."; the error names the checkpoint,
    the free space, and leaves no temporary directory behind."""
    import subprocess
    import sys

    here = os.path.dirname(__file__)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([here, os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run(
        [sys.executable, "-c", FULL_DISK, str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert result.returncode != 0
    target = os.path.join(os.path.realpath(tmp_path), "checkpoints", "epoch=0-step=4")
    assert f"OSError: could not write the checkpoint {target}: [write]" in result.stderr, (
        result.stderr[-2000:]
    )
    assert "MiB free on its file system" in result.stderr
    assert os.listdir(tmp_path / "checkpoints") == []
