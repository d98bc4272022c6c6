"""Checkpoint directories: ``model.safetensors``, ``optimizer.safetensors``, ``trainer_state.json``.

A checkpoint is written to a temporary directory, fsynced, and renamed into place, so a
directory under its final name is always complete; ``last`` is a relative symlink switched
atomically with ``os.replace``. The JSON records a SHA-256 of each weights file, so a
truncated or edited file is refused with its name. Nothing here ever unpickles.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
from typing import TYPE_CHECKING, Any

import mlx.core as mx
import numpy as np

from . import distributed
from ._checkpoint_files import clean_leftovers, delete_checkpoint, fsync, point_last
from ._nonfinite import check_nonfinite
from ._tree import flatten

if TYPE_CHECKING:
    from .trainer import Trainer


__all__ = [
    "CheckpointError",
    "clean_leftovers",
    "delete_checkpoint",
    "point_last",
    "save_checkpoint",
]

MODEL_FILE = "model.safetensors"
OPTIMIZER_FILE = "optimizer.safetensors"
ACCUMULATOR_FILE = "accumulator.safetensors"  # only inside an accumulation group
CURRENT_MODEL_FILE = "current_model.safetensors"  # the raw weights beside averaged ones
AVERAGE_MODEL_FILE = "average_model.safetensors"  # StochasticWeightAveraging's average
STATE_FILE = "trainer_state.json"
_FILES = (MODEL_FILE, OPTIMIZER_FILE, ACCUMULATOR_FILE, CURRENT_MODEL_FILE, AVERAGE_MODEL_FILE)
# NOTE [averaged weights in checkpoints]: checkpoint keys (Lightning's) -> the extra files
ARRAY_KEYS = {"current_model_state": CURRENT_MODEL_FILE, "average_model_state": AVERAGE_MODEL_FILE}
FORMAT_VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint that cannot be used: missing, truncated, tampered or for another model."""


class CheckpointNotFoundError(CheckpointError, FileNotFoundError):
    """No checkpoint at the path (a ``FileNotFoundError`` too, as Lightning's is)."""


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def save_checkpoint(
    directory: str,
    model_weights: dict[str, mx.array],
    optimizer_state: dict[str, mx.array],
    state: dict[str, Any],
    accumulator: dict[str, mx.array] | None = None,
    extra: dict[str, dict[str, mx.array]] | None = None,
) -> str:
    """Write a complete checkpoint at ``directory`` (which must not exist yet); ``accumulator``
    is the gradient sum of an unfinished accumulation group; ``extra`` more weights files (file
    name -> arrays: NOTE [averaged weights in checkpoints])."""
    directory = os.path.abspath(directory)
    if os.path.exists(directory):
        raise FileExistsError(f"checkpoint {directory} already exists")
    _refuse_nonfinite(
        directory,
        {
            "model": model_weights,
            "optimizer": optimizer_state,
            "accumulator": accumulator or {},
            **{name: arrays for name, arrays in (extra or {}).items()},
        },
    )
    parent = os.path.dirname(directory)
    os.makedirs(parent, exist_ok=True)
    tmp = os.path.join(
        parent, f".tmp-{os.path.basename(directory)}-{os.getpid()}-{secrets.token_hex(4)}"
    )
    os.makedirs(tmp)
    try:
        files = {MODEL_FILE: model_weights, OPTIMIZER_FILE: optimizer_state}
        if accumulator:
            files[ACCUMULATOR_FILE] = accumulator
        files.update(extra or {})
        digests = {}
        for name, arrays in files.items():
            path = os.path.join(tmp, name)
            mx.save_safetensors(path, arrays)
            fsync(path)
            digests[name] = _sha256(path)
        payload = {**state, "format_version": FORMAT_VERSION, "sha256": digests}
        with open(os.path.join(tmp, STATE_FILE), "w") as f:
            json.dump(payload, f, indent=1, allow_nan=True)
            f.flush()
            os.fsync(f.fileno())
        fsync(tmp)
        os.rename(tmp, directory)
        fsync(parent)
    except (OSError, RuntimeError) as error:  # MLX says only "[write] Unable to write ... bytes"
        shutil.rmtree(tmp, ignore_errors=True)
        free = shutil.disk_usage(parent).free / 2**20
        number = getattr(error, "errno", None)
        message = (
            f"could not write the checkpoint {directory}: {error} ({free:.0f} MiB free on its "
            "file system; a full disk?); the previous checkpoints are kept"
        )
        raise (OSError(number, message) if number else OSError(message)) from error
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return directory


