"""Global RNG state of a run: capture/restore for checkpoints, seeding, and per-step MLX keys."""

from __future__ import annotations

import random
from importlib import metadata
from typing import Any, cast

import mlx.core as mx
import numpy as np


def rng_state() -> dict[str, Any]:
    """numpy's and Python's global RNG states (MLX's key is re-derived each step instead:
    ``mx.random.state`` cannot be assigned from Python)."""
    name, keys, pos, has_gauss, cached = cast(
        "tuple[str, np.ndarray, int, int, float]", np.random.get_state()
    )
    version, internal, gauss = random.getstate()
    return {
        "numpy": [name, keys.tolist(), pos, has_gauss, cached],
        "python": [version, list(internal), gauss],
    }


def set_rng_state(state: dict[str, Any]) -> None:
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, np.array(keys, dtype=np.uint32), pos, has_gauss, cached))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))


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
