"""ModelSummary: a table of the top-level layers and their parameter counts at fit start."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._status import rank_zero_info
from .._tree import flatten
from .base import Callback

if TYPE_CHECKING:
    from ..module import TrainModule
    from ..trainer import Trainer


def summarize(module: TrainModule, max_depth: int = 1) -> str:
    rows = []
    for name, child in module.children().items():
        children = child if isinstance(child, list) else [child]
        for i, sub in enumerate(children):
            if not hasattr(sub, "parameters"):
                continue
            label = f"{name}.{i}" if isinstance(child, list) else name
            total = sum(v.size for _, v in flatten(sub.parameters()))
            trainable = sum(v.size for _, v in flatten(sub.trainable_parameters()))
            rows.append((label, type(sub).__name__, total, trainable))
    total = sum(v.size for _, v in flatten(module.parameters()))
    trainable = sum(v.size for _, v in flatten(module.trainable_parameters()))
    nbytes = sum(v.nbytes for _, v in flatten(module.parameters()))
    width = max([len(r[0]) for r in rows] + [4])
    lines = [f"  | {'Name':<{width}} | {'Type':<20} | {'Params':>12} | {'Trainable':>12}"]
    lines += [f"  | {n:<{width}} | {t:<20} | {p:>12,} | {tr:>12,}" for n, t, p, tr in rows]
    lines += [
        f"{trainable:,} trainable params",
        f"{total - trainable:,} non-trainable params",
        f"{total:,} total params",
        f"{nbytes / 2**20:.2f} MiB of weights",
    ]
    return "\n".join(lines)


class ModelSummary(Callback):
    """Prints :func:`summarize` of the module when fitting starts (Lightning's default callback;
    ``Trainer(enable_model_summary=False)`` leaves it out, ``max_depth=0`` prints nothing)."""

    def __init__(self, max_depth: int = 1) -> None:
        self.max_depth = max_depth

    def on_fit_start(self, trainer: Trainer, module: TrainModule) -> None:
        if trainer.is_global_zero and self.max_depth != 0:
            rank_zero_info(summarize(module, self.max_depth))
