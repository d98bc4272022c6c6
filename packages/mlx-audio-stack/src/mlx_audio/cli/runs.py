"""A training run's folder (``trainer.default_root_dir``), as ``mlx-audio train`` keeps it.

NOTE [run folder]: a folder holds one run. ``train`` refuses a folder that already holds one
(a ``run.json`` or checkpoints) unless ``--resume`` says to go on with it; ``--resume`` where
there is no checkpoint yet says that it starts a new run. Each
resumed part logs to a new ``logs/version_N`` (as Lightning's loggers version a new run), so
the earlier part's rows stay; ``plot`` joins the versions.

``run.json`` (what ``evaluate`` and ``predict`` read) is rewritten, atomically, every time a
checkpoint is written -- not only at the end -- so a run stopped by Ctrl-C, SIGTERM or a crash
can be evaluated and resumed. Its paths are relative to the run folder, so a moved or copied
run still works. Ctrl-C stops at the next step boundary and saves a checkpoint there
(``ModelCheckpoint(save_on_exception=True)``): ``--resume`` goes on after the last finished
batch.
"""

from __future__ import annotations

import json
import math
import os
from typing import TYPE_CHECKING, Any

from mlx_audio.train.callbacks import ModelCheckpoint

if TYPE_CHECKING:
    from mlx_audio.train import Trainer, TrainModule

    from .config import Settings

RUN_JSON = "run.json"


class RunFolderError(ValueError):
    """A run folder that cannot be used as asked: it holds a run already, or lacks run.json."""


class Interrupted(Exception):
    """Training stopped by Ctrl-C or SIGTERM; ``str()`` says where the work is."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


def say(line: str) -> None:
    print(f"mlx-audio: {line}", flush=True)  # flushed: forked workers must not repeat it


def start(settings: Settings, resume: bool) -> str | None:
    """Before training: the checkpoint ``--resume`` goes on from (None: a new run); a folder
    that already holds a run is refused without ``--resume`` (NOTE [run folder])."""
    root = settings.trainer.default_root_dir
    checkpoints = os.path.join(root, "checkpoints")
    last = os.path.join(checkpoints, "last")
    if resume:
        if os.path.lexists(last):
            target = os.path.realpath(last)
            if not os.path.isdir(target):
                raise RunFolderError(f"--resume: {last} points at {target}, which is missing")
            say(f"resuming from {target}")
            return last
        say(f"--resume: no checkpoint in {checkpoints}; starting a new run")
        return None
    found = [RUN_JSON] if os.path.isfile(os.path.join(root, RUN_JSON)) else []
    if os.path.isdir(checkpoints) and os.listdir(checkpoints):
        found.append("checkpoints/")
    if found:  # a folder with neither has nothing to lose: its logs get a new version
        raise RunFolderError(
            f"{root} already holds a run ({', '.join(found)}): continue it with --resume, or "
            "start another with --trainer.default_root_dir <new folder>"
        )
    return None


# NOTE [what a resumed run may change]: a checkpoint's weights mean something only with the
# settings below (the model, the features it reads, how labels are named) and with the classes
# its outputs stand for: resuming with any of them changed is refused (it would relabel the
# run). Anything else -- the validation set, batching, epochs -- Lightning resumes with whatever
# it is given: allowed, and said in one line, since the best score so far was measured as before.
MEANING = {
    "model.name", "model.task", "model.pretrained", "model.n_mels", "model.n_fft",
    "model.hop_length", "model.f_min", "model.top_db", "model.channels", "data.sample_rate",
    "data.label_column",
}  # fmt: skip
HOW = "start a new run with --trainer.default_root_dir <new folder> (without --resume)"


def flat(settings: Settings) -> dict[str, Any]:
    import dataclasses

    return {
        f"{section}.{key}": value
        for section, values in dataclasses.asdict(settings).items()
        for key, value in values.items()
    }


def earlier(root: str) -> dict[str, Any] | None:
    """The settings the run folder's last part was trained with (its config.yaml), flat."""
    from .config import load

    path = os.path.join(root, "config.yaml")
    return flat(load(path, {})) if os.path.isfile(path) else None


def check_resume(settings: Settings, root: str) -> None:
    """Before reading the data: ``--resume`` with settings that change what the checkpoint
    means is refused (NOTE [what a resumed run may change])."""
    before, now = earlier(root), flat(settings)
    if before is None:
        return
    changed = [f"{k} {before[k]!r} -> {now[k]!r}" for k in sorted(MEANING) if before[k] != now[k]]
    if changed:
        raise RunFolderError(
            f"--resume: {root} was trained with other settings ({'; '.join(changed)}); its "
            f"checkpoint means nothing with these: {HOW}, or resume with the run's settings"
        )


