"""Global RNG state of a run: capture/restore for checkpoints, seeding, and per-step MLX keys."""

from __future__ import annotations

import random
from importlib import metadata

import mlx.core as mx
import numpy as np

# one implementation of the capture (the data package's; same keys as before: the checkpoint
# format is unchanged)
from mlx_audio.data.support import global_rng_state as rng_state
from mlx_audio.data.support import set_global_rng_state as set_rng_state

__all__ = ["rng_state", "set_rng_state", "seed_everything", "seed_step", "versions"]


def seed_everything(seed: int) -> None:
    mx.random.seed(seed)
    np.random.seed(seed & 0xFFFFFFFF)
    random.seed(seed)


def seed_step(base: int, global_step: int, micro: int, rank: int = 0) -> None:
    """Seed MLX's global key from (base, step, micro-batch, rank): dropout and other random ops
    in the train step then depend only on where training is, so a resumed run draws the same.

    NOTE [random per rank]: each rank of a data-parallel run draws its own masks (its rank is
    folded into the key; rank 0's key is a one-process run's), so the ranks' samples get
    independent dropout, as the samples of one big batch do. Runs on N processes are therefore
    bit-identical to each other (and resumed ones to uninterrupted ones) for the same N; N
    processes and one process with the global batch agree in distribution only when the step
    draws random numbers, and within float rounding when it draws none."""
    entropy = [base & 0xFFFFFFFFFFFFFFFF, global_step, micro] + ([rank] if rank else [])
    mix = np.random.SeedSequence(entropy).generate_state(2, dtype=np.uint64)
    mx.random.seed(int(mix[0]))


def versions() -> dict[str, str]:
    found = {}
    for dist in ("mlx", "numpy", "mlx-audio-train", "mlx-audio-data"):
        try:
            found[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return found
