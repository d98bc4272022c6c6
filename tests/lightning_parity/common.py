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

    def __init__(
        self,
        stop_at_step: int | None = None,
        log_in_batch_end: bool = False,
        extra_logs: list[dict[str, Any]] | None = None,
        train_epoch_score: bool = False,
    ) -> None:
        self.log_in_batch_end = log_in_batch_end
        self.train_epoch_score = train_epoch_score
        self.extra_logs = extra_logs or []
        self.events: list[list[Any]] = []
        self.counts: dict[str, int] = {}
        self.val_batches = 0
        self.stop_at_step = stop_at_step

    @classmethod
    def for_scenario(cls, scenario: dict[str, Any]) -> Recorder:
        return cls(
            scenario.get("stop_at_step"),
            scenario.get("log_in_batch_end", False),
            scenario.get("extra_logs"),
            scenario.get("train_epoch_score", False),
        )

    def count(self, hook: str) -> None:
        self.counts[hook] = self.counts.get(hook, 0) + 1

    def callback_hook(self, hook: str, trainer: Any) -> None:
        self.count(hook)
        if hook == "on_validation_start":
            self.val_batches = 0
        elif hook == "on_validation_batch_end":
            self.val_batches += 1
        elif hook == "on_validation_end":
            where = [trainer.global_step, trainer.current_epoch, self.val_batches]
            self.events.append(["val", bool(trainer.sanity_checking), *where])
        elif hook == "on_save_checkpoint":
            saved = ["save", trainer.global_step, trainer.current_epoch]
            if (
                not self.events or self.events[-1] != saved
            ):  # Lightning writes last.ckpt as a 2nd save
                self.events.append(saved)
        elif hook == "on_train_batch_end" and self.stop_at_step is not None:
            if trainer.global_step >= self.stop_at_step:
                trainer.should_stop = True  # as a Timer would

    def log_extras(self, module: Any, stage: str, batch_idx: Any) -> None:
        """The scenario's ``self.log`` calls made from ``stage``'s step: a value scripted from
        ``batch_idx`` (the same in both frameworks), with the scenario's options."""
        for spec in self.extra_logs:
            if spec["stage"] == stage:
                options = {k: v for k, v in spec.items() if k not in ("stage", "name", "scale")}
                module.log(spec["name"], (batch_idx + 1) * spec.get("scale", 1.5), **options)


def extra_metrics(trainer: Any) -> dict[str, dict[str, float]]:
    """The trainer's metric dicts restricted to the scenario's extra names (``x_...``)."""
    out = {}
    for kind in ("callback_metrics", "logged_metrics", "progress_bar_metrics"):
        values = getattr(trainer, kind)
        out[kind] = {k: round(float(v), 4) for k, v in values.items() if k.startswith("x_")}
    return out


def recording_callback(base: type) -> type:
    """A callback class over ``base`` (either framework's ``Callback``) that feeds a Recorder."""

    def make(name: str) -> Any:
        def hook(self: Any, trainer: Any, module: Any, *args: Any, **kwargs: Any) -> None:
            self.recorder.callback_hook(name, trainer)

        return hook

    def init(self: Any, recorder: Recorder) -> None:
        self.recorder = recorder

    return type("Recording", (base,), {"__init__": init, **{n: make(n) for n in CALLBACK_HOOKS}})


def count_module_hooks(cls: type, base: type) -> None:
    """Make ``cls``'s module hooks count themselves; ``on_validation_epoch_end`` also logs the
    scripted ``score``, and ``on_train_epoch_end`` ``train_score`` when the scenario asks
    (``cls`` instances have a ``recorder``)."""

    def make(name: str) -> Any:
        inherited = getattr(base, name)

        def hook(self: Any, *args: Any) -> Any:
            self.recorder.count("module." + name)
            if name == "on_validation_epoch_end":
                self.log("score", score(self.trainer.global_step))
            if name == "on_train_epoch_end" and self.recorder.train_epoch_score:
                self.log("train_score", score(self.trainer.global_step))
            if name == "on_train_batch_end" and self.recorder.log_in_batch_end:
                self.log("hook_value", 1.0)
            return inherited(self, *args)

        return hook

    for name in MODULE_HOOKS:
        setattr(cls, name, make(name))


def read_csv_rows(path: str) -> list[list[Any]]:
    """(step, epoch, sorted metric names present, scripted score, extra ``x_`` values) per row."""
    if not os.path.exists(path):
        return []
    rows = []
    with open(path) as f:
        for row in csv.DictReader(f):
            present = sorted(
                k for k, v in row.items() if v not in ("", None) and k not in ("step", "epoch")
            )
            epoch = row.get("epoch")
            value = row.get("score")
            rows.append(
                [
                    int(float(row["step"])),
                    None if epoch in (None, "") else int(float(epoch)),
                    present,
                    None if value in (None, "") else float(value),
                    {
                        k: round(float(v), 4)
                        for k, v in row.items()
                        if k.startswith("x_") and v not in ("", None)
                    },
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
