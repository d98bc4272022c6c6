"""``Tuner(trainer)``: ``lr_find`` (the rates each update used, the smoothed losses, the early
stop, the suggestion set on the model, the weights restored) and ``scale_batch_size`` (Lightning's
power and binsearch searches over MLX's out-of-memory error; only that error is simulated, by a
model that raises MLX's message above a batch size). The rule itself is compared with Lightning's
code in tests/lightning_parity/test_lr_finder.py."""

from __future__ import annotations

import logging

import mlx.core as mx
import mlx.optimizers as optim
import numpy as np
import pytest
from mlx.utils import tree_flatten
from train_testing import TinyClassifier, blobs

from mlx_audio.data import DataLoader
from mlx_audio.train import Trainer, TrainModule, Tuner

QUIET = {"enable_progress_bar": False, "logger": False, "enable_checkpointing": False}


def weights(model) -> dict[str, np.ndarray]:
    return {k: np.array(v) for k, v in tree_flatten(model.parameters())}


class Slope(TrainModule):
    """loss = w (gradient 1): plain SGD moves w by exactly the rate of each update."""

    def __init__(self) -> None:
        super().__init__()
        self.w = mx.array([0.0])
        self.lr = 0.5
        object.__setattr__(self, "seen", [])  # a plain list, not part of the module's tree

    def compute_loss(self, batch):
        return mx.sum(self.w) + 0.0 * mx.sum(batch[0])

    def on_train_batch_end(self, outputs, batch, batch_idx):
        self.seen.append(float(self.w[0]))

    def configure_optimizers(self):
        return optim.SGD(learning_rate=self.lr)


@pytest.mark.parametrize("mode", ["exponential", "linear"])
def test_lr_find_steps_through_the_rates_and_restores_the_weights(in_tmp, mode):
    model = Slope()
    trainer = Trainer(max_epochs=-1, **QUIET)
    finder = Tuner(trainer).lr_find(
        model,
        DataLoader(blobs(40), batch_size=4),
        min_lr=1e-4,
        max_lr=1e-1,
        num_training=25,
        mode=mode,
        early_stop_threshold=None,
        update_attr=False,
    )
    rates = finder.results["lr"]
    assert len(rates) == len(finder.results["loss"]) == 25  # 10 batches an epoch: 3 epochs
    assert rates == [finder.lr_at(k) for k in range(25)]
    assert rates[0] == 1e-4 and rates[-1] == pytest.approx(1e-1)
    moved = -np.diff([0.0, *model.seen])
    np.testing.assert_allclose(moved, rates, rtol=1e-4)  # what SGD used at each update
    assert float(model.w[0]) == 0.0 and model.lr == 0.5  # restored; no update_attr
    assert model.trainer is trainer and trainer.global_step == 0


class Plain(TinyClassifier):
    def configure_optimizers(self):
        return optim.SGD(learning_rate=self.lr)


def test_lr_find_stops_on_a_diverging_loss_and_sets_the_suggestion(in_tmp, caplog):
    model = Plain(dropout=0.0)
    before = weights(model)
    trainer = Trainer(max_epochs=-1, **QUIET)
    with caplog.at_level(logging.INFO, logger="mlx_audio.train"):
        finder = Tuner(trainer).lr_find(
            model,
            DataLoader(blobs(256), batch_size=16, shuffle=True, seed=0),
            min_lr=1e-4,
            max_lr=1e3,
        )
    steps = len(finder.results["loss"])
    assert 10 < steps < 100
    said = [r.getMessage() for r in caplog.records]
    assert f"LR finder stopped early after {steps} steps due to diverging loss." in said
    suggestion = finder.suggestion()
    assert model.lr == suggestion and f"Learning rate set to {suggestion}" in said
    i = finder._optimal_idx
    assert finder.results["lr"][i] == suggestion
    for name, value in weights(model).items():
        np.testing.assert_array_equal(value, before[name], err_msg=name)
    trainer = Trainer(max_epochs=1, **QUIET)
    trainer.fit(model, DataLoader(blobs(64), batch_size=16))  # the model trains as usual after
    assert trainer.global_step == 4


def test_lr_find_needs_a_rate_attribute_to_update():
    class NoRate(TinyClassifier):
        def __init__(self):
            super().__init__()
            del self.lr

    with pytest.raises(
        AttributeError, match="should have one of these fields: \\('lr', 'learning_rate'\\)"
    ):
        Tuner(Trainer(max_epochs=1, **QUIET)).lr_find(NoRate(), [])