def resolve(path: str) -> str:
    """The real checkpoint directory behind ``path`` (a directory or a ``last`` link)."""
    real = os.path.realpath(path)
    if not os.path.isdir(real):
        raise CheckpointNotFoundError(
            f"no checkpoint directory at {path}"
            + (f" (-> {real})" if real != os.path.abspath(path) else "")
        )
    if not os.path.exists(os.path.join(real, STATE_FILE)):
        raise CheckpointError(f"{real} is not a checkpoint: {STATE_FILE} is missing")
    return real


def read_state(path: str, verify: bool | None = None) -> tuple[str, dict[str, Any]]:
    """(directory, trainer_state) after checking the JSON, its fields and the files' checksums.

    The checksums are required: a checkpoint without them is refused unless ``verify=False``
    (or ``MLX_AUDIO_UNVERIFIED_CHECKPOINTS=1`` in the environment), which skips the check.
    """
    directory = resolve(path)
    state_path = os.path.join(directory, STATE_FILE)
    try:
        with open(state_path) as f:
            state = json.load(f)
    except (OSError, ValueError) as error:
        raise CheckpointError(f"{state_path} is unreadable or not valid JSON: {error}") from error
    check_fields(state, state_path)
    if verify is None:
        verify = os.environ.get("MLX_AUDIO_UNVERIFIED_CHECKPOINTS") != "1"
    digests = state.get("sha256")
    if not verify:
        return directory, state
    if not isinstance(digests, dict) or not all(isinstance(v, str) for v in digests.values()):
        raise CheckpointError(
            f"{state_path}: 'sha256' (the files' checksums) is missing or malformed, so the weights "
            "cannot be verified; load it anyway with MLX_AUDIO_UNVERIFIED_CHECKPOINTS=1"
        )
    for name in _FILES:
        if os.path.exists(os.path.join(directory, name)) and name not in digests:
            raise CheckpointError(f"{state_path}: 'sha256' has no checksum for {name}")
    for name, digest in digests.items():
        if name not in _FILES:
            raise CheckpointError(f"{state_path}: 'sha256' names an unknown file {name!r}")
        file = os.path.join(directory, name)
        if not os.path.exists(file):
            raise CheckpointError(f"{file} is missing")
        if _sha256(file) != digest:
            raise CheckpointError(
                f"{file} does not match the checksum in {STATE_FILE}: truncated or modified"
            )
    return directory, state


_FIELDS: dict[str, tuple[type, ...]] = {
    "format_version": (int,),
    "rng": (dict,),
    "rng_base": (int,),
    "accumulated_batches": (int,),
    "loader": (dict, type(None)),
    "callbacks": (dict,),
    "callback_metrics": (dict,),
}


def check_fields(state: Any, file: str) -> None:
    """Every field a resume reads has the right type (CheckpointError naming the file and the
    key); counters are checked by ``Progress.from_state``."""
    if not isinstance(state, dict):
        raise CheckpointError(f"{file}: expected a JSON object, got {type(state).__name__}")
    version = state.get("format_version")
    if version != FORMAT_VERSION:
        raise CheckpointError(
            f"{file}: 'format_version' is {version!r}; this mlx-audio reads format {FORMAT_VERSION}"
            + (
                " (written by a newer mlx-audio: upgrade it)"
                if isinstance(version, int) and version > FORMAT_VERSION
                else ""
            )
        )
    for key, kinds in _FIELDS.items():
        if key in state and (not isinstance(state[key], kinds) or isinstance(state[key], bool)):
            names = " or ".join("null" if k is type(None) else k.__name__ for k in kinds)
            raise CheckpointError(f"{file}: {key!r} must be {names}, got {state[key]!r:.80}")
    for key in ("rng", "rng_base"):
        if key not in state:
            raise CheckpointError(f"{file}: {key!r} is missing")
    rng = state["rng"]
    if (
        not isinstance(rng.get("numpy"), list)
        or len(rng["numpy"]) != 5
        or not isinstance(rng.get("python"), list)
    ):
        raise CheckpointError(f"{file}: 'rng' must hold numpy's and Python's generator states")
    metrics = state.get("callback_metrics", {})
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in metrics.values()):
        raise CheckpointError(f"{file}: 'callback_metrics' must map names to numbers")


