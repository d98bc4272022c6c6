"""Real Lightning's side of test_loops.py's differential cases: what the fit loop does across a
resume, a stop, a failure and unusual steps, recorded as JSON (``golden/loops.json``; run through
``tests/golden.py loops`` in the anchor venv: ``.venv-anchor/bin/python run_loops.py OUT``).

Every case trains a ``Linear(1, 1)`` on a dataset whose item i is ``[i]`` (5 items, batch size
1, a torchdata ``StatefulDataLoader``: a resumable loader, as ours) and records what each hook
saw: ``["step", epoch, batch_idx, global_step, item]`` at each batch's start, whether the
weights changed in it, the epoch and train hooks, and the counters at the end. test_loops.py runs the same cases on ours.
"""

from __future__ import annotations

import json
import sys
import tempfile
import warnings

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import EarlyStopping
from torch import nn
from torch.utils.data import Dataset
from torchdata.stateful_dataloader import StatefulDataLoader


class Items(Dataset):
    def __len__(self):
        return 5

    def __getitem__(self, index):
        return torch.tensor([float(index)])


def loader():
    return StatefulDataLoader(Items(), batch_size=1)


class Recorder(pl.LightningModule):
    def __init__(self, seen, fail_at=None, none_on_even=False, no_batch_idx=False):
        super().__init__()
        torch.manual_seed(0)
        self.layer = nn.Linear(1, 1)
        self.seen = seen
        self.fail_at = fail_at
        self.none_on_even = none_on_even
        if no_batch_idx:
            self.training_step = self.step_without_index

    def step_without_index(self, batch):
        return self.layer(batch).mean()

    def training_step(self, batch, batch_idx):
        if self.fail_at == (self.current_epoch, batch_idx):
            self.fail_at = None
            raise RuntimeError("failed on purpose")
        loss = self.layer(batch).mean()
        return None if self.none_on_even and batch_idx % 2 == 0 else loss

    def validation_step(self, batch, batch_idx):
        pass

    def on_validation_epoch_end(self):
        self.log("v", 1.0)  # never improves: EarlyStopping stops after `patience` checks

    def on_train_start(self):
        self.seen.append(["train_start"])

    def on_train_end(self):
        self.seen.append(["train_end"])

    def on_train_epoch_start(self):
        self.seen.append(["epoch_start", self.current_epoch])

    def on_train_epoch_end(self):
        self.seen.append(["epoch_end", self.current_epoch])

    def weights(self):
        return torch.cat([p.detach().flatten() for p in self.parameters()])

    def on_train_batch_start(self, batch, batch_idx):
        self.seen.append(
            ["step", self.current_epoch, batch_idx, self.global_step, int(batch[0, 0])]
        )
        self.before = self.weights()

    def on_train_batch_end(self, outputs, batch, batch_idx):
        changed = not torch.equal(self.before, self.weights())
        self.seen.append(["updated", changed, self.global_step, sorted(outputs or {})])

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def trainer(root, **kwargs):
    kwargs.setdefault("limit_val_batches", 0)
    return pl.Trainer(
        default_root_dir=root,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        **kwargs,
    )


def resumed(first, second, val=False, callbacks=None):
    """Fit with ``first``, then a new Trainer with ``second`` resumes from its checkpoint."""
    seen = []
    with tempfile.TemporaryDirectory() as root:
        extra = {"limit_val_batches": 1} if val else {}
        fit = trainer(root, callbacks=callbacks and callbacks(), **first, **extra)
        fit.fit(Recorder(seen), loader(), loader() if val else None)
        seen.append(["fit_end", fit.current_epoch, fit.global_step])
        path = fit.checkpoint_callback.best_model_path
        again = trainer(root, callbacks=callbacks and callbacks(), **second, **extra)
        again.fit(Recorder(seen), loader(), loader() if val else None, ckpt_path=path)
        seen.append(["fit_end", again.current_epoch, again.global_step])
    return seen


def refit_after_failure():
    seen = []
    with tempfile.TemporaryDirectory() as root:
        fit = trainer(root, max_epochs=2)
        model = Recorder(seen, fail_at=(0, 2))
        try:
            fit.fit(model, loader())
        except RuntimeError:
            seen.append(["failed", fit.current_epoch, fit.global_step])
        fit.fit(model, loader())
        seen.append(["fit_end", fit.current_epoch, fit.global_step])
    return seen


def steps(**kwargs):
    """One fit with a Recorder made with ``kwargs`` (and the Trainer's ``accumulate``)."""
    from lightning.pytorch.loops.optimization.automatic import Closure

    Closure.warning_cache.clear()  # as Lightning's tests do: the warning comes once a process
    seen = []
    accumulate = kwargs.pop("accumulate", 1)
    with tempfile.TemporaryDirectory() as root, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit = trainer(root, max_epochs=1, accumulate_grad_batches=accumulate)
        fit.fit(Recorder(seen, **kwargs), loader())
        seen.append(["fit_end", fit.current_epoch, fit.global_step])
    said = sorted({str(w.message) for w in caught if "returned `None`" in str(w.message)})
    return seen + [["warnings", said]]


def no_optimizer():
    seen = []
    model = Recorder(seen)
    model.configure_optimizers = lambda: None
    with tempfile.TemporaryDirectory() as root, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit = trainer(root, max_epochs=1)
        fit.fit(model, loader())
        seen.append(["fit_end", fit.current_epoch, fit.global_step])
    said = sorted({str(w.message) for w in caught if "optimizer" in str(w.message)})
    return seen + [["warnings", said]]


def log_twice(on_epoch):
    class Twice(Recorder):
        def training_step(self, batch, batch_idx):
            self.log("a", 1.0, on_epoch=on_epoch)
            self.log("a", 3.0, on_epoch=on_epoch)
            return super().training_step(batch, batch_idx)

    with tempfile.TemporaryDirectory() as root:
        fit = trainer(root, max_epochs=1)
        fit.fit(Twice([]), loader())
        return {k: float(v) for k, v in sorted(fit.callback_metrics.items())}


def early_stopping():
    return EarlyStopping("v", patience=1)


CASES = {
    "max_steps_then_max_steps": lambda: resumed({"max_steps": 3}, {"max_steps": 7}),
    "max_steps_then_more_steps": lambda: resumed({"max_steps": 3}, {"max_steps": 12}),
    "max_steps_then_max_epochs": lambda: resumed({"max_steps": 3}, {"max_epochs": 2}),
    "max_steps_then_both": lambda: resumed({"max_steps": 3}, {"max_steps": 7, "max_epochs": 2}),
    "finished_then_resumed": lambda: resumed({"max_epochs": 1}, {"max_epochs": 1}),
    "early_stopping_then_more_epochs": lambda: resumed(
        {"max_epochs": 5}, {"max_epochs": 6}, val=True, callbacks=lambda: [early_stopping()]
    ),
    "refit_after_failure": refit_after_failure,
    "none_on_even_batches": lambda: steps(none_on_even=True),
    "none_on_even_batches_accumulated": lambda: steps(none_on_even=True, accumulate=2),
    "no_batch_idx_accumulated": lambda: steps(no_batch_idx=True, accumulate=2),
    "no_optimizer": no_optimizer,
    "log_twice_on_step": lambda: log_twice(False),
    "log_twice_on_epoch": lambda: log_twice(True),
}


def main() -> None:
    results = {name: case() for name, case in CASES.items()}
    with open(sys.argv[1], "w") as f:
        json.dump(results, f)


if __name__ == "__main__":
    main()
