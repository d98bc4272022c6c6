"""Non-finite values never reach the weights or a checkpoint: NaN/Inf in the loss, in the
gradients with a finite loss, in the inputs, and from a too-large learning rate; with
``on_nonfinite_loss="raise"`` (the step is named, ``last`` stays finite) and ``"skip"`` (the
bad batches are skipped, the others train)."""

from __future__ import annotations

import logging
import os

import mlx.core as mx
import mlx.optimizers as optim
import numpy as np
import pytest
from graph_testing import kernel_labels
from train_testing import TinyClassifier, blobs

from mlx_audio.data import DataLoader
from mlx_audio.train import Trainer
from mlx_audio.train.callbacks import ModelCheckpoint
from mlx_audio.train.checkpoint import CheckpointError, load_arrays, save_checkpoint

BAD_BATCH = 5  # of 8 per epoch


class Poisoned(TinyClassifier):
    """Batch ``BAD_BATCH`` of every epoch turns non-finite in the way named by ``how``."""

    def __init__(self, how: str) -> None:
        super().__init__()
        object.__setattr__(self, "how", how)

    def compute_loss(self, batch):
        x, y = batch
        bad = mx.equal(self._batch_idx, BAD_BATCH)
        if self.how == "inputs":
            x = mx.where(bad, x * mx.nan, x)
        loss, metrics = super().compute_loss((x, y))
        # (mx.where would leak NaN gradients from the branch it does not take: select by sums)
        if self.how == "loss":
            loss = loss + mx.where(bad, mx.inf, 0.0)
        if self.how == "gradients":  # the value stays finite; d/dbias is 0 * 1/sqrt(0) = NaN
            root = mx.sqrt(self.fc1.bias.sum() * 0.0 + 1.0 - bad.astype(mx.float32))
            loss = loss + 0.0 * root
        return loss, metrics

    def training_step(self, batch, batch_idx):
        object.__setattr__(self, "_batch_idx", batch_idx)
        return super().training_step(batch, batch_idx)


def fit(tmp_path, model, mode, accumulate=1, lr=None, epochs=2):
    if lr is not None:
        object.__setattr__(model, "configure_optimizers", lambda: optim.SGD(learning_rate=lr))
    checkpoint = ModelCheckpoint(
        dirpath=str(tmp_path / "ckpt"), every_n_train_steps=1, save_top_k=-1
    )
    trainer = Trainer(
        max_epochs=epochs,
        enable_progress_bar=False,
        logger=False,
        seed=0,
        callbacks=[checkpoint],
        on_nonfinite_loss=mode,
        accumulate_grad_batches=accumulate,
        num_sanity_val_steps=0,
    )
    error = None
    try:
        trainer.fit(model, DataLoader(blobs(32), batch_size=4))
    except FloatingPointError as caught:
        error = caught
    return trainer, checkpoint, error


def all_finite(model) -> bool:
    return all(bool(mx.all(mx.isfinite(v)).item()) for _, v in model.parameters()["fc1"].items())


def checkpoints_finite(directory) -> int:
    count = 0
    for name in os.listdir(directory):
        path = os.path.join(directory, name)
        if os.path.isdir(path) and not name.startswith(".") and not os.path.islink(path):
            weights = load_arrays(os.path.join(path, "model.safetensors"))
            assert all(bool(mx.all(mx.isfinite(a)).item()) for a in weights.values()), name
            count += 1
    return count


@pytest.mark.parametrize("how", ["loss", "gradients", "inputs"])
@pytest.mark.parametrize("accumulate", [1, 2])
def test_raise_names_the_step_and_nothing_non_finite_is_saved(tmp_path, how, accumulate):
    model = Poisoned(how)
    trainer, checkpoint, error = fit(tmp_path, model, "raise", accumulate)
    assert error is not None and f"batch {BAD_BATCH})" in str(error) and "at step" in str(error)
    assert trainer.global_step == BAD_BATCH // accumulate  # the bad batch did not step
    assert all_finite(model)
    assert checkpoints_finite(checkpoint.dirpath) >= 1
    last = os.path.join(checkpoint.dirpath, "last")
    assert os.path.exists(last)  # `last` points at the newest (finite) checkpoint


@pytest.mark.parametrize("how", ["loss", "gradients", "inputs"])
@pytest.mark.parametrize("accumulate", [1, 2])
def test_skip_skips_only_the_bad_batches(tmp_path, how, accumulate, caplog):
    caplog.set_level(logging.INFO, "mlx_audio.train")
    model = Poisoned(how)
    trainer, checkpoint, error = fit(tmp_path, model, "skip", accumulate)
    assert error is None and trainer.skipped_batches == 2  # one per epoch
    expected = (
        2 * (8 - 1) if accumulate == 1 else 2 * 4
    )  # with groups of 2 the bad group still steps
    assert trainer.global_step == expected
    assert all_finite(model) and checkpoints_finite(checkpoint.dirpath) == expected
    assert caplog.text.count("skipped step") == 2