def check_classes(root: str, classes: list[str], source: str) -> None:
    """After reading the data: the run's classes must be the data's (else a relabelled run)."""
    path = os.path.join(root, RUN_JSON)
    saved = read(root).get("classes") if os.path.isfile(path) else None
    if saved is not None and list(saved) != list(classes):

        def shown(names: list[str]) -> str:
            return ", ".join(names[:8]) + (f" ... ({len(names)})" if len(names) > 8 else "")

        raise RunFolderError(
            f"--resume: {root} was trained on classes {shown(list(saved))}; --data {source} has "
            f"{shown(list(classes))}: resuming would relabel the run; {HOW}, or resume with "
            "the run's data"
        )


def report_changes(settings: Settings, root: str) -> None:
    """One line: what else differs from the run's earlier part (allowed, said)."""
    before, now = earlier(root), flat(settings)
    if before is None:
        return
    fitted = {"trainer.log_every_n_steps"}  # null in the settings, fitted to the run
    changed = [k for k in now if k not in MEANING | fitted and before.get(k, now[k]) != now[k]]
    if not changed:
        return
    shown = ", ".join(f"{k} {before[k]!r} -> {now[k]!r}" for k in changed[:6])
    more = f" and {len(changed) - 6} more" if len(changed) > 6 else ""
    validation = {"data.val", "data.val_fraction", "data.train", "trainer.seed"} & set(changed)
    note = (
        f"; the best {settings.trainer.monitor} so far was measured on the earlier validation set"
        if validation
        else ""
    )
    say(f"resuming with changed settings: {shown}{more}{note}")


def log_version(root: str) -> int:
    """The ``logs/version_N`` (and ``tensorboard/version_N``) of this part of the run."""
    from mlx_audio.loggers.base import next_version

    return max(next_version(os.path.join(root, name)) for name in ("logs", "tensorboard"))