def test_lr_find_plot(in_tmp):
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    finder = Tuner(Trainer(max_epochs=-1, **QUIET)).lr_find(
        TinyClassifier(), DataLoader(blobs(64), batch_size=8), num_training=20, update_attr=False
    )
    fig = finder.plot(suggest=True)
    ax = fig.axes[0]
    assert ax.get_xscale() == "log" and ax.get_xlabel() == "Learning rate"
    assert len(ax.lines) == 2  # the curve and the suggestion


OOM = (
    "[metal::malloc] Attempting to allocate 1073741824 bytes which is greater than the maximum "
    "allowed buffer size of 1073741824 bytes."
)


class Fits(TinyClassifier):
    """A test double of the one thing a CPU cannot do: run out of memory above ``limit``
    samples per batch, with MLX's message."""

    def __init__(self, limit: int = 16) -> None:
        super().__init__()
        self.limit, self.batch_size = limit, 2
        object.__setattr__(self, "tried", [])  # a plain list, not part of the module's tree

    def compute_loss(self, batch):
        size = batch[0].shape[0]
        if not self.tried or self.tried[-1] != size:
            self.tried.append(size)
        if size > self.limit:
            raise RuntimeError(OOM)
        return super().compute_loss(batch)


def test_scale_batch_size_power(in_tmp):
    model = Fits()
    before = weights(model)
    trainer = Trainer(max_epochs=1, **QUIET)
    size = Tuner(trainer).scale_batch_size(model, DataLoader(blobs(256), batch_size=4))
    assert size == 16 and model.batch_size == 16
    assert model.tried == [2, 4, 8, 16, 32]
    for name, value in weights(model).items():
        np.testing.assert_array_equal(value, before[name], err_msg=name)


def test_scale_batch_size_binsearch_with_margin(in_tmp):
    model = Fits(limit=20)
    trainer = Trainer(max_epochs=1, **QUIET)
    size = Tuner(trainer).scale_batch_size(
        model,
        DataLoader(blobs(256), batch_size=4),
        DataLoader(blobs(64), batch_size=4),
        mode="binsearch",
    )
    assert model.tried == [2, 4, 8, 16, 32, 24, 20, 22, 21]
    assert size == 19 and model.batch_size == 19  # 20 less 5%


def test_scale_batch_size_stops_at_the_dataset_and_at_max_val(in_tmp):
    model = Fits(limit=10_000)
    size = Tuner(Trainer(max_epochs=1, **QUIET)).scale_batch_size(
        model, DataLoader(blobs(40), batch_size=4)
    )
    assert size == 64 and model.tried[-1] == 40  # 64 >= 40 samples: as Lightning, it stops
    model = Fits(limit=10_000)
    size = Tuner(Trainer(max_epochs=1, **QUIET)).scale_batch_size(
        model, DataLoader(blobs(400), batch_size=4), max_val=16
    )
    assert size == 16 and model.tried == [2, 4, 8]


def test_scale_batch_size_lets_other_errors_through(in_tmp):
    class Broken(Fits):
        def compute_loss(self, batch):
            raise RuntimeError("something else")

    with pytest.raises(RuntimeError, match="something else"):
        Tuner(Trainer(max_epochs=1, **QUIET)).scale_batch_size(
            Broken(), DataLoader(blobs(64), batch_size=4)
        )


def test_scale_batch_size_needs_a_dataloader_it_can_rebuild():
    batches = [(mx.zeros((4, 8)), mx.zeros((4,), mx.int32))]
    with pytest.raises(TypeError, match="only an mlx_audio.data.DataLoader can be rebuilt"):
        Tuner(Trainer(max_epochs=1, **QUIET)).scale_batch_size(Fits(), batches)


# Ported from Lightning 2.6 (tests/tests_pytorch/tuner/test_scale_batch_size.py), the batch size
# in our DataLoader instead of the model's dataloader hooks.
@pytest.mark.parametrize(
    ("max_trials", "mode", "init_val", "expected"),
    [
        (3, "power", 2, 8),
        (3, "binsearch", 2, 7),  # applied margin of 5% on 8 -> int(8 * 0.95) = 7
        (1, "power", 4, 4),
        (0, "power", 2, 2),
    ],
)
def test_scale_batch_size_max_trials_modes(in_tmp, max_trials, mode, init_val, expected):
    result = Tuner(Trainer(max_epochs=1, **QUIET)).scale_batch_size(
        Fits(limit=10_000),
        DataLoader(blobs(64), batch_size=4),
        mode=mode,
        steps_per_trial=1,
        max_trials=max_trials,
        init_val=init_val,
    )
    assert result == expected


