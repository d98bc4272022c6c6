"""TrainModule's parameter trees: the tutorial's counting works and MLX keeps working."""

import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim
import numpy as np
import pytest
from mlx.utils import tree_flatten, tree_map
from train_testing import TinyClassifier, assert_trees_equal

from mlx_audio.train import TrainModule


def count(tree) -> int:
    return sum(v.size for _, v in tree_flatten(tree))


def test_tutorial_parameter_count_sums_every_leaf():
    model = TinyClassifier()
    assert (
        sum(p.size for p in model.parameters().values())
        == count(model.parameters())
        == 8 * 16 + 16 + 16 * 3 + 3
    )
    model.fc1.freeze()
    assert sum(p.size for p in model.trainable_parameters().values()) == 16 * 3 + 3
    model.unfreeze()
    assert sum(p.size for p in model.trainable_parameters().values()) == count(model.parameters())
    assert set(model.parameters().keys()) == {
        "fc1",
        "drop",
        "fc2",
    }  # still the nested dict MLX returns
    assert isinstance(model.parameters()["fc1"], dict)


def test_value_and_grad_optimizer_and_tree_utils():
    model = TinyClassifier()
    x, y = mx.random.normal((4, 8)), mx.array([0, 1, 2, 0])

    def loss_fn(m, x, y):
        return mx.mean(nn.losses.cross_entropy(m(x), y))

    loss, grads = nn.value_and_grad(model, loss_fn)(model, x, y)
    assert grads["fc1"]["weight"].shape == (16, 8)
    before = tree_map(lambda p: p, model.parameters())
    optimizer = optim.AdamW(learning_rate=1e-2)
    optimizer.update(model, grads)
    mx.eval(model.parameters(), optimizer.state)
    assert not np.allclose(np.array(before["fc1"]["weight"]), np.array(model.fc1.weight))
    assert set(k for k, _ in tree_flatten(model.parameters())) == {
        "fc1.weight",
        "fc1.bias",
        "fc2.weight",
        "fc2.bias",
    }


def test_save_and_load_weights_round_trip(tmp_path):
    model, other = TinyClassifier(), TinyClassifier()
    model.save_weights(str(tmp_path / "w.safetensors"))
    other.load_weights(str(tmp_path / "w.safetensors"))
    assert_trees_equal(model.parameters(), other.parameters())


def test_mx_compile_with_module_state():
    model = TinyClassifier(dropout=0.0)
    model.eval()
    compiled = mx.compile(lambda x: model(x), inputs=model.state)
    x = mx.random.normal((3, 8))
    np.testing.assert_allclose(np.array(compiled(x)), np.array(model(x)), rtol=1e-6)


def test_freeze_is_respected_by_value_and_grad():
    model = TinyClassifier()
    model.fc1.freeze()
    _, grads = nn.value_and_grad(model, lambda m, x: m(x).sum())(model, mx.ones((2, 8)))
    assert {k for k, _ in tree_flatten(grads)} == {"fc2.weight", "fc2.bias"}


def test_trainer_bookkeeping_is_not_part_of_the_tree():
    model = TinyClassifier()
    model.log("x", 1.0)
    assert "_logged" not in model and "_trainer_ref" not in model
    assert model.current_epoch == 0 and model.global_step == 0


def test_module_without_trainer_explains():
    class Bare(TrainModule):
        pass

    with pytest.raises(RuntimeError, match="not attached to a Trainer"):
        _ = Bare().trainer
