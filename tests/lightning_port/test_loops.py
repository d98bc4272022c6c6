"""The fit loop against real Lightning 2.6 (differential), and ports of Lightning's
``loops/test_training_loop_flow_scalar.py``, ``loops/test_training_epoch_loop.py``,
``loops/test_training_loop.py`` and ``trainer/optimization/test_optimizers.py`` tests of the same
behaviour.

Differential cases (run_loops.py records Lightning's side in golden/loops.json, live from the
anchor venv where it exists): the batches each fit sees and the hooks around them when a run
stopped by ``max_steps`` in the middle of an epoch is resumed (with ``max_steps``: the epoch goes
on after its last batch; with ``max_epochs`` only: the next epoch), when a finished run is
resumed (no ``on_train_start``/``end``), when a run stopped by ``EarlyStopping`` is resumed with
a larger ``max_epochs`` (it trains on until EarlyStopping stops it again), a refit after a failed
fit (the epoch starts over, the steps are kept), a ``training_step`` that returns None (no
update, the step counts), one without ``batch_idx``, ``configure_optimizers`` returning None,
and a name logged twice in one step. The loaders are resumable on both sides (Lightning: a
torchdata ``StatefulDataLoader``).

Ported tests (same names and assertions; left out: the manual-optimization halves and the
checks of Lightning's internal ``automatic_optimization.run``; ``optimizer_step`` becomes
``on_before_optimizer_step``, which this Trainer calls before the update):
``test_train_step_no_return``, ``test_training_step_no_return_when_even``,
``test_no_batch_idx_gradient_accumulation``, ``test_none_optimizer``, ``test_eval_mode_warning``,
``test_on_train_batch_start_return_minus_one`` (without its ``trainer.fit_loop.batch_idx``
asserts: no ``fit_loop`` here) and ``test_should_stop_mid_epoch`` (``training_step`` sets
``should_stop``: run eagerly, ``compile=False``, as a compiled step runs it once).
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import mlx.nn as nn
import mlx.optimizers as optim
import numpy as np
import pytest
from boring_classes import BoringModel, fit

from mlx_audio.data import DataLoader, Dataset
from mlx_audio.train import Trainer, TrainModule
from mlx_audio.train.callbacks import EarlyStopping

sys.path.append(str(Path(__file__).resolve().parents[1]))  # tests/golden.py
from golden import check_golden, reference  # noqa: E402


class Items(Dataset):
    def __len__(self) -> int:
        return 5

    def __getitem__(self, index: int) -> np.ndarray:
        return np.array([float(index)], dtype=np.float32)


def loader() -> DataLoader:
    return DataLoader(Items(), batch_size=1)


class Recorder(TrainModule):
    def __init__(self, seen, fail_at=None, none_on_even=False, no_batch_idx=False):
        super().__init__()
        self.layer = nn.Linear(1, 1)
        self.record = seen.append  # (a list attribute would join the MLX module's tree)
        self.fail_at = fail_at
        self.none_on_even = none_on_even
        if no_batch_idx:
            self.training_step = self.step_without_index

    def step_without_index(self, batch):
        return self.layer(batch).mean()

    def training_step(self, batch, batch_idx):
        if self.fail_at is not None and self.fail_at == (self.current_epoch, int(batch_idx)):
            self.fail_at = None
            raise RuntimeError("failed on purpose")
        loss = self.layer(batch).mean()
        return None if self.none_on_even and int(batch_idx) % 2 == 0 else loss

    def validation_step(self, batch, batch_idx):
        pass

    def on_validation_epoch_end(self):
        self.log("v", 1.0)  # never improves: EarlyStopping stops after `patience` checks

    def on_train_start(self):
        self.record(["train_start"])

    def on_train_end(self):
        self.record(["train_end"])

    def on_train_epoch_start(self):
        self.record(["epoch_start", self.current_epoch])

    def on_train_epoch_end(self):
        self.record(["epoch_end", self.current_epoch])

    def weights(self):
        return np.concatenate([np.array(p).ravel() for p in self.parameters().values()])

    def on_train_batch_start(self, batch, batch_idx):
        item = int(np.array(batch)[0, 0])
        self.record(["step", self.current_epoch, batch_idx, self.global_step, item])
        self.before = self.weights()

    def on_train_batch_end(self, outputs, batch, batch_idx):
        changed = not np.array_equal(self.before, self.weights())
        self.record(["updated", changed, self.global_step, sorted(outputs or {})])

    def configure_optimizers(self):
        return optim.SGD(learning_rate=0.1)


def trainer(root, **kwargs):
    kwargs.setdefault("limit_val_batches", 0)
    return Trainer(
        default_root_dir=root,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        **kwargs,
    )


def resumed(root, first, second, val=False, callbacks=None, compile=True):
    seen = []
    extra = {"limit_val_batches": 1} if val else {}
    run = trainer(root, callbacks=callbacks and callbacks(), compile=compile, **first, **extra)
    run.fit(Recorder(seen), loader(), loader() if val else None)
    seen.append(["fit_end", run.current_epoch, run.global_step])
    path = run.checkpoint_callback.best_model_path
    again = trainer(root, callbacks=callbacks and callbacks(), compile=compile, **second, **extra)
    again.fit(Recorder(seen), loader(), loader() if val else None, ckpt_path=path)
    seen.append(["fit_end", again.current_epoch, again.global_step])
    return seen


def test_golden_file_is_what_lightning_gives():
    """golden/loops.json is what run_loops.py gives on the anchor's Lightning now (the live run
    the cases below use where the anchor venv exists)."""
    check_golden("loops")


RESUMES = {
    "max_steps_then_max_steps": ({"max_steps": 3}, {"max_steps": 7}),
    "max_steps_then_more_steps": ({"max_steps": 3}, {"max_steps": 12}),
    "max_steps_then_max_epochs": ({"max_steps": 3}, {"max_epochs": 2}),
    "finished_then_resumed": ({"max_epochs": 1}, {"max_epochs": 1}),
}


@pytest.mark.parametrize("name", sorted(RESUMES))
def test_resume_as_lightning(tmp_path, name):
    first, second = RESUMES[name]
    assert resumed(tmp_path, first, second) == reference("loops")[name]


def test_resume_with_max_steps_and_max_epochs_counts_the_cut_epoch_once(tmp_path):
    """A difference (docs/api/training.md): resumed inside an epoch that ``max_steps`` cut short,
    with both limits, Lightning counts that epoch twice towards ``max_epochs`` (its ``processed``
    counter advances at both of its ends) and stops after it; here it counts once, and the run
    goes on to ``max_steps``. Up to Lightning's stop, both see the same batches."""
    ours = resumed(tmp_path, {"max_steps": 3}, {"max_steps": 7, "max_epochs": 2})
    theirs = reference("loops")["max_steps_then_both"]
    assert theirs[-1] == ["fit_end", 2, 5] and ours[-1] == ["fit_end", 2, 7]
    stop = theirs.index(["train_end"], theirs.index(["fit_end", 1, 3]))
    assert ours[:stop] == theirs[:stop]