def _refuse_nonfinite(directory: str, groups: dict[str, dict[str, mx.array]]) -> None:
    """A checkpoint never holds NaN/Inf: refuse (CheckpointError naming the first array)."""
    named = [(f"{group}:{key}", a) for group, arrays in groups.items() for key, a in arrays.items()]
    floats = [(name, a) for name, a in named if mx.issubdtype(a.dtype, mx.floating)]
    if not floats:
        return
    checks = mx.stack([mx.all(mx.isfinite(a)) for _, a in floats])
    if bool(mx.all(checks).item()):
        return
    flags = [bool(v) for v in np.asarray(checks)]
    first = next(name for (name, _), ok in zip(floats, flags) if not ok)
    raise CheckpointError(
        f"refusing to write {directory}: {first} holds non-finite values (NaN or Inf); the "
        "previous checkpoints are kept"
    )


def load_arrays(file: str) -> dict[str, mx.array]:
    try:
        return mx.load(file)  # type: ignore[return-value]  # a .safetensors file: a dict
    except Exception as error:  # MLX raises RuntimeError/ValueError for damaged files
        raise CheckpointError(f"{file} cannot be read as safetensors: {error}") from error


def check_against(
    file: str, loaded: dict[str, mx.array], expected: dict[str, mx.array], what: str
) -> None:
    """Raise naming the file and the first key that is missing, unexpected or misshapen."""
    missing = [k for k in expected if k not in loaded]
    if missing:
        raise CheckpointError(
            f"{file}: {what} key {missing[0]!r} is missing ({len(missing)} missing in all; a different model?)"
        )
    unexpected = [k for k in loaded if k not in expected]
    if unexpected:
        raise CheckpointError(
            f"{file}: unexpected {what} key {unexpected[0]!r} ({len(unexpected)} in all; a different model?)"
        )
    for key, array in expected.items():
        if loaded[key].shape != array.shape:
            raise CheckpointError(
                f"{file}: {what} key {key!r} has shape {tuple(loaded[key].shape)} in the checkpoint but {tuple(array.shape)} here"
            )


def load_model_weights(model: Any, path: str, strict: bool = True) -> None:
    """Load weights from a checkpoint directory, its ``last`` link, or a .safetensors file."""
    if os.path.isfile(path) and path.endswith(".safetensors"):
        file = path
    else:
        directory, _ = read_state(path)
        file = os.path.join(directory, MODEL_FILE)
    loaded = load_arrays(file)
    current = dict(flatten(model.parameters()))
    if strict:
        check_against(file, loaded, current, "model")
    model.load_weights(
        [(k, v.astype(current[k].dtype) if k in current else v) for k, v in loaded.items()],
        strict=strict,
    )
    mx.eval(model.parameters())


# -- a Trainer's checkpoint: capture, resolve, restore -----------------------------------------


def default_dirpath(trainer: Trainer) -> str:
    """``ModelCheckpoint.dirpath`` when one is set up, else ``default_root_dir/checkpoints``."""
    callback = trainer.checkpoint_callback
    if callback is not None and callback.dirpath:
        return str(callback.dirpath)
    return os.path.join(trainer.default_root_dir, "checkpoints")


_FN = {"validation": "validate"}  # state_fn -> the Trainer method


