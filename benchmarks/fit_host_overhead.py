"""Host time per step of ``Trainer.fit`` against a hand-written ``mx.compile`` loop, on a model
so small that the step itself is cheap (on the CPU, the Python around each step shows).

A 2-layer MLP (32 -> 64 -> 10), AdamW, clip 1.0, batch 32, the data device-resident: an
``ArrayDataset`` of ``mx.array`` s batched by the ``DataLoader`` with one ``mx.take`` per field
(fit), and the same ``mx.take`` of the same indices in the hand loop. Reported: microseconds
per step (best of ``--repeats``, interleaved) for the hand loop, ``fit`` bare (no progress bar,
logger or checkpoint) and ``fit`` with the defaults (progress bar + CSV + checkpoint at the
end), and with ``--profile`` the functions of ``fit`` that take the most host time per step.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import tempfile
import time
from functools import partial

import mlx.core as mx  # noqa: E402
import mlx.nn as nn  # noqa: E402
import mlx.optimizers as optim  # noqa: E402
import numpy as np  # noqa: E402

import mlx_audio.train  # noqa: F401  (first: OpenBLAS before mlx.core on Linux)
from mlx_audio.data import ArrayDataset, DataLoader  # noqa: E402
from mlx_audio.train import Trainer, TrainModule  # noqa: E402

DIM, HIDDEN, CLASSES, BATCH = 32, 64, 10, 32


class MLP(TrainModule):
    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(DIM, HIDDEN)
        self.fc2 = nn.Linear(HIDDEN, CLASSES)

    def __call__(self, x: mx.array) -> mx.array:
        return self.fc2(nn.relu(self.fc1(x)))

    def compute_loss(self, batch):
        x, y = batch
        logits = self(x)
        loss = mx.mean(nn.losses.cross_entropy(logits, y))
        return loss, {"accuracy": mx.mean(mx.argmax(logits, axis=-1) == y)}

    def configure_optimizers(self):
        return optim.AdamW(learning_rate=1e-3, weight_decay=0.01)


def arrays(steps: int) -> tuple[mx.array, mx.array]:
    rng = np.random.default_rng(0)
    x = mx.array(rng.standard_normal((steps * BATCH, DIM), dtype=np.float32))
    y = mx.array(rng.integers(0, CLASSES, steps * BATCH).astype(np.int32))
    mx.eval(x, y)
    return x, y


def hand(x: mx.array, y: mx.array, steps: int) -> float:
    mx.random.seed(0)
    model = MLP()
    mx.eval(model.parameters())
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

    order = np.arange(steps * BATCH)
    start = time.perf_counter()
    for i in range(steps):
        index = mx.array(order[i * BATCH : (i + 1) * BATCH])
        loss, accuracy = step(mx.take(x, index, axis=0), mx.take(y, index, axis=0))
        mx.eval(state, loss, accuracy)
    return (time.perf_counter() - start) / steps * 1e6


def fit(x: mx.array, y: mx.array, steps: int, defaults: bool, profile: bool = False) -> float:
    mx.random.seed(0)
    model = MLP()
    mx.eval(model.parameters())
    root = tempfile.mkdtemp()
    loader = DataLoader(ArrayDataset(x, y), batch_size=BATCH)
    options = (
        {"default_root_dir": root}
        if defaults
        else {"logger": False, "enable_progress_bar": False, "enable_checkpointing": False}
    )
    trainer = Trainer(max_epochs=1, gradient_clip_val=1.0, num_sanity_val_steps=0, **options)
    warm = DataLoader(ArrayDataset(x[: 8 * BATCH], y[: 8 * BATCH]), batch_size=BATCH)
    Trainer(max_epochs=1, gradient_clip_val=1.0, **options).fit(MLP(), warm)  # traces, imports
    profiler = cProfile.Profile() if profile else None
    start = time.perf_counter()
    if profiler is not None:
        profiler.enable()
    trainer.fit(model, loader)
    mx.eval(model.parameters())
    seconds = time.perf_counter() - start
    if profiler is not None:
        profiler.disable()
        text = io.StringIO()
        stats = pstats.Stats(profiler, stream=text)
        stats.sort_stats("tottime").print_stats(25)
        print(text.getvalue()[-6000:])
    return seconds / steps * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--profile", action="store_true", help="cProfile one bare fit after")
    args = parser.parse_args()
    x, y = arrays(args.steps)
    sides = {
        "hand": lambda: hand(x, y, args.steps),
        "fit bare": lambda: fit(x, y, args.steps, False),
        "fit defaults": lambda: fit(x, y, args.steps, True),
    }
    best = {name: float("inf") for name in sides}
    for _ in range(args.repeats):
        for name, side in sides.items():
            best[name] = min(best[name], side())
    print(f"mlx {mx.__version__}, {mx.default_device()}, {os.cpu_count()} cores, MLP, B={BATCH}")
    print(f"{args.steps} steps, whole fit timed (set-up included), best of {args.repeats}")
    for name, us in best.items():
        extra = us - best["hand"]
        print(f"  {name:14s} {us:8.1f} us/step  (+{extra:6.1f} us over hand)")
    if args.profile:
        fit(x, y, args.steps, False, profile=True)


if __name__ == "__main__":
    main()
