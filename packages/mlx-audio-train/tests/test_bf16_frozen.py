"""precision="bf16-mixed" computes frozen modules in bf16, as Lightning's autocast does, on
copies: the float32 arrays come back unchanged; arrays the step replaces are never cast
(NOTE [bf16-mixed casts frozen arrays for the compute])."""

import mlx.core as mx
import mlx.nn as nn
import numpy as np
import pytest
from mlx.utils import tree_flatten, tree_map
from train_testing import TinyClassifier, blobs

from mlx_audio.data import DataLoader
from mlx_audio.train import Trainer


def fit(model, steps=3, compile=True):
    trainer = Trainer(
        max_steps=steps,
        precision="bf16-mixed",
        enable_progress_bar=False,
        logger=False,
        enable_checkpointing=False,
        seed=0,
        compile=compile,
    )
    trainer.fit(model, DataLoader(blobs(64), batch_size=8, shuffle=True))
    return trainer


def floats(module):
    return {k: np.array(v) for k, v in tree_flatten(module.parameters())}


class Tower(TinyClassifier):
    """A frozen linear layer and a frozen-affine batch norm in front of the classifier."""

    def __init__(self) -> None:
        super().__init__(dropout=0.0)
        self.frozen = nn.Linear(8, 8)
        self.norm = nn.BatchNorm(8)
        self.frozen.freeze()
        self.norm.freeze(keys=["weight", "bias"])
        object.__setattr__(self, "seen", [])  # not module state

    def __call__(self, x):
        self.seen.append(
            (
                self.frozen.weight.dtype,
                self.norm.weight.dtype,
                self.norm.running_mean.dtype,
                self.fc1.weight.dtype,
            )
        )
        return super().__call__(self.norm(self.frozen(x)))


@pytest.mark.parametrize("compile", [True, False], ids=["compiled", "eager"])
def test_frozen_parameters_compute_in_bf16_and_come_back_unchanged(compile):
    model = Tower()
    frozen_before = np.array(model.frozen.weight)
    stats_before = np.array(model.norm.running_mean)
    fit(model, compile=compile)
    # frozen weights in bf16, batch-norm statistics (which the step replaces) in float32
    assert model.seen[0] == (mx.bfloat16, mx.bfloat16, mx.float32, mx.bfloat16)
    assert all(v.dtype == mx.float32 for _, v in tree_flatten(model.parameters()))
    np.testing.assert_array_equal(np.array(model.frozen.weight), frozen_before)
    assert not np.array_equal(np.array(model.norm.running_mean), stats_before)  # it was updated
    assert not getattr(model, "_replaced_in_step", set())  # known up front: no second run


class Teacher(TinyClassifier):
    """An EMA teacher updated inside training_step: a frozen copy the step replaces."""

    def __init__(self) -> None:
        super().__init__(dropout=0.0)
        self.teacher = nn.Linear(8, 16)
        self.teacher.freeze()
        object.__setattr__(self, "seen", [])  # not module state

    def training_step(self, batch, batch_idx):
        self.seen.append(self.teacher.weight.dtype)
        x, y = batch
        target = mx.stop_gradient(self.teacher(x))
        loss = mx.mean(nn.losses.cross_entropy(self(x), y)) + 0.1 * mx.mean(
            (self.fc1(x) - target) ** 2
        )
        self.teacher.update(
            tree_map(
                lambda t, s: 0.9 * t + 0.1 * s.astype(mx.float32),
                self.teacher.parameters(),
                self.fc1.parameters(),
            )
        )
        return loss


@pytest.mark.parametrize("compile", [True, False], ids=["compiled", "eager"])
def test_an_array_the_step_replaces_is_never_cast(compile):
    model = Teacher()
    teacher0 = np.array(model.teacher.weight)
    student0 = np.array(model.fc1.weight.astype(mx.bfloat16).astype(mx.float32))
    fit(model, steps=1, compile=compile)
    # found after the first forward, which ran once more with the teacher float32
    assert model.seen[:2] == [mx.bfloat16, mx.float32] and set(model.seen[2:]) <= {mx.float32}
    assert model._replaced_in_step == {"teacher.weight", "teacher.bias"}
    assert model.teacher.weight.dtype == mx.float32
    # one EMA update from the float32 teacher (not two, not from a bf16 copy)
    expected = 0.9 * teacher0 + 0.1 * student0
    np.testing.assert_allclose(np.array(model.teacher.weight), expected, rtol=0, atol=1e-7)
    fit(model, steps=2, compile=compile)  # later fits: not cast from the start
    assert model.seen[-1] == mx.float32


class CastsLogits(TinyClassifier):
    def compute_loss(self, batch):
        x, y = batch
        logits = self(x)
        loss = mx.mean(nn.losses.cross_entropy(logits.astype(mx.float32), y))
        object.__setattr__(self, "dtypes", (logits.dtype, loss.dtype))
        return loss, {}


def test_a_loss_from_bf16_logits_is_bf16_unless_cast_first():
    """The differences table (docs/api/training.md): no autocast op lists, so a loss computed
    from bf16 logits is bf16 (its logged value has bf16's resolution); casting the logits to
    float32 first gives a float32 loss, as autocast's would be."""
    plain = TinyClassifier(dropout=0.0)
    trainer = fit(plain, compile=False)
    assert trainer.callback_metrics["train_loss"] == float(
        mx.array(trainer.callback_metrics["train_loss"]).astype(mx.bfloat16).item()
    )
    cast = CastsLogits(dropout=0.0)
    fit(cast, compile=False)
    assert cast.dtypes == (mx.bfloat16, mx.float32)
