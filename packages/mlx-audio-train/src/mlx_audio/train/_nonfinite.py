"""What the loop does about a non-finite step (NOTE [non-finite steps] in _step.py, NOTE [deferred
non-finite check] in _counters.py): raise naming it, or skip it and say so."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .trainer import Trainer

from ._status import rank_zero_info


def check_nonfinite(trainer: Trainer) -> None:
    """Under ``on_nonfinite_loss="raise"``: raise for the first non-finite step the device
    recorded since the last look (NOTE [deferred non-finite check] in _counters.py)."""
    runner = getattr(trainer, "runner", None)
    if runner is None or trainer.failing or not runner.builder.strict_nonfinite:
        return
    found = runner.first_nonfinite()
    if found is not None:
        (step, epoch, batch_idx), loss = found
        trainer.progress.global_step = step  # no update was applied from that batch on
        nonfinite_step(trainer, batch_idx, loss, epoch)


def nonfinite_step(trainer: Trainer, batch_idx: int, loss: float, epoch: int | None = None) -> None:
    """A batch whose loss or gradients were NaN/Inf (its update was not applied: see NOTE
    [non-finite steps] in _step.py). ``on_nonfinite_loss="raise"``: stop, naming the step;
    ``"skip"``: go on, saying so for the first few and then every power of ten."""
    epoch = trainer.current_epoch if epoch is None else epoch
    where = f"step {trainer.global_step} (epoch {epoch}, batch {batch_idx})"
    if trainer.on_nonfinite_loss == "raise":
        raise FloatingPointError(
            f"non-finite loss or gradients at {where}: loss = {loss}. The weights and optimizer "
            "state were left as they were before this batch (no checkpoint holds non-finite "
            "values). Lower the learning rate, clip gradients (gradient_clip_val), check the "
            "inputs, or use Trainer(on_nonfinite_loss='skip')"
        )
    trainer.skipped_batches += 1
    count = trainer.skipped_batches
    if count <= 3 or math.log10(count).is_integer():
        rank_zero_info(
            f"Trainer: skipped {where}: loss = {loss} (non-finite loss or gradients; the weights were not changed) [{count} skipped so far]"
        )
