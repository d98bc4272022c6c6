"""Shared by both sides of the Lightning differential suite: data, scripted scores, traces.

Runs under both interpreters (the anchor venv for Lightning, the workspace venv for ours), so
it imports only numpy and the standard library.
"""

from __future__ import annotations

import csv
import math
import os
from typing import Any

import numpy as np

BATCH = 2
DIM = 4
# A validation "score" that depends only on where training is, so both frameworks rank
# checkpoints and stop early identically whatever their float rounding: score(global_step).
_SCRIPT = [5.0, 3.0, 4.0, 2.0, 6.0, 1.0, 7.0, 0.5, 8.0, 9.0, 2.5, 2.5, 10.0]

CALLBACK_HOOKS = [
    "setup",
    "teardown",
    "on_fit_start",
    "on_fit_end",
    "on_sanity_check_start",
    "on_sanity_check_end",
    "on_train_start",
    "on_train_end",
    "on_train_epoch_start",
    "on_train_epoch_end",
    "on_train_batch_start",
    "on_train_batch_end",
    "on_before_optimizer_step",
    "on_validation_start",
    "on_validation_end",
    "on_validation_epoch_start",
    "on_validation_epoch_end",
    "on_validation_batch_start",
    "on_validation_batch_end",
    "on_save_checkpoint",
    "on_load_checkpoint",
]
MODULE_HOOKS = [
    "on_fit_start",
    "on_fit_end",
    "on_train_start",
    "on_train_end",
    "on_train_epoch_start",
    "on_train_epoch_end",
    "on_train_batch_start",
    "on_train_batch_end",
    "on_validation_start",
    "on_validation_end",
    "on_validation_epoch_start",
    "on_validation_epoch_end",
    "on_validation_batch_start",
    "on_validation_batch_end",
    "on_before_optimizer_step",
    "on_save_checkpoint",
    "on_load_checkpoint",
]


def score(global_step: int) -> float:
    return _SCRIPT[global_step % len(_SCRIPT)]


def arrays(batches: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batches * BATCH, DIM)).astype(np.float32)
    y = (x @ np.arange(1, DIM + 1, dtype=np.float32)[:, None] * 0.1).astype(np.float32)
    return x, y


class Recorder:
    """Hook bookkeeping shared by both frameworks' recording callbacks (duck-typed trainers)."""

    def __init__(self, stop_at_step: int | None = None) -> None:
        self.events: list[list[Any]] = []
        self.counts: dict[str, int] = {}
        self.val_batches = 0
        self.stop_at_step = stop_at_step

    def count(self, hook: str) -> None:
        self.counts[hook] = self.counts.get(hook, 0) + 1

    def validation_start(self) -> None:
        self.val_batches = 0

    def validation_end(self, trainer: Any) -> None:
        self.events.append(
            ["val", bool(trainer.sanity_checking), trainer.global_step, trainer.current_epoch, self.val_batches]
        )

    def saved(self, trainer: Any) -> None:
        where = ["save", trainer.global_step, trainer.current_epoch]
        if not self.events or self.events[-1] != where:  # Lightning writes last.ckpt as a 2nd save
            self.events.append(where)

    def batch_end(self, trainer: Any) -> None:
        if self.stop_at_step is not None and trainer.global_step >= self.stop_at_step:
            trainer.should_stop = True


def read_csv_rows(path: str) -> list[list[Any]]:
    """(step, epoch, sorted metric names present, scripted score) per row."""
    if not os.path.exists(path):
        return []
    rows = []
    with open(path) as f:
        for row in csv.DictReader(f):
            present = sorted(k for k, v in row.items() if v not in ("", None) and k not in ("step", "epoch"))
            epoch = row.get("epoch")
            value = row.get("score")
            rows.append(
                [
                    int(float(row["step"])),
                    None if epoch in (None, "") else int(float(epoch)),
                    present,
                    None if value in (None, "") else float(value),
                ]
            )
    return rows


def kept(dirpath: str | None, suffix: str) -> list[str]:
    """Checkpoint names in ``dirpath`` without the framework's suffix (``.ckpt`` or none)."""
    if not dirpath or not os.path.isdir(dirpath):
        return []
    names = [n for n in os.listdir(dirpath) if not n.startswith(".")]
    if suffix:
        return sorted(n[: -len(suffix)] for n in names if n.endswith(suffix))
    if "last" in names and os.path.islink(os.path.join(dirpath, "last")):
        target = os.path.basename(os.readlink(os.path.join(dirpath, "last")))
        if target.startswith("last-"):  # our last-only checkpoint behind the `last` link
            names.remove(target)
    return sorted(names)


def clean_score(value: Any) -> float | None:
    if value is None:
        return None
    value = float(value)
    return None if math.isnan(value) else round(value, 4)
