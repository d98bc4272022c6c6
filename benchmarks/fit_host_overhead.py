"""Host time per step of ``Trainer.fit`` against a hand-written ``mx.compile`` loop, on a model
so small that the step itself is cheap (on the CPU, the Python around each step shows).

A 2-layer MLP (32 -> 64 -> 10), AdamW, clip 1.0, batch 32, the data device-resident: an
``ArrayDataset`` of ``mx.array`` s batched by the ``DataLoader`` with one ``mx.take`` per field
(fit), and the same ``mx.take`` of the same indices in the hand loop. Reported: microseconds
per step (best of ``--repeats``, interleaved) for the hand loop, ``fit`` bare (no progress bar,
logger or checkpoint) and ``fit`` with the defaults (progress bar + CSV + checkpoint at the
end): wall time, and the main thread's CPU time (``time.thread_time``: the host's own work --
Python, building and dispatching the graph -- without the waits for MLX's compute, which runs
on its own thread; far less sensitive than wall time to a loaded machine), and with
``--profile`` the functions of ``fit`` that take the most host time per step.
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


def hand(x: mx.array, y: mx.array, steps: int) -> tuple[float, float]:
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
    start, host = time.perf_counter(), time.thread_time()
    for i in range(steps):
        index = mx.array(order[i * BATCH : (i + 1) * BATCH])
        loss, accuracy = step(mx.take(x, index, axis=0), mx.take(y, index, axis=0))
        mx.eval(state, loss, accuracy)
    return per_step(start, host, steps)


def per_step(start: float, host: float, steps: int) -> tuple[float, float]:
    """(wall, host CPU) microseconds per step since ``start`` / ``host``."""
    wall, cpu = time.perf_counter() - start, time.thread_time() - host
    return wall / steps * 1e6, cpu / steps * 1e6


def fit(
    x: mx.array, y: mx.array, steps: int, defaults: bool, profile: bool = False
) -> tuple[float, float]:
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
    start, host = time.perf_counter(), time.thread_time()
    if profiler is not None:
        profiler.enable()
    trainer.fit(model, loader)
    mx.eval(model.parameters())
    measured = per_step(start, host, steps)
    if profiler is not None:
        profiler.disable()
        text = io.StringIO()
        stats = pstats.Stats(profiler, stream=text)
        stats.sort_stats("tottime").print_stats(25)
        print(text.getvalue()[-6000:])
    return measured


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--profile",
        nargs="?",
        const="bare",
        choices=["bare", "defaults"],
        help="cProfile one fit after (bare unless named: 'defaults')",
    )
    args = parser.parse_args()
    x, y = arrays(args.steps)
    sides = {
        "hand": lambda: hand(x, y, args.steps),
        "fit bare": lambda: fit(x, y, args.steps, False),
        "fit defaults": lambda: fit(x, y, args.steps, True),
    }
    wall = {name: float("inf") for name in sides}
    host = dict(wall)
    for _ in range(args.repeats):
        for name, side in sides.items():
            w, h = side()
            wall[name], host[name] = min(wall[name], w), min(host[name], h)
    print(f"mlx {mx.__version__}, {mx.default_device()}, {os.cpu_count()} cores, MLP, B={BATCH}")
    print(f"{args.steps} steps, whole fit timed (set-up included), best of {args.repeats}")
    print(f"  {'':14s} {'wall us/step':>13s} {'host CPU us/step':>17s} {'host over hand':>15s}")
    for name in sides:
        extra = host[name] - host["hand"]
        print(f"  {name:14s} {wall[name]:13.1f} {host[name]:17.1f} {extra:+15.1f}")
    if args.profile:
        fit(x, y, args.steps, args.profile == "defaults", profile=True)


if __name__ == "__main__":
    main()
