"""MLX's key is the compiled step's state, set once per fit (NOTE [the run's key] in _rng.py):
no host seeding per step, and a resumed run draws the uninterrupted run's masks."""

import json
import os
import shutil

import mlx.core as mx
import numpy as np
import pytest
from train_testing import TinyClassifier, assert_trees_equal, blobs, flat

from mlx_audio.data import DataLoader
from mlx_audio.train import Trainer
from mlx_audio.train.callbacks import ModelCheckpoint


class Recorded:
    def __init__(self) -> None:
        self.masks: list[np.ndarray] = []


class Masks(TinyClassifier):
    """Draws its dropout mask explicitly and, when run eagerly, records each one."""

    def __init__(self) -> None:
        super().__init__(total_steps=12, dropout=0.0)
        self.recorded = Recorded()  # not a list: MLX would take it for a parameter tree

    def __call__(self, x: mx.array) -> mx.array:
        h = mx.maximum(self.fc1(x), 0)
        if self.training:
            mask = mx.random.bernoulli(0.5, h.shape)
            if self.record:  # eager steps only
                self.recorded.masks.append(np.array(mask))
            h = mx.where(mask, h * 2, 0)
        return self.fc2(h)

    record = False


def run(root, compile: bool, accumulate: int = 1, ckpt_path=None, max_steps=8, val=False):
    trainer = Trainer(  # seed=11: seeds the model's initialisation below too
        max_steps=max_steps,
        max_epochs=-1,
        accumulate_grad_batches=accumulate,
        seed=11,
        compile=compile,
        default_root_dir=str(root),
        enable_progress_bar=False,
        logger=False,
        num_sanity_val_steps=0,
        val_check_interval=3 if val else 1.0,
        limit_val_batches=2 if val else 0,
        callbacks=[ModelCheckpoint(dirpath=str(root / "ckpt"), every_n_train_steps=1)],
    )
    model = Masks()
    model.record = not compile
    loader = DataLoader(blobs(96), batch_size=16, shuffle=True, seed=2)
    valid = DataLoader(blobs(32, seed=1), batch_size=16) if val else None
    trainer.fit(model, loader, valid, ckpt_path=ckpt_path)
    return model, trainer, np.array(mx.random.state[0])


def test_dropout_masks_after_resume_equal_the_uninterrupted_runs(tmp_path):
    full, _, _ = run(tmp_path / "full", compile=False)
    assert len(full.recorded.masks) == 8 and not all(
        (m == full.recorded.masks[0]).all() for m in full.recorded.masks
    )
    cut, _, _ = run(tmp_path / "cut", compile=False, max_steps=3)
    resumed, _, _ = run(tmp_path / "cut", compile=False, ckpt_path="last")
    assert len(resumed.recorded.masks) == 5
    for got, want in zip(cut.recorded.masks + resumed.recorded.masks, full.recorded.masks):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("accumulate, val", [(1, False), (2, True)])
def test_compiled_resume_ends_with_the_same_weights_and_key(tmp_path, accumulate, val):
    full, _, key = run(tmp_path / "full", compile=True, accumulate=accumulate, val=val)
    run(tmp_path / "cut", compile=True, accumulate=accumulate, max_steps=3, val=val)
    state = json.loads((tmp_path / "cut" / "ckpt" / "last" / "trainer_state.json").read_text())
    assert len(state["mlx_key"]) == 1 and len(state["mlx_key"][0]) == 2
    resumed, _, resumed_key = run(
        tmp_path / "cut", compile=True, accumulate=accumulate, ckpt_path="last", val=val
    )
    assert_trees_equal(resumed.parameters(), full.parameters())
    np.testing.assert_array_equal(resumed_key, key)


def test_compiled_and_eager_steps_draw_the_same_masks(tmp_path):
    """The key advances inside the compiled step exactly as in an eager one."""
    eager, _, eager_key = run(tmp_path / "eager", compile=False)
    compiled, _, compiled_key = run(tmp_path / "compiled", compile=True)
    np.testing.assert_array_equal(eager_key, compiled_key)
    a, b = flat(eager.parameters()), flat(compiled.parameters())
    for key in a:
        np.testing.assert_allclose(a[key], b[key], atol=1e-5, err_msg=key)


def test_the_host_never_seeds_the_key_per_step(tmp_path, monkeypatch):
    seeds: list[int] = []
    original = mx.random.seed

    def counted(value):
        seeds.append(value)
        original(value)

    monkeypatch.setattr(mx.random, "seed", counted)
    run(tmp_path / "short", compile=True, max_steps=2)
    short = len(seeds)
    seeds.clear()
    run(tmp_path / "long", compile=True, max_steps=12)
    assert len(seeds) == short == 2  # Trainer(seed=...) and the run's key, not one per step


def test_a_checkpoint_without_a_saved_key_resumes_deterministically(tmp_path):
    """Checkpoints written before the key was saved resume from seed_step at their step: the
    same on every resume (documented: not the uninterrupted run's later masks)."""
    run(tmp_path / "cut", compile=True, max_steps=3)
    old = tmp_path / "old"
    shutil.copytree(os.path.realpath(tmp_path / "cut" / "ckpt" / "last"), old)
    file = old / "trainer_state.json"
    state = json.loads(file.read_text())
    del state["mlx_key"]
    file.write_text(json.dumps(state))
    ends = []
    for _ in range(2):
        model, trainer, key = run(tmp_path / "cut", compile=True, ckpt_path=str(old))
        assert trainer.global_step == 8
        ends.append((model.parameters(), key))
    assert_trees_equal(ends[0][0], ends[1][0])
    np.testing.assert_array_equal(ends[0][1], ends[1][1])


def test_a_malformed_saved_key_is_refused_naming_the_file(tmp_path):
    run(tmp_path / "cut", compile=True, max_steps=2)
    file = tmp_path / "cut" / "ckpt" / "last" / "trainer_state.json"
    state = json.loads(file.read_text())
    state["mlx_key"] = [[1, -2]]
    file.write_text(json.dumps(state))
    with pytest.raises(Exception, match="trainer_state.json: 'mlx_key' must be a list of"):
        run(tmp_path / "cut", compile=True, ckpt_path=str(file.parent))
