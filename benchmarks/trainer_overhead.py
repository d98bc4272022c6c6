"""Trainer.fit vs a hand-written ``mx.compile`` loop on the tutorial CNN (same data, same step).

Both sides: AdamW (lr 1e-3, weight decay 0.01), gradient clipping at norm 1.0, batch 64,
60 optimizer steps over batches already in memory as ``mx.array``. Timed: the whole
``Trainer.fit`` call (set-up and compilation included) against the hand-written loop from
building its compiled step to its last evaluated step. Reported: samples/s and the ratio, the
best of ``--repeats`` interleaved runs. Also times ``import mlx_audio`` in a fresh process
(and ``import lightning`` beside it when the anchor venv has it).
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from functools import partial

import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim
import numpy as np

import mlx_audio.train  # noqa: F401  (first: OpenBLAS before mlx.core on Linux)
from mlx_audio.loggers import CSVLogger
from mlx_audio.train import Trainer
from mlx_audio.train.callbacks import ProgressBar

sys.path.insert(
    0, os.path.join(os.path.dirname(__file__), "..", "packages", "mlx-audio-train", "tests")
)
from cnn_testing import MNISTLikeCNN  # noqa: E402  (the tutorial's CNN)

STEPS, BATCH = 60, 64


class FixedLR(MNISTLikeCNN):
    def configure_optimizers(self):
        return optim.AdamW(learning_rate=1e-3, weight_decay=0.01)


def batches(seed: int = 0) -> list[tuple[mx.array, mx.array]]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(STEPS):
        x = mx.array(rng.standard_normal((BATCH, 28, 28), dtype=np.float32))
        y = mx.array(rng.integers(0, 10, BATCH).astype(np.int32))
        out.append((x, y))
    mx.eval(out)
    return out


def hand_written(data) -> float:
    mx.random.seed(0)
    model = FixedLR()
    mx.eval(model.parameters())
    start = time.perf_counter()
    optimizer = optim.AdamW(learning_rate=1e-3, weight_decay=0.01)

    def loss_fn(model, x, y):
        logits = model(x)
        return mx.mean(nn.losses.cross_entropy(logits, y)), mx.mean(mx.argmax(logits, axis=-1) == y)

    value_and_grad = nn.value_and_grad(model, loss_fn)
    state = [model.state, optimizer.state, mx.random.state]

    @partial(mx.compile, inputs=state, outputs=state)
    def step(x, y):
        (loss, accuracy), grads = value_and_grad(model, x, y)
        grads, _ = optim.clip_grad_norm(grads, 1.0)
        optimizer.update(model, grads)
        return loss, accuracy

    for x, y in data:
        loss, accuracy = step(x, y)
        mx.eval(state, loss, accuracy)
    return STEPS * BATCH / (time.perf_counter() - start)


def with_trainer(data, progress: bool, root: str) -> float:
    mx.random.seed(0)
    model = FixedLR()
    mx.eval(model.parameters())
    callbacks = [ProgressBar(refresh_rate=10, stream=open(os.devnull, "w"))] if progress else []
    logger = CSVLogger(root, name="bench") if progress else False
    trainer = Trainer(
        max_steps=STEPS,
        gradient_clip_val=1.0,
        logger=logger,
        callbacks=callbacks,
        enable_progress_bar=progress,
        enable_checkpointing=False,
        num_sanity_val_steps=0,
        default_root_dir=root,
    )
    start = time.perf_counter()
    trainer.fit(model, data)
    return STEPS * BATCH / (time.perf_counter() - start)


def import_seconds(statement: str, python: str = sys.executable) -> float | None:
    best = None
    for _ in range(3):
        code = f"import time; t = time.perf_counter(); {statement}; print(time.perf_counter() - t)"
        result = subprocess.run([python, "-c", code], capture_output=True, text=True)
        if result.returncode != 0:
            return None
        value = float(result.stdout.strip().splitlines()[-1])
        best = value if best is None else min(best, value)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--root", default="/tmp/mlx_audio_bench")
    parser.add_argument("--steps", type=int, default=60, help="more steps steady a fast GPU run")
    args = parser.parse_args()
    global STEPS
    STEPS = args.steps
    data = batches()
    results: dict[str, list[float]] = {"hand": [], "bare": [], "bar+csv": []}
    for _ in range(args.repeats):  # interleaved, so drift hits every side alike
        results["hand"].append(hand_written(data))
        results["bare"].append(with_trainer(data, False, args.root))
        results["bar+csv"].append(with_trainer(data, True, args.root))
    hand = max(results["hand"])
    print(
        f"\nmachine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, mlx {mx.__version__}, "
        f"device {mx.default_device()}"
    )
    print(
        f"tutorial CNN, AdamW, clip 1.0, B={BATCH}, {STEPS} steps, whole fit timed; best of {args.repeats}\n"
    )
    print("| run | samples/s | vs hand-written mx.compile loop |")
    print("|---|---:|---:|")
    print(f"| hand-written compiled loop | {hand:,.0f} | 1.00x |")
    print(
        f"| Trainer.fit, no progress bar, no logger | {max(results['bare']):,.0f} | {max(results['bare']) / hand:.3f}x |"
    )
    print(
        f"| Trainer.fit, progress bar + CSVLogger | {max(results['bar+csv']):,.0f} | {max(results['bar+csv']) / hand:.3f}x |"
    )
    ours = import_seconds("import mlx_audio")
    full = import_seconds("from mlx_audio import Trainer, TrainModule, DataLoader")
    lightning = import_seconds("import lightning")
    print(
        f"\n`import mlx_audio`: {ours:.3f} s; `from mlx_audio import Trainer, TrainModule, DataLoader` (imports mlx): {full:.3f} s"
        + (
            f"; `import lightning`: {lightning:.3f} s"
            if lightning is not None
            else " (lightning not installed here)"
        )
    )


if __name__ == "__main__":
    main()
