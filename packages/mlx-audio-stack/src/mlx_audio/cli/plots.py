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


def joined_rows(logs: str) -> list[dict[str, str]]:
    """The rows of every ``version_N/metrics.csv`` under ``logs``, in order: a resumed run logs
    each part to a new version (NOTE [run folder]); a later part replaces the rows from its
    first step on (the steps a crash made it train again)."""

    def number(name: str) -> int:
        tail = name.removeprefix("version_")
        return int(tail) if tail.isdigit() else -1

    rows: list[dict[str, str]] = []
    for name in sorted(os.listdir(logs), key=lambda n: (number(n), n)):
        path = os.path.join(logs, name, "metrics.csv")
        if not os.path.isfile(path):
            continue
        with open(path) as f:
            part = [r for r in csv.DictReader(f) if r.get("step")]
        if part:
            start = min(int(r["step"]) for r in part)
            rows = [r for r in rows if int(r["step"]) < start] + part
    return rows


def plot_run(run: str) -> list[str]:
    """Curves (losses, validation metrics) and the learning rate from ``run/logs/*/metrics.csv``."""
    if not os.path.isdir(run):
        raise FileNotFoundError(f"{run}: no such folder (the run folder `mlx-audio train` wrote)")
    if not os.path.isdir(run):
        raise FileNotFoundError(f"{run}: no such folder (the run folder `mlx-audio train` wrote)")
    plt = _pyplot()
    if plt is None:
        raise ImportError("mlx-audio plot needs matplotlib: pip install 'mlx-audio-stack[plot]'")
    found = [d for d, _, files in os.walk(run) if "metrics.csv" in files]
    if not found:
        raise FileNotFoundError(f"{run}: no metrics.csv below it (a CSVLogger's output)")
    logs = os.path.join(run, "logs")
    rows = joined_rows(logs if os.path.isdir(logs) else os.path.dirname(found[0]))
    columns = list(dict.fromkeys(k for r in rows for k in r))
    written = []
    panels = [
        (
            "curves.png",
            [k for k in columns if k.endswith(("loss", "accuracy")) or k.startswith("val_")],
        ),
        ("lr.png", [k for k in columns if k.startswith("lr")]),
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