def resolve_ckpt_path(trainer: Trainer, ckpt_path: str) -> str:
    """``"last"`` -> ``<dirpath>/last``; ``"best"`` -> the best checkpoint; else the path."""
    if ckpt_path == "best":  # Lightning's messages
        fn = _FN.get(str(trainer.state_fn), trainer.state_fn)
        callback = trainer.checkpoint_callback
        if callback is None:
            raise ValueError(
                f'`.{fn}(ckpt_path="best")` is set but `ModelCheckpoint` is not configured.'
            )
        if not callback.best_model_path:
            if trainer.fast_dev_run:
                raise ValueError(
                    f'You cannot execute `.{fn}(ckpt_path="best")` with `fast_dev_run=True`. Please pass '
                    f"an exact checkpoint path to `.{fn}(ckpt_path=...)`"
                )
            raise ValueError(
                f'`.{fn}(ckpt_path="best")` is set but `ModelCheckpoint` is not configured to save the '
                "best model."
            )
        return str(callback.best_model_path)
    if ckpt_path == "last":
        return os.path.join(default_dirpath(trainer), "last")
    return os.fspath(ckpt_path)


def run_keys(trainer: Trainer, together: bool) -> list[list[int]]:
    """Every rank's MLX key, the one training goes on with (NOTE [the run's key])."""
    from ._rng import current_key, gather_keys

    runner = trainer.runner
    assert runner is not None
    key = runner.held_key if runner.held_key is not None else current_key()
    with distributed.waiting("an exchange of the ranks' random keys"):
        return gather_keys(key, distributed.world_size(), together)


def capture(trainer: Trainer, path: str) -> str:
    """Write the trainer's complete state at ``path`` (weights, optimizer, progress, RNG, loader)."""
    from ._hparams import checkpoint_hparams
    from ._rng import rng_state, versions

    check_nonfinite(trainer)  # never write after a non-finite step the host has not seen yet

    module = trainer.module
    optimizer = trainer.optimizer
    runner = trainer.runner
    assert module is not None and optimizer is not None and runner is not None, (
        "save_checkpoint needs a running fit"
    )
    progress = trainer.progress
    # at the epoch's last batch (its update done) the epoch is over: the checkpoint resumes at
    # the next epoch, without the loader's position, so on any number of processes
    ended = progress.epoch_finished or (
        runner.micro == 0
        and progress.batch_in_epoch > 0
        and (trainer.is_last_batch or progress.batch_in_epoch >= trainer.num_training_batches)
    )
    state: dict[str, Any] = {
        **progress.to_state(),
        "epoch_finished": ended,
        "batches_that_stepped": progress.batches_that_stepped + int(trainer.update_pending),
        "rng": rng_state(),
        "rng_base": trainer.rng_base,
        "mlx_key": run_keys(trainer, not trainer.failing),  # NOTE [the run's key]
        "accumulated_batches": runner.micro,
        "world_size": distributed.world_size(),
        "loader": trainer.loader_state() if not ended or progress.epoch_cut else None,
        "callbacks": {c.state_key: c.state_dict() for c in trainer.callbacks},
        "callback_metrics": dict(trainer.callback_metrics),
        "versions": versions(),
        **checkpoint_hparams(trainer),  # hyperparameters, the datamodule's state (JSON)
    }
    state["state_dict"] = dict(flatten(module.parameters()))  # Lightning's checkpoint keys
    trainer.hooks.on_save_checkpoint(state)
    weights = state.pop("state_dict")  # NOTE [averaged weights in checkpoints]
    extra = {file: state.pop(key) for key, file in ARRAY_KEYS.items() if key in state}
    total = runner.total if runner.micro else None
    together = not trainer.failing  # NOTE [same collectives on every rank]: none while failing
    if (
        total is not None and together
    ):  # the ranks' mean: resumed on every rank, the update is exact
        total = distributed.mean_across(total)
    accumulator = dict(flatten(total)) if total is not None else None
    if trainer.is_global_zero:  # data-parallel: the weights are equal on every rank
        path = save_checkpoint(
            path, weights, dict(flatten(optimizer.state)), state, accumulator, extra
        )
    if together:
        distributed.barrier()  # the files exist before any rank goes on
    return os.path.abspath(path)