@pytest.mark.parametrize(
    ("scale_method", "expected_batch_size"), [("power", 62), ("binsearch", 95)]
)
def test_dataloader_batch_size_updated_on_failure(in_tmp, scale_method, expected_batch_size):
    model = Fits(limit=100)
    new_batch_size = Tuner(Trainer(max_epochs=2, compile=False, **QUIET)).scale_batch_size(
        model,
        DataLoader(blobs(1000), batch_size=16),
        max_trials=10,
        steps_per_trial=1,
        init_val=500,
        mode=scale_method,
    )
    assert new_batch_size == model.batch_size == expected_batch_size


# Ported from Lightning 2.6 (tests/tests_pytorch/tuner/test_lr_finder.py).
def test_accumulation_and_early_stopping(in_tmp):
    model = TinyClassifier(dropout=0.0, lr=1e-3)
    trainer = Trainer(max_epochs=-1, accumulate_grad_batches=2, **QUIET)
    lr_finder = Tuner(trainer).lr_find(
        model, DataLoader(blobs(64), batch_size=4), early_stop_threshold=None
    )
    assert lr_finder.suggestion() != 1e-3
    assert len(lr_finder.results["lr"]) == len(lr_finder.results["loss"]) == 100


def test_lr_finder_ends_before_num_training(in_tmp):
    class Counted(TinyClassifier):
        def on_before_optimizer_step(self, optimizer):
            assert self.trainer.global_step < 3

    Tuner(Trainer(max_epochs=-1, **QUIET)).lr_find(
        Counted(), DataLoader(blobs(64), batch_size=4), num_training=3
    )


def test_multiple_lr_find_calls_gives_same_results(in_tmp):
    model = TinyClassifier(dropout=0.0)
    trainer = Trainer(max_epochs=2, limit_train_batches=10, limit_val_batches=2, **QUIET)
    loader = DataLoader(blobs(256), batch_size=8, shuffle=True, seed=1)
    all_res = [Tuner(trainer).lr_find(model, loader, update_attr=False).results for _ in range(3)]
    assert all(
        all_res[0][k] == current[k] and len(current[k]) > 10
        for current in all_res[1:]
        for k in all_res[0]
    )


@pytest.mark.parametrize(
    ("skip_begin", "skip_end", "losses", "expected_error"),
    [
        (0, 0, [], True),
        (10, 1, [], True),
        (0, 2, [0, 1, 2], True),
        (0, 1, [0, 1, 2], False),
        (1, 1, [0, 1, 2], True),
        (1, 1, [0, 1, 2, 3], False),
        (0, 1, [np.nan, np.nan, 0, np.inf, 1, 2, 3, np.inf, 2, np.nan, 1], False),
        (4, 1, [np.nan, np.nan, 0, np.inf, 1, 2, 3, np.inf, 2, np.nan, 1], False),
    ],
)
def test_suggestion_not_enough_finite_points(losses, skip_begin, skip_end, expected_error, caplog):
    from mlx_audio.train.tuner import LRFinder

    lr_finder = LRFinder(mode="exponential", lr_min=1e-8, lr_max=1, num_training=100)
    lr_finder.results = {"lr": [float(i) for i in range(len(losses))], "loss": losses}
    with caplog.at_level(logging.ERROR, logger="mlx_audio.train"):
        lr = lr_finder.suggestion(skip_begin=skip_begin, skip_end=skip_end)
    if expected_error:
        assert lr is None
        assert "Failed to compute suggestion for learning rate" in caplog.text
    else:
        assert lr is not None


def test_lr_attribute_when_suggestion_invalid(in_tmp):
    class Rated(TinyClassifier):
        def __init__(self):
            super().__init__()
            del self.lr
            self.learning_rate = 0.123

        def configure_optimizers(self):
            return optim.SGD(learning_rate=self.learning_rate)

    model = Rated()
    lr_finder = Tuner(Trainer(max_epochs=-1, **QUIET)).lr_find(
        model, DataLoader(blobs(64), batch_size=8), update_attr=True, num_training=1
    )
    assert lr_finder.suggestion() is None
    assert model.learning_rate == 0.123  # unchanged: no suggestion is possible