def test_resume_after_early_stopping_trains_on(tmp_path):
    seen = resumed(
        tmp_path,
        {"max_epochs": 5},
        {"max_epochs": 6},
        val=True,
        callbacks=lambda: [EarlyStopping("v", patience=1)],
    )
    assert seen == reference("loops")["early_stopping_then_more_epochs"]


@pytest.mark.parametrize("compile", [True, False])
def test_refit_after_failure_starts_the_epoch_over(tmp_path, compile):
    seen = []
    run = trainer(tmp_path, max_epochs=2, compile=compile)
    model = Recorder(seen, fail_at=(0, 2))
    if compile:  # a compiled step runs training_step once, when traced: fail just before it
        model.fail_at = None
        model.on_train_batch_start = _failing_once(model)
    with pytest.raises(RuntimeError, match="failed on purpose"):
        run.fit(model, loader())
    seen.append(["failed", run.current_epoch, run.global_step])
    run.fit(model, loader())
    seen.append(["fit_end", run.current_epoch, run.global_step])
    assert seen == reference("loops")["refit_after_failure"]


def _failing_once(model):
    original = Recorder.on_train_batch_start.__get__(model)

    def on_train_batch_start(batch, batch_idx):
        original(batch, batch_idx)
        if (model.current_epoch, batch_idx) == (0, 2) and not getattr(model, "failed", False):
            model.failed = True
            raise RuntimeError("failed on purpose")

    return on_train_batch_start


