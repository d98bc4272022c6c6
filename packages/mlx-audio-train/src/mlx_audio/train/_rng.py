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


def seed_step(base: int, global_step: int, micro: int) -> None:
    """Seed MLX's global key from (base, step, micro-batch): dropout and other random ops in
    the train step then depend only on where training is, so a resumed run draws the same."""
    mix = np.random.SeedSequence([base & 0xFFFFFFFFFFFFFFFF, global_step, micro]).generate_state(
        2, dtype=np.uint64
    )
    mx.random.seed(int(mix[0]))


def versions() -> dict[str, str]:
    found = {}
    for dist in ("mlx", "numpy", "mlx-audio-train", "mlx-audio-data"):
        try:
            found[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return found