def fit_log_interval(settings: Settings, batches: int, resumed: str | None = None) -> None:
    """``trainer.log_every_n_steps: null`` (the default): an interval that gives a curve of
    about 100 points over the run, at least one point per epoch and at most Lightning's 50;
    ``resumed`` (a checkpoint): counted from where it stopped, the steps still to run."""
    t = settings.trainer
    if t.log_every_n_steps is not None:
        return
    limit = t.limit_train_batches
    if isinstance(limit, float):
        batches = int(batches * limit)
    elif isinstance(limit, int):
        batches = min(batches, limit)
    per_epoch = max(1, math.ceil(batches / t.accumulate_grad_batches))
    epochs = t.max_epochs if t.max_epochs is not None and t.max_epochs >= 0 else None
    total = t.max_steps if t.max_steps is not None and t.max_steps >= 0 else None
    step, epoch, done = where(resumed, t.accumulate_grad_batches)
    if epochs is not None:  # the epochs still to run, after the step it stopped at
        by_epochs = step - done + per_epoch * max(0, epochs - epoch)
        total = by_epochs if total is None else min(total, by_epochs)
    left = None if total is None else max(0, total - step)
    every = max(1, min(50, per_epoch, (left or 50 * 100) // 100))
    t.log_every_n_steps = every
    length = f"{plural(per_epoch, 'step')} an epoch"
    if left is not None:
        length = (
            f"{plural(left, 'step')} to run"
            + (f", to step {total}" if step else "")
            + (f", {per_epoch} an epoch")
        )
    say(
        f"logging training metrics every {every} step{'s' if every > 1 else ''} ({length}; "
        "set trainer.log_every_n_steps to choose)"
    )


def plural(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def where(checkpoint: str | None, accumulate: int = 1) -> tuple[int, int, int]:
    """``(global step, epoch it goes on in, steps of that epoch done)`` of a checkpoint
    (``(0, 0, 0)``: a new run); a checkpoint saved mid-epoch goes on in that epoch."""
    state = os.path.join(checkpoint, "trainer_state.json") if checkpoint else ""
    if not os.path.isfile(state):
        return 0, 0, 0
    with open(state) as f:
        saved = json.load(f)
    step, epoch = int(saved.get("global_step", 0)), int(saved.get("epoch", 0))
    if saved.get("epoch_finished"):  # cut short by max_steps too: the next epoch follows
        return step, epoch + 1, 0
    return step, epoch, int(saved.get("batch_in_epoch", 0)) // max(1, accumulate)


def _relative(path: str | None, root: str) -> str | None:
    if not path:
        return None
    absolute, folder = os.path.realpath(path), os.path.realpath(root)
    inside = os.path.commonpath([absolute, folder]) == folder
    return os.path.relpath(absolute, folder) if inside else absolute


def write(root: str, trainer: Trainer, fields: dict[str, Any], status: str) -> None:
    """``root/run.json`` (atomically): ``fields`` (classes, model, clap), the best and last
    checkpoints relative to ``root``, the status and where training stood."""
    callback = trainer.checkpoint_callback
    best = callback.best_model_path if callback is not None else None
    last = os.path.join(root, "checkpoints", "last")
    record = {
        **fields,
        "best": _relative(best, root),
        "last": os.path.join("checkpoints", "last") if os.path.lexists(last) else None,
        "clap": _relative(fields.get("clap"), root),
        "status": status,
        "epoch": trainer.current_epoch,
        "step": trainer.global_step,
    }
    tmp = os.path.join(root, f".{RUN_JSON}.tmp")
    with open(tmp, "w") as f:
        json.dump(record, f, indent=2)
    os.replace(tmp, os.path.join(root, RUN_JSON))


class RunCheckpoint(ModelCheckpoint):
    """The command's ModelCheckpoint: also at Ctrl-C (``save_on_exception``), and run.json
    rewritten after every checkpoint it writes (NOTE [run folder])."""

    def __init__(self, root: str, fields: dict[str, Any], **kwargs: Any) -> None:
        # the run folder's own layout (root/checkpoints), whatever the loggers' versions
        kwargs.setdefault("dirpath", os.path.join(root, "checkpoints"))
        super().__init__(save_on_exception=True, **kwargs)
        self.root = root
        self.fields = fields
        self._recorded: tuple[str, str] | None = None

    def _record(self, trainer: Trainer, status: str = "running") -> None:
        last = os.path.realpath(self.last_model_path) if self.last_model_path else ""
        now = (self.best_model_path, last)  # last_model_path is dirpath/last: where it points
        if self.last_model_path and (now != self._recorded or status != "running"):
            if trainer.is_global_zero:
                write(self.root, trainer, self.fields, status)
            self._recorded = now

    def on_train_batch_end(
        self, trainer: Trainer, module: TrainModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        super().on_train_batch_end(trainer, module, outputs, batch, batch_idx)
        self._record(trainer)

    def on_train_epoch_end(self, trainer: Trainer, module: TrainModule) -> None:
        super().on_train_epoch_end(trainer, module)
        self._record(trainer)

    def on_validation_end(self, trainer: Trainer, module: TrainModule) -> None:
        super().on_validation_end(trainer, module)
        self._record(trainer)

    def on_train_end(self, trainer: Trainer, module: TrainModule) -> None:
        super().on_train_end(trainer, module)
        self._record(trainer)

    def on_exception(self, trainer: Trainer, module: TrainModule, exception: BaseException) -> None:
        super().on_exception(trainer, module, exception)
        stopped = isinstance(exception, (KeyboardInterrupt, SystemExit))
        self._record(trainer, "interrupted" if stopped else "failed")


def interrupted(trainer: Trainer, root: str, error: BaseException) -> Interrupted:
    """What the command says when Ctrl-C (or SIGTERM) stopped training: one line."""
    how = "stopped by SIGTERM" if isinstance(error, SystemExit) else "interrupted"
    status = 143 if isinstance(error, SystemExit) else 130
    last = os.path.join(root, "checkpoints", "last")
    callback = trainer.checkpoint_callback
    if callback is None or not callback.last_model_path or not os.path.lexists(last):
        return Interrupted(f"{how} before the first step ended; nothing was saved", status)
    return Interrupted(
        f"{how} at epoch {trainer.current_epoch}, step {trainer.global_step}; saved "
        f"{os.path.realpath(last)} (--resume goes on from there)",
        status,
    )


def read(run: str) -> dict[str, Any]:
    """``run/run.json``, checked."""
    path = os.path.join(run, RUN_JSON)
    if not os.path.isfile(path):
        raise RunFolderError(
            f"--run {run}: no {RUN_JSON} (written by `mlx-audio train` at its first checkpoint)"
        )
    with open(path) as f:
        saved: dict[str, Any] = json.load(f)
    return saved


def checkpoint(run: str, saved: dict[str, Any], which: str | None) -> str:
    """The checkpoint folder ``--checkpoint`` names: best (default), last, or a folder. The
    run's own paths are relative to it (older runs: absolute, still read)."""
    last = os.path.join(run, saved.get("last") or os.path.join("checkpoints", "last"))
    if which in (None, "best"):
        return os.path.join(run, saved["best"]) if saved.get("best") else last
    if which == "last":
        return last
    return which