def test_skip_leaves_weights_and_optimizer_state_untouched():
    model = Poisoned("gradients")
    trainer = Trainer(
        max_steps=BAD_BATCH,
        enable_progress_bar=False,
        logger=False,
        enable_checkpointing=False,
        seed=0,
        on_nonfinite_loss="skip",
        num_sanity_val_steps=0,
    )
    trainer.fit(model, DataLoader(blobs(32), batch_size=4))
    before = {k: np.array(v) for k, v in model.parameters()["fc1"].items()}
    state = {k: np.array(v) for k, v in trainer.optimizer.state.items() if isinstance(v, mx.array)}
    trainer.runner.run(next(iter(DataLoader(blobs(32), batch_size=4))), BAD_BATCH, True)
    after = {k: np.array(v) for k, v in model.parameters()["fc1"].items()}
    assert all(np.array_equal(before[k], after[k]) for k in before)
    assert all(np.array_equal(v, np.array(trainer.optimizer.state[k])) for k, v in state.items())


def test_a_too_large_learning_rate(tmp_path):
    model = TinyClassifier()
    trainer, checkpoint, error = fit(tmp_path, model, "raise", lr=1e38, epochs=1)
    assert error is not None and all_finite(model)
    if os.path.isdir(checkpoint.dirpath):
        checkpoints_finite(checkpoint.dirpath)


def test_a_checkpoint_with_non_finite_weights_is_refused(tmp_path):
    with pytest.raises(CheckpointError, match="model:w holds non-finite"):
        save_checkpoint(str(tmp_path / "c"), {"w": mx.array([1.0, mx.nan])}, {}, {"epoch": 0})
    assert not os.path.exists(tmp_path / "c") and os.listdir(tmp_path) == []