def steps(tmp_path, compile, accumulate=1, **kwargs):
    seen = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run = trainer(tmp_path, max_epochs=1, accumulate_grad_batches=accumulate, compile=compile)
        run.fit(Recorder(seen, **kwargs), loader())
        seen.append(["fit_end", run.current_epoch, run.global_step])
    said = sorted({str(w.message) for w in caught if "returned `None`" in str(w.message)})
    return seen + [["warnings", said]]


@pytest.mark.parametrize("accumulate", [1, 2])
def test_training_step_returning_none_skips_the_update(tmp_path, accumulate):
    """Eager (``compile=False``): a step that returns None for some batches only."""
    seen = steps(tmp_path, False, accumulate, none_on_even=True)
    name = "none_on_even_batches" + ("_accumulated" if accumulate > 1 else "")
    assert seen == reference("loops")[name]


@pytest.mark.parametrize("accumulate", [1, 2])
def test_training_step_returning_none_compiled(tmp_path, accumulate):
    """Compiled: a step that always returns None never updates; the steps count."""

    class Never(Recorder):
        def training_step(self, batch, batch_idx):
            self.layer(batch)

    seen = []
    run = trainer(tmp_path, max_epochs=1, accumulate_grad_batches=accumulate)
    with pytest.warns(UserWarning, match=r"training_step` returned `None"):
        run.fit(Never(seen), loader())
    assert run.global_step == (5 if accumulate == 1 else 3)
    assert not any(e[1] for e in seen if e[0] == "updated")


@pytest.mark.parametrize("compile", [True, False])
def test_training_step_without_batch_idx_accumulated(tmp_path, compile):
    seen = steps(tmp_path, compile, 2, no_batch_idx=True)
    assert seen == reference("loops")["no_batch_idx_accumulated"]


@pytest.mark.parametrize("compile", [True, False])
def test_configure_optimizers_returning_none(tmp_path, compile):
    seen = []
    model = Recorder(seen)
    model.configure_optimizers = lambda: None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run = trainer(tmp_path, max_epochs=1, compile=compile)
        run.fit(model, loader())
        seen.append(["fit_end", run.current_epoch, run.global_step])
    said = sorted({str(w.message) for w in caught if "optimizer" in str(w.message)})
    assert seen + [["warnings", said]] == reference("loops")["no_optimizer"]


@pytest.mark.parametrize("on_epoch", [False, True])
def test_same_name_logged_twice_in_a_step(tmp_path, on_epoch):
    class Twice(Recorder):
        def training_step(self, batch, batch_idx):
            self.log("a", 1.0, on_epoch=on_epoch)
            self.log("a", 3.0, on_epoch=on_epoch)
            return super().training_step(batch, batch_idx)

    run = trainer(tmp_path, max_epochs=1)
    run.fit(Twice([]), loader())
    ours = {k: float(v) for k, v in sorted(run.callback_metrics.items())}
    assert ours == reference("loops")["log_twice_on_epoch" if on_epoch else "log_twice_on_step"]


# -- ports ---------------------------------------------------------------------------------------
def test_train_step_no_return(tmp_path):
    """Tests that only training_step raises a warning when nothing is returned in case of automatic_optimization."""

    class TestModel(BoringModel):
        def training_step(self, batch):
            self.training_step_called = True
            loss = self.step(batch[0])
            self.log("a", loss, on_step=True, on_epoch=True)

        def validation_step(self, batch, batch_idx):
            self.validation_step_called = True

    model = TestModel()
    trainer_args = {"default_root_dir": tmp_path, "fast_dev_run": 2}
    trainer = Trainer(**trainer_args)

    with pytest.warns(UserWarning, match=r"training_step` returned `None"):
        fit(trainer, model)

    assert model.training_step_called
    assert model.validation_step_called


