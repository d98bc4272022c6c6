"""Global RNG state of a run: capture/restore for checkpoints, seeding, and MLX's key of a run."""

from __future__ import annotations

import random
from importlib import metadata
from typing import Any

import mlx.core as mx
import numpy as np

# one implementation of the capture (the data package's; same keys as before: the checkpoint
# format is unchanged)
from mlx_audio.data.support import global_rng_state as rng_state
from mlx_audio.data.support import set_global_rng_state as set_rng_state

__all__ = [
    "rng_state",
    "set_rng_state",
    "seed_everything",
    "seed_step",
    "current_key",
    "key_words",
    "set_key",
    "read_keys",
    "versions",
]


def seed_everything(seed: int) -> None:
    mx.random.seed(seed)
    np.random.seed(seed & 0xFFFFFFFF)
    random.seed(seed)


def seed_step(base: int, global_step: int, micro: int, rank: int = 0) -> None:
    """Seed MLX's global key from (base, step, micro-batch, rank): where a run's key starts
    (``global_step = micro = 0``) and where a resume from a checkpoint without a saved key goes
    on (NOTE [the run's key]).

    NOTE [random per rank]: each rank of a data-parallel run draws its own masks (its rank is
    folded into the key; rank 0's key is a one-process run's), so the ranks' samples get
    independent dropout, as the samples of one big batch do. Runs on N processes are therefore
    bit-identical to each other (and resumed ones to uninterrupted ones) for the same N; N
    processes and one process with the global batch agree in distribution only when the step
    draws random numbers, and within float rounding when it draws none."""
    entropy = [base & 0xFFFFFFFFFFFFFFFF, global_step, micro] + ([rank] if rank else [])
    mix = np.random.SeedSequence(entropy).generate_state(2, dtype=np.uint64)
    mx.random.seed(int(mix[0]))


def current_key() -> mx.array:
    """MLX's global key now (a lazy reference: nothing is read)."""
    key: mx.array = mx.random.state[0]  # type: ignore[index]  # the stubs: ``object``
    return key


def key_words(key: mx.array) -> list[int]:
    """``[hi, lo]``: an MLX key (two uint32) as JSON-able ints (reads the key: a device sync)."""
    hi, lo = (int(w) for w in np.asarray(key, dtype=np.uint32).reshape(-1)[:2])
    return [hi, lo]


def set_key(words: list[int]) -> None:
    """MLX's global key set to exactly ``[hi, lo]`` (``mx.random.key(s)`` is ``[s >> 32, s &
    0xffffffff]``, and ``mx.random.state`` cannot be assigned any other way)."""
    hi, lo = words
    mx.random.seed((hi << 32) | lo)


def read_keys(value: Any, where: str) -> list[list[int]]:
    """A checkpoint's ``"mlx_key"`` (one ``[hi, lo]`` per rank), checked; ValueError naming
    ``where`` otherwise."""
    if (
        not isinstance(value, list)
        or not value
        or not all(
            isinstance(k, list)
            and len(k) == 2
            and all(isinstance(w, int) and not isinstance(w, bool) and 0 <= w < 2**32 for w in k)
            for k in value
        )
    ):
        raise ValueError(
            f"{where}: 'mlx_key' must be a list of [hi, lo] uint32 pairs (one per rank), "
            f"got {value!r:.80}"
        )
    return value


def versions() -> dict[str, str]:
    found = {}
    for dist in ("mlx", "numpy", "mlx-audio-train", "mlx-audio-data"):
        try:
            found[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return found


# -- the run's key (NOTE [the run's key]) -------------------------------------------------------
def start_key(base: int, rank: int, global_step: int, micro: int, saved: Any) -> None:
    """Set MLX's key once, where training starts or resumes (NOTE [the run's key]): a saved key
    (``saved``: a checkpoint's ``"mlx_key"``, one ``[hi, lo]`` per rank) exactly, else from
    ``seed_step(base, global_step, micro, rank)``.

    NOTE [the run's key]: MLX's global key is part of the compiled step's state (``inputs`` and
    ``outputs`` of ``mx.compile``, as in mlx-lm): each call of the step draws from it and leaves
    it advanced on the device, and the host never seeds it per step (no host work, no small
    copy). It is set once per ``fit`` here, after ``on_train_start``: from ``(seed, global_step,
    micro-batch, rank)`` on a fresh start (so the first step's key is the one it always was; rank
    0's is a one-process run's, NOTE [random per rank]), or to the key a checkpoint saved
    (``"mlx_key"``, every rank's, gathered when it was written), exactly, so a resumed run draws
    the masks the uninterrupted one drew. Every call of the step advances it as far as its
    random ops go, whatever the call's outcome (an accumulation micro-batch, a ``training_step``
    returning None, a non-finite step that is skipped: its draws are spent, as torch's generator
    in Lightning), so a resume, which restores the key as the checkpoint saw it, agrees. Draws
    between the steps advance it too (hooks, a loader's ``mlx_transforms``), except validation
    inside ``fit``: the key is put back after it (one read per validation) and a checkpoint
    written during it stores the key training goes on with. A checkpoint written by a run on
    fewer processes lacks the higher ranks' keys: those are made from rank 0's and the rank.
    A checkpoint from before the key was saved (no ``"mlx_key"``) resumes from ``seed_step`` at
    its step -- deterministic, the same on every resume of it, but not the uninterrupted run's
    later masks."""
    if saved is None:
        seed_step(base, global_step, micro, rank)
    elif rank < len(saved):
        set_key(saved[rank])
    else:
        mix = np.random.SeedSequence([*saved[0], rank]).generate_state(2, dtype=np.uint64)
        mx.random.seed(int(mix[0]))


def gather_keys(key: mx.array, world: int, together: bool) -> list[list[int]]:
    """Every rank's key as ``[hi, lo]`` pairs, in rank order (one ``all_gather``; only this
    rank's when the ranks cannot meet: an error is unwinding ``fit``)."""
    if world == 1 or not together:
        return [key_words(key)]
    table = mx.distributed.all_gather(mx.view(key, mx.int32).reshape(1, 2))
    return [key_words(mx.view(row, mx.uint32)) for row in table.reshape(-1, 2)]
