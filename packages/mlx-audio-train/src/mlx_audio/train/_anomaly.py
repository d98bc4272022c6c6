"""``Trainer(detect_anomaly=True)``: where a non-finite step started.

NOTE [anomaly re-run]: torch's anomaly mode checks every backward op as it runs; MLX's step is one
compiled graph with no per-op hooks. So the step runs as usual and, when its loss or gradients
come out non-finite, the failing batch is run again eagerly, with the same random key and the
weights it saw (a non-finite update is never applied, NOTE [non-finite steps] in _step.py),
every submodule's output checked as it returns: the first module whose output is non-finite
from finite inputs is where it started. The gradients are computed too, and the parameters whose
gradient is non-finite named. Detection synchronizes each step, so it is off by default.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import mlx.core as mx
import mlx.nn as nn

from ._forward import forward
from ._rng import current_key, key_words, set_key
from ._tree import flatten

if TYPE_CHECKING:
    from .module import TrainModule
    from .trainer import Trainer


def _bad(tree: Any) -> list[str]:
    """Dotted names of the floating leaves of ``tree`` that hold a NaN or an infinity."""
    leaves = flatten(tree if isinstance(tree, (list, tuple, dict)) else [tree])
    return [
        name
        for name, leaf in leaves
        if isinstance(leaf, mx.array)
        and mx.issubdtype(leaf.dtype, mx.inexact)
        and not bool(mx.all(mx.isfinite(leaf)).item())
    ]


@contextmanager
def _watched(module: nn.Module, found: list[str]) -> Iterator[None]:
    """Every submodule's ``__call__`` checks its output while inside; the first whose output is
    non-finite from finite inputs is appended to ``found`` (its dotted name and class)."""
    swapped: list[tuple[nn.Module, type]] = []
    for name, sub in module.named_modules():
        cls = type(sub)
        where = name or type(module).__name__

        def call(self: Any, *args: Any, _cls: type = cls, _where: str = where, **kw: Any) -> Any:
            out = super(type(self), self).__call__(*args, **kw)
            if not found and _bad(out) and not _bad([args, kw]):
                found.append(f"{_where} ({_cls.__name__})")
            return out

        sub.__class__ = type(cls.__name__, (cls,), {"__call__": call})
        swapped.append((sub, cls))
    try:
        yield
    finally:
        for sub, cls in swapped:
            sub.__class__ = cls


def diagnose(module: TrainModule, batch: Any, batch_idx: int, precision: str, updates: Any) -> str:
    """What the eager re-run found (NOTE [anomaly re-run]), as sentences for the error."""
    parts = []
    inputs = _bad(batch)
    if inputs:
        parts.append(f"the batch itself is non-finite at {', '.join(inputs[:5])}")
    weights = _bad(module.trainable_parameters())
    if weights:
        parts.append(f"parameters already non-finite: {', '.join(weights[:5])}")
    found: list[str] = []

    def loss_fn(batch: Any) -> mx.array:
        loss = forward(module, batch, mx.array(batch_idx), "train", precision, updates)[0]
        return mx.zeros(()) if loss is None else loss

    with _watched(module, found):
        loss, grads = nn.value_and_grad(module, lambda b: loss_fn(b))(batch)
        mx.eval(loss, grads)
    if found:
        parts.append(f"the first module whose output went non-finite is {found[0]}")
    elif not inputs and not weights:
        parts.append("every module's output was finite (the step's own code made it)")
    if _bad(loss):
        parts.append(f"the loss is {loss.item()}")
    bad_grads = _bad(grads)
    if bad_grads:
        more = f" (and {len(bad_grads) - 5} more)" if len(bad_grads) > 5 else ""
        parts.append(f"non-finite gradients of {', '.join(bad_grads[:5])}{more}")
    return "; ".join(parts) if parts else "the eager re-run was finite (not reproducible)"


def raise_anomaly(trainer: Trainer, batch: Any, batch_idx: int, finite: bool) -> None:
    """After a step under ``detect_anomaly=True``: if it was non-finite, re-run the batch and
    raise a ``FloatingPointError`` naming where it started (whatever ``on_nonfinite_loss``)."""
    runner = trainer.runner
    assert runner is not None and trainer.module is not None
    if finite and (not runner.builder.strict_nonfinite or runner.first_nonfinite() is None):
        return
    # the key the step drew its random numbers from (NOTE [the run's key]), and after the
    # diagnosis the key the step left (the error may be caught and fit called again)
    after = key_words(current_key())
    set_key(key_words(runner.key_before))
    was_training = trainer.module.training
    trainer.module.train()
    found = diagnose(
        trainer.module, batch, batch_idx, trainer.precision, runner.builder.metric_updates
    )
    trainer.module.train(was_training)
    set_key(after)
    raise FloatingPointError(
        f"detect_anomaly: non-finite loss or gradients at step {trainer.global_step} (epoch "
        f"{trainer.current_epoch}, batch {batch_idx}): {found}. The weights were left as they "
        "were before this batch."
    )