def test_training_step_no_return_when_even(tmp_path):
    """Tests correctness when some training steps have been skipped."""

    class TestModel(BoringModel):
        def training_step(self, batch, batch_idx):
            self.training_step_called = True
            loss = self.step(batch[0])
            self.log("a", loss, on_step=True, on_epoch=True)
            return loss if batch_idx % 2 else None

    model = TestModel()
    trainer = Trainer(
        default_root_dir=tmp_path,
        limit_train_batches=4,
        limit_val_batches=1,
        max_epochs=4,
        enable_model_summary=False,
        logger=False,
        enable_checkpointing=False,
        compile=False,  # a compiled step decides once whether it returns None
    )

    with pytest.warns(UserWarning, match=r".*training_step` returned `None.*"):
        fit(trainer, model)


def test_no_batch_idx_gradient_accumulation():
    """Regression test for an issue where excluding the batch_idx from training_step would disable gradient
    accumulation."""

    class MyModel(BoringModel):
        last_batch_idx = -1

        def training_step(self, batch):  # no batch_idx
            return self.step(batch)

        def on_train_batch_start(self, batch, batch_idx):
            self.batch_idx = batch_idx

        def on_before_optimizer_step(self, optimizer):
            batch_idx = self.batch_idx
            assert batch_idx in (1, 3)
            self.last_batch_idx = batch_idx

    trainer = Trainer(fast_dev_run=4, accumulate_grad_batches=2, limit_val_batches=0)
    model = MyModel()
    fit(trainer, model)
    assert model.last_batch_idx == 3


def test_none_optimizer(tmp_path):
    model = BoringModel()
    model.configure_optimizers = lambda: None
    trainer = Trainer(
        default_root_dir=tmp_path, max_epochs=1, limit_val_batches=0.1, limit_train_batches=0.2
    )
    with pytest.warns(UserWarning, match="will run with no optimizer"):
        fit(trainer, model)


@pytest.mark.parametrize("warn", [True, False])
def test_eval_mode_warning(tmp_path, warn):
    """Test that a warning is raised if any module is in eval mode at the start of training."""
    model = BoringModel()
    if warn:
        model.some_eval_module = nn.Linear(32, 16)
        model.some_eval_module.eval()

    trainer = Trainer(
        default_root_dir=tmp_path,
        max_epochs=1,
    )

    if warn:
        with pytest.warns(UserWarning):
            fit(trainer, model)
    else:
        with warnings.catch_warnings(record=True) as warning_list:
            warnings.simplefilter("always")
            fit(trainer, model)
            eval_warnings = [
                w
                for w in warning_list
                if issubclass(w.category, UserWarning) and "eval mode" in str(w.message)
            ]
            assert len(eval_warnings) == 0, "Expected no eval mode warnings"


@pytest.mark.parametrize(("max_epochs", "batch_idx_"), [(2, 5), (3, 8), (4, 12)])
def test_on_train_batch_start_return_minus_one(max_epochs, batch_idx_, tmp_path):
    class CurrentModel(BoringModel):
        def on_train_batch_start(self, batch, batch_idx):
            if batch_idx == batch_idx_:
                return -1
            return None

    model = CurrentModel()
    trainer = Trainer(default_root_dir=tmp_path, max_epochs=max_epochs, limit_train_batches=10)
    fit(trainer, model)
    if batch_idx_ > trainer.num_training_batches - 1:
        assert trainer.global_step == trainer.num_training_batches * max_epochs
    else:
        assert trainer.global_step == batch_idx_ * max_epochs

    assert trainer.is_last_batch


def test_should_stop_mid_epoch(tmp_path):
    """Test that training correctly stops mid epoch and that validation is still called at the right time."""

    class TestModel(BoringModel):
        def __init__(self):
            super().__init__()
            self.validation_called_at = None

        def training_step(self, batch, batch_idx):
            if batch_idx == 4:
                self.trainer.should_stop = True
            return super().training_step(batch, batch_idx)

        def validation_step(self, *args):
            self.validation_called_at = (self.trainer.current_epoch, self.trainer.global_step)
            return super().validation_step(*args)

    model = TestModel()
    trainer = Trainer(
        default_root_dir=tmp_path,
        max_epochs=1,
        limit_train_batches=10,
        limit_val_batches=1,
        compile=False,
    )
    fit(trainer, model)

    # even though we stopped mid epoch, the fit loop finished normally and the current epoch was increased
    assert trainer.current_epoch == 1
    assert trainer.global_step == 5
    assert model.validation_called_at == (0, 5)
