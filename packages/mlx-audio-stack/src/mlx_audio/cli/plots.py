"""The pictures of a run: its curves and learning rate (``mlx-audio plot``) and the confusion
matrix ``mlx-audio evaluate`` draws; matplotlib only (optional: ``mlx-audio-stack[plot]``)."""

from __future__ import annotations

import csv
import os
from typing import Any

import numpy as np


def _pyplot() -> Any:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    return plt


def plot_confusion(confusion: np.ndarray, classes: list[str], path: str) -> str | None:
    plt = _pyplot()
    if plt is None:
        return None
    fig, axis = plt.subplots(figsize=(1 + 0.6 * len(classes), 1 + 0.6 * len(classes)))
    axis.imshow(confusion, cmap="Blues")
    axis.set_xticks(range(len(classes)), classes, rotation=90)
    axis.set_yticks(range(len(classes)), classes)
    axis.set_xlabel("predicted")
    axis.set_ylabel("true")
    for (i, j), v in np.ndenumerate(confusion):
        axis.text(
            j,
            i,
            str(v),
            ha="center",
            va="center",
            fontsize=8,
            color="white" if v > confusion.max() / 2 else "black",
        )
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_run(run: str) -> list[str]:
    """Curves (losses, validation metrics) and the learning rate from ``run/logs/*/metrics.csv``."""
    plt = _pyplot()
    if plt is None:
        raise ImportError("mlx-audio plot needs matplotlib: pip install 'mlx-audio-stack[plot]'")
    found = sorted(
        os.path.join(d, "metrics.csv") for d, _, files in os.walk(run) if "metrics.csv" in files
    )
    if not found:
        raise FileNotFoundError(f"{run}: no metrics.csv below it (a CSVLogger's output)")
    with open(found[-1]) as f:
        rows = list(csv.DictReader(f))
    written = []
    panels = [
        (
            "curves.png",
            [k for k in rows[0] if k.endswith(("loss", "accuracy")) or k.startswith("val_")],
        ),
        ("lr.png", [k for k in rows[0] if k.startswith("lr")]),
    ]
    for name, keys in panels:
        keys = [k for k in keys if any(r.get(k) for r in rows)]
        if not keys:
            continue
        fig, axis = plt.subplots(figsize=(7, 4))
        for key in keys:
            points = [(int(r["step"]), float(r[key])) for r in rows if r.get(key)]
            axis.plot(
                *zip(*points),
                label=key,
                marker="o" if key.startswith("val") else None,
                markersize=3,
            )
        axis.set_xlabel("step")
        axis.legend()
        fig.tight_layout()
        path = os.path.join(run, name)
        fig.savefig(path, dpi=100)
        plt.close(fig)
        written.append(path)
    return written