@pytest.mark.parametrize("accumulate", [1, 2])
def test_raise_is_found_at_the_next_look_with_the_weights_from_before_the_bad_batch(accumulate):
    """NOTE [deferred non-finite check]: no checkpoint and no logging step after the bad batch,
    so the host learns of it at the epoch's end -- the weights must still be those from before
    it (every later update gated off on the device) and the error must name it."""

    def run(model, **kwargs):
        trainer = Trainer(
            max_epochs=1,
            enable_progress_bar=False,
            logger=False,
            enable_checkpointing=False,
            seed=0,
            accumulate_grad_batches=accumulate,
            num_sanity_val_steps=0,
            **kwargs,
        )
        trainer.fit(model, DataLoader(blobs(32), batch_size=4))
        return trainer

    mx.random.seed(1)
    poisoned = Poisoned("loss")
    with pytest.raises(FloatingPointError, match=f"epoch 0, batch {BAD_BATCH}\\)") as caught:
        run(poisoned)
    assert f"at step {BAD_BATCH // accumulate} " in str(caught.value)
    mx.random.seed(1)
    clean = TinyClassifier()
    before = run(clean, max_steps=BAD_BATCH // accumulate)
    assert before.global_step == BAD_BATCH // accumulate
    for name, value in clean.parameters()["fc1"].items():
        np.testing.assert_array_equal(np.array(value), np.array(poisoned.parameters()["fc1"][name]))


def _adamw_state(trainer):
    from mlx.utils import tree_flatten

    return {k: np.array(v) for k, v in tree_flatten(trainer.optimizer.state)}


def test_skip_leaves_every_adamw_moment_untouched():
    """NOTE [one fused guarded update]: the weights, both moments of every parameter and the
    step count stay bit for bit as they were, under a bad batch of a compiled AdamW step."""
    model = Poisoned("gradients")
    object.__setattr__(
        model, "configure_optimizers", lambda: optim.AdamW(learning_rate=0.1, weight_decay=0.1)
    )
    trainer = Trainer(
        max_steps=BAD_BATCH,
        enable_progress_bar=False,
        logger=False,
        enable_checkpointing=False,
        seed=0,
        on_nonfinite_loss="skip",
        gradient_clip_val=1.0,
        num_sanity_val_steps=0,
    )
    trainer.fit(model, DataLoader(blobs(32), batch_size=4))
    batch = next(iter(DataLoader(blobs(32), batch_size=4)))
    from mlx.utils import tree_flatten

    before = {k: np.array(v) for k, v in tree_flatten(model.parameters())}
    state = _adamw_state(trainer)
    assert {k.split(".")[-1] for k in state} >= {"m", "v", "step"}
    trainer.runner.run(batch, BAD_BATCH, True)
    after = {k: np.array(v) for k, v in tree_flatten(model.parameters())}
    assert all(np.array_equal(before[k], after[k]) for k in before)
    assert all(np.array_equal(v, _adamw_state(trainer)[k]) for k, v in state.items())
    trainer.runner.run(batch, BAD_BATCH + 1, True)  # a good batch still trains every moment
    moved = _adamw_state(trainer)
    assert all(
        not np.array_equal(v, moved[k]) for k, v in state.items() if k.endswith((".m", ".v"))
    )


def test_the_guard_adds_no_kernel_per_parameter(monkeypatch):
    """NOTE [one fused guarded update]: with the guard, each parameter's AdamW update is still one
    fused kernel, so the guard adds a handful of scalar kernels whatever the model's size (it
    used to split each update into five or six kernels: ~40 more for this model)."""
    from mlx.utils import tree_flatten, tree_map

    from mlx_audio.train._counters import counters_at
    from mlx_audio.train._guarded import global_norm as _global_norm
    from mlx_audio.train._runner import StepRunner
    from mlx_audio.train._step import StepBuilder

    def unguarded(self, grads, finite):
        norm = _global_norm(grads)
        scale = mx.minimum(1.0, self.clip_val / (norm + 1e-6))
        self.optimizer.update(self.module, tree_map(lambda g: g * scale, grads))
        return mx.isfinite(norm)

    batch = next(iter(DataLoader(blobs(32), batch_size=4)))
    counts = []
    for guarded in (True, False):
        if not guarded:
            monkeypatch.setattr(StepBuilder, "_update", unguarded)
        model = TinyClassifier()
        builder = StepBuilder(model, optim.AdamW(learning_rate=0.1), 1, 1.0, "norm", "32", True)
        runner = StepRunner(builder, 1)
        runner.run(batch, 0, True)
        mx.eval(builder.state)
        outputs = builder.fused(batch, counters_at(1), mx.array(0.0))
        counts.append(kernel_labels([builder.state, outputs]))
    parameters = len(tree_flatten(model.trainable_parameters()))
    fused = [  # AdamW's update (its sqrt and subtraction) with the selections
        k
        for k in counts[0]
        if k.startswith("Compiled") and "Sqrt" in k and "Select" in k and "Subtract" in k
    ]
    assert len(fused) == parameters  # one kernel per parameter: its update and the selections
    assert len(counts[0]) - len(counts[1]) <= 8, (len(counts[0]), len(counts[1]), parameters)


def test_the_guard_and_the_step_clock_advance_in_one_kernel():
    """NOTE [the step's counters]: the deferred guard (``"raise"``) costs no kernel over
    ``"skip"``: its count is the second lane of the step clock's vector, advanced in the clock's
    kernel, and ``batch_idx`` is a view of the first lane (no gather). Before, the guard's count
    and the clock were a scalar kernel each."""
    from mlx_audio.train._counters import counters_at
    from mlx_audio.train._runner import StepRunner
    from mlx_audio.train._step import StepBuilder

    batch = next(iter(DataLoader(blobs(32), batch_size=4)))
    counts = {}
    for strict in (True, False):
        builder = StepBuilder(
            TinyClassifier(), optim.AdamW(learning_rate=0.1), 1, 1.0, "norm", "32", True, strict
        )
        StepRunner(builder, 1).run(batch, 0, True)
        mx.eval(builder.state)
        outputs = builder.fused(batch, counters_at(1), mx.array(0.0))
        counts[strict] = kernel_labels([builder.state, outputs])
    assert len(counts[True]) == len(counts[False]), counts
    assert "Gather" not in counts[True]
    advance = [k for k in counts[True] if "AsType" in k and "LogicalNot" in k]  # the poisoned lane
    assert len(advance) == 1 and advance[0].endswith("Add"), counts  # ... added with the clock's


def test_the_deferred_guard_names_the_first_bad_call_after_many_calls():
    """NOTE [deferred non-finite check]: the device keeps only a count of the calls since the
    first bad one; the host keeps each call's loss, a bounded number of them, and still names
    the first bad call and its loss after more calls than it keeps."""
    from mlx_audio.train._runner import _KEPT, StepRunner
    from mlx_audio.train._step import StepBuilder

    x, y = next(iter(DataLoader(blobs(32), batch_size=4)))
    bad = (mx.full(x.shape, float("nan")), y)
    builder = StepBuilder(
        TinyClassifier(), optim.AdamW(learning_rate=1e-3), 1, 1.0, "norm", "32", True
    )
    runner = StepRunner(builder, 1)
    first_bad = _KEPT + 7
    for call in range(first_bad + 5):
        runner.run(bad if call in (first_bad, first_bad + 2) else (x, y), call, True, ("at", call))
        assert len(runner.recent) <= _KEPT + 1
    where, loss = runner.first_nonfinite()
    assert where == ("at", first_bad) and np.isnan(loss)
    assert all(
        bool(mx.all(mx.isfinite(v)).item()) for _, v in builder.module.parameters()["fc1"].items()
    )
