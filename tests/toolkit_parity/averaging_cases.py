"""Shared by both sides of the weight-averaging differential test: the problem (a linear model,
its initial weights, data) and the cases (callback arguments, Trainer arguments).

Runs under both interpreters: imports only numpy and the standard library."""

from __future__ import annotations

import numpy as np

DIM = 4
N = 8
BATCH = 2
LR = 0.1


def problem() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(7)
    return {
        "weight": rng.standard_normal((1, DIM)).astype(np.float32),
        "bias": rng.standard_normal((1,)).astype(np.float32),
        "x": rng.standard_normal((N, DIM)).astype(np.float32),
        "y": rng.standard_normal((N, 1)).astype(np.float32),
        "vx": rng.standard_normal((4, DIM)).astype(np.float32),
        "vy": rng.standard_normal((4, 1)).astype(np.float32),
    }


# name -> (callback kind, callback kwargs, trainer kwargs)
CASES: dict[str, tuple[str, dict, dict]] = {
    "ema_every_step": ("ema", {"decay": 0.9}, {"max_epochs": 3}),
    "ema_every_2_from_3": (
        "ema",
        {"decay": 0.8, "update_every_n_steps": 2, "update_starting_at_step": 3},
        {"max_epochs": 3},
    ),
    "ema_epochs": (
        "ema",
        {"decay": 0.5, "update_every_n_steps": 0, "update_starting_at_epoch": 1},
        {"max_epochs": 3},
    ),
    "swa_accumulate": ("mean", {}, {"max_epochs": 2, "accumulate_grad_batches": 2}),
    # StochasticWeightAveraging: averages at epoch starts from swa_epoch_start, SWALR's rates
    "swa_cos": (
        "swa",
        {"swa_lrs": 0.02, "swa_epoch_start": 2, "annealing_epochs": 2},
        {"max_epochs": 5},
    ),
    "swa_linear_fraction": (
        "swa",
        {
            "swa_lrs": 0.3,
            "swa_epoch_start": 0.5,
            "annealing_epochs": 3,
            "annealing_strategy": "linear",
        },
        {"max_epochs": 6},
    ),
    "swa_no_annealing": (
        "swa",
        {"swa_lrs": 0.01, "swa_epoch_start": 1, "annealing_epochs": 0},
        {"max_epochs": 3},
    ),
}


def rounded(values) -> list:
    return [float(v) for v in np.asarray(values, dtype=np.float64).ravel()]
