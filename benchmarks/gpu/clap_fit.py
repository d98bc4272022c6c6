"""``Trainer.fit`` of the CLAP contrastive step, timed per step (shared by the CLAP GPU benchmarks)."""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any


def fit_times(
    data: Iterable[Any],
    steps: int,
    warmup: int,
    precision: str,
    text_bf16: bool = False,
    checkpointing: bool = False,
) -> list[float]:
    """Seconds between consecutive train-batch ends after ``warmup`` steps (the last one up to
    the end of fit; one step is in flight, so their mean is the steady time per step).
    ``text_bf16``: the frozen text encoder's weights cast to bfloat16 (what autocast computes it
    in); ``checkpointing``: the audio encoder's Swin blocks recomputed in the backward pass."""
    import mlx.core as mx
    import mlx.nn as nn
    import mlx.optimizers as optim

    from mlx_audio.models.clap import CLAP
    from mlx_audio.train import Trainer, TrainModule
    from mlx_audio.train.callbacks import Callback

    class Contrastive(TrainModule):
        def __init__(self) -> None:
            super().__init__()
            self.clap = CLAP()
            self.clap.text_encoder.freeze()
            if text_bf16:
                self.clap.text_encoder.set_dtype(mx.bfloat16)
            self.clap.enable_checkpointing(checkpointing)
            self.clap.train()

        def training_step(self, batch: tuple, batch_idx: mx.array) -> mx.array:
            mels, ids, mask = batch
            out = self.clap(mels, ids, mask)
            labels = mx.arange(mels.shape[0])
            return (
                mx.mean(nn.losses.cross_entropy(out["logits_per_audio"], labels))
                + mx.mean(nn.losses.cross_entropy(out["logits_per_text"], labels))
            ) / 2

        def configure_optimizers(self) -> optim.Optimizer:
            return optim.AdamW(learning_rate=1e-5, weight_decay=0.01)

    class Clock(Callback):
        def __init__(self) -> None:
            self.stamps: list[float] = []

        def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:  # type: ignore[no-untyped-def]
            self.stamps.append(time.perf_counter())

    clock = Clock()
    mx.random.seed(0)
    trainer = Trainer(
        max_steps=warmup + steps,
        precision=precision,
        callbacks=[clock],
        enable_progress_bar=False,
        enable_checkpointing=False,
        logger=False,
        num_sanity_val_steps=0,
    )
    trainer.fit(Contrastive(), data)
    mx.synchronize()
    stamps = [*clock.stamps[warmup:], time.perf_counter()]
    return [b - a for a, b in zip(stamps, stamps[1:])]
