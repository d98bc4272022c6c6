"""Where the time between a hand-written loop and ``Trainer.fit`` goes, step by step.

The tutorial CNN, AdamW, clip 1.0, pre-made batches on the device; samples/s of:
  hand            the hand-written mx.compile loop (mx.eval each step)
  hand+seed       the same, reseeding MLX's key and passing the batch index each step (as fit does)
  runner          our StepBuilder/StepRunner alone (guarded update, metrics vector, async dispatch)
  runner-noguard  the same without the non-finite guard (the update applied unconditionally)
  runner-sync     the same with the step evaluated synchronously (mx.eval) instead of async
  fit             Trainer.fit with nothing switched on
and a cProfile of ``fit`` (host time per function).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import sys
import time
from functools import partial

import mlx.core as mx  # noqa: E402
import mlx.nn as nn  # noqa: E402
import mlx.optimizers as optim  # noqa: E402
import numpy as np  # noqa: E402

import mlx_audio.train  # noqa: F401  (first: OpenBLAS before mlx.core on Linux)
from mlx_audio.train import Trainer  # noqa: E402
from mlx_audio.train._rng import seed_step  # noqa: E402
from mlx_audio.train._step import StepBuilder, StepRunner  # noqa: E402

sys.path.insert(
    0, os.path.join(os.path.dirname(__file__), "..", "..", "packages", "mlx-audio-train", "tests")
)
from cnn_testing import MNISTLikeCNN  # noqa: E402


class FixedLR(MNISTLikeCNN):
    def configure_optimizers(self):
        return optim.AdamW(learning_rate=1e-3, weight_decay=0.01)


def batches(steps: int, batch: int) -> list:
    rng = np.random.default_rng(0)
    out = [
        (
            mx.array(rng.standard_normal((batch, 28, 28), dtype=np.float32)),
            mx.array(rng.integers(0, 10, batch).astype(np.int32)),
        )
        for _ in range(steps)
    ]
    mx.eval(out)
    return out


def hand(data, seed: bool) -> float:
    mx.random.seed(0)
    model = FixedLR()
    mx.eval(model.parameters())
    optimizer = optim.AdamW(learning_rate=1e-3, weight_decay=0.01)

    def loss_fn(model, x, y, i):
        return mx.mean(nn.losses.cross_entropy(model(x), y))

    value_and_grad = nn.value_and_grad(model, loss_fn)
    state = [model.state, optimizer.state, mx.random.state]

    @partial(mx.compile, inputs=state, outputs=state)
    def step(x, y, i):
        loss, grads = value_and_grad(model, x, y, i)
        grads, _ = optim.clip_grad_norm(grads, 1.0)
        optimizer.update(model, grads)
        return loss

    start = time.perf_counter()
    for i, (x, y) in enumerate(data):
        if seed:
            seed_step(0, i, 0)
        loss = step(x, y, mx.array(i) if seed else None)
        mx.eval(state, loss)
    return len(data) * data[0][0].shape[0] / (time.perf_counter() - start)


def _unguarded_update(self, grads, finite):
    """StepBuilder._update without the non-finite guard (for measuring what the guard costs)."""
    import mlx.nn as nn
    from mlx.utils import tree_map

    from mlx_audio.train._step import _global_norm

    if self.world > 1:
        grads = nn.average_gradients(grads)
    norm = _global_norm(grads)
    scale = mx.minimum(1.0, self.clip_val / (norm + 1e-6))
    grads = tree_map(lambda g: (g * scale).astype(g.dtype), grads)
    self.optimizer.update(self.module, grads)
    return mx.isfinite(norm)


def runner(data, guard: bool = True, sync: bool = False) -> float:
    original = (StepBuilder._update, StepRunner._dispatch)
    if not guard:
        StepBuilder._update = _unguarded_update
    if sync:
        StepRunner._dispatch = lambda self, outputs, loss, deferred: mx.eval(outputs)
    try:
        return _runner(data)
    finally:
        StepBuilder._update, StepRunner._dispatch = original


def _runner(data) -> float:
    mx.random.seed(0)
    model = FixedLR()
    mx.eval(model.parameters())
    optimizer = optim.AdamW(learning_rate=1e-3, weight_decay=0.01)
    start = time.perf_counter()
    run = StepRunner(StepBuilder(model, optimizer, 1, 1.0, "norm", "32", True), 1)
    for i, batch in enumerate(data):
        seed_step(0, i, 0)
        loss = run.run(batch, i, True, (i, 0, i))[0]
    mx.eval(loss, model.parameters())
    return len(data) * data[0][0].shape[0] / (time.perf_counter() - start)


def fit(data, profile: bool = False) -> float:
    mx.random.seed(0)
    model = FixedLR()
    mx.eval(model.parameters())
    trainer = Trainer(
        max_epochs=1,
        gradient_clip_val=1.0,
        logger=False,
        enable_progress_bar=False,
        enable_checkpointing=False,
        num_sanity_val_steps=0,
    )
    profiler = cProfile.Profile() if profile else None
    start = time.perf_counter()
    if profiler is not None:
        profiler.enable()
    trainer.fit(model, data)
    mx.eval(model.parameters())
    seconds = time.perf_counter() - start
    if profiler is not None:
        profiler.disable()
        text = io.StringIO()
        pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(18)
        print(text.getvalue()[-4000:])
    return len(data) * data[0][0].shape[0] / seconds


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-profile", action="store_true")
    args = parser.parse_args()
    data = batches(args.steps, args.batch)
    sides = {
        "hand": lambda: hand(data, False),
        "hand+seed": lambda: hand(data, True),
        "runner": lambda: runner(data),
        "runner-noguard": lambda: runner(data, guard=False),
        "runner-sync": lambda: runner(data, sync=True),
        "fit": lambda: fit(data),
    }
    best = {name: 0.0 for name in sides}
    for _ in range(args.repeats):
        for name, side in sides.items():
            best[name] = max(best[name], side())
    print(
        f"mlx {mx.__version__}, {mx.default_device()}, B={args.batch}, {args.steps} steps, best of {args.repeats}"
    )
    for name, rate in best.items():
        print(f"{name:10s} {rate:12,.0f} samples/s  {rate / best['hand']:.3f}x hand")
    if not args.no_profile:
        fit(data, profile=True)


if __name__ == "__main__":
    main()
