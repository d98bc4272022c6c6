"""Which default callback changes fit's speed on the GPU (an investigation for issue 15).

One epoch of the tutorial CNN over in-memory numpy data through our DataLoader, steady
samples/s after 50 batches, for: bare; + CSVLogger; + progress bar; + ModelCheckpoint; all
defaults; bare with the step evaluated synchronously (mx.eval each step instead of async).
"""

from __future__ import annotations

import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
import cnn_fit as c  # noqa: E402
import mlx.core as mx  # noqa: E402

from mlx_audio.data import ArrayDataset, DataLoader  # noqa: E402
from mlx_audio.loggers import CSVLogger  # noqa: E402
from mlx_audio.train import Trainer  # noqa: E402
from mlx_audio.train._runner import StepRunner  # noqa: E402
from mlx_audio.train.callbacks import ModelCheckpoint, ProgressBar  # noqa: E402


def run(x, y, batch, logger=False, bar=False, ckpt=False, sync=False):
    mx.random.seed(0)
    clock = c.Clock()
    root = tempfile.mkdtemp()
    callbacks = [clock]
    if bar:
        callbacks.append(ProgressBar(stream=open(os.devnull, "w")))
    if ckpt:
        callbacks.append(ModelCheckpoint())
    trainer = Trainer(
        max_epochs=1,
        gradient_clip_val=1.0,
        num_sanity_val_steps=0,
        callbacks=callbacks,
        default_root_dir=root,
        logger=CSVLogger(root) if logger else False,
        enable_progress_bar=bar,
        enable_checkpointing=ckpt,
    )
    original = StepRunner._dispatch
    if sync:
        StepRunner._dispatch = lambda self, outputs, loss, deferred: mx.eval(outputs)
    try:
        start = time.perf_counter()
        trainer.fit(
            c.FixedLR(), DataLoader(ArrayDataset(x, y), batch_size=batch, shuffle=True, seed=0)
        )
    finally:
        StepRunner._dispatch = original
    return c._rates(len(x), batch, start, clock.warm, clock.end)[1]


if __name__ == "__main__":
    batch = int(sys.argv[1]) if len(sys.argv) > 1 else 256
    x, y = c.data(int(sys.argv[2]) if len(sys.argv) > 2 else 30000)
    cases = {
        "bare": {},
        "+csv": {"logger": True},
        "+bar": {"bar": True},
        "+ckpt": {"ckpt": True},
        "defaults": {"logger": True, "bar": True, "ckpt": True},
        "bare sync": {"sync": True},
        "defaults sync": {"logger": True, "bar": True, "ckpt": True, "sync": True},
    }
    for _ in range(2):
        for name, kwargs in cases.items():
            print(f"B={batch} {name:14s} {run(x, y, batch, **kwargs):10,.0f} samples/s", flush=True)
