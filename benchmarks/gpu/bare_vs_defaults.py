"""Which default callback changes fit's speed on the GPU, and whether the host is the limit.

One epoch of the tutorial CNN over device-resident data (``ArrayDataset`` of ``mx.array`` s,
NOTE [device-resident data]; ``--host`` for numpy arrays batched on the host), per case from
the end of batch 50 to the end of the epoch: samples/s, wall microseconds per step, and the main
thread's CPU microseconds per step (``time.thread_time``: Python, graph building, kernel
launches -- without the waits). Where host CPU per step is close to wall per step the host is
the limit, and anything the loop adds per step shows one for one. Cases: the hand-written
device loop (``cnn_fit.hand_device``, an ``mx.eval`` every step); bare; + CSVLogger;
+ progress bar; + ModelCheckpoint; all defaults; bare / defaults with the step evaluated
synchronously. ``--profile CASE``: a cProfile of that case's steady batches after the table.

    python3 benchmarks/gpu/bare_vs_defaults.py [--batch 64] [--samples 60000] [--profile defaults]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
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

CASES = {
    "bare": {},
    "+csv": {"logger": True},
    "+bar": {"bar": True},
    "+ckpt": {"ckpt": True},
    "defaults": {"logger": True, "bar": True, "ckpt": True},
    "bare sync": {"sync": True},
    "defaults sync": {"logger": True, "bar": True, "ckpt": True, "sync": True},
}


class Clock(c.Clock):
    """cnn_fit's clock, plus the main thread's CPU time and an optional profiler, both started
    at the end of batch WARM."""

    def __init__(self, profiler: cProfile.Profile | None = None) -> None:
        self.profiler = profiler

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        super().on_train_batch_end(trainer, module, outputs, batch, batch_idx)
        if batch_idx == c.WARM - 1:
            self.host = time.thread_time()
            if self.profiler is not None:
                self.profiler.enable()

    def on_train_end(self, trainer, module):
        super().on_train_end(trainer, module)
        self.host_end = time.thread_time()
        if self.profiler is not None:
            self.profiler.disable()


def run(x, y, batch, logger=False, bar=False, ckpt=False, sync=False, profiler=None):
    mx.random.seed(0)
    clock = Clock(profiler)
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
        enable_model_summary=False,
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
        loader = DataLoader(ArrayDataset(x, y), batch_size=batch, shuffle=True, seed=0)
        trainer.fit(c.FixedLR(), loader)
    finally:
        StepRunner._dispatch = original
    steps = -(-len(x) // batch) - c.WARM
    return (clock.end - clock.warm) / steps, (clock.host_end - clock.host) / steps


def hand(x, y, batch):
    """cnn_fit's hand-written device loop, timed the same way (its own clock is wall only)."""
    host = time.thread_time()
    whole, steady = c.hand_device(x, y, batch)
    steps = -(-len(x) // batch)
    wall = len(x) / whole / steps  # whole epoch: the loop has no hook at batch WARM
    return wall, (time.thread_time() - host) / steps


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--samples", type=int, default=60_000)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--host", action="store_true", help="numpy arrays, batched on the host")
    parser.add_argument("--profile", choices=list(CASES))
    args = parser.parse_args()
    x, y = c.data(args.samples)
    if not args.host:
        x, y = mx.array(x), mx.array(y)
        mx.eval(x, y)
    small = slice(0, 60 * args.batch + args.samples % args.batch)
    hand(x[small], y[small], args.batch)  # kernels compiled, graphs traced
    run(x[small], y[small], args.batch)
    best: dict[str, tuple[float, float]] = {}
    for _ in range(args.repeats):
        for name, kwargs in {"hand (whole epoch)": None, **CASES}.items():
            got = hand(x, y, args.batch) if kwargs is None else run(x, y, args.batch, **kwargs)
            best[name] = min(best.get(name, got), got)
    where = "host" if args.host else "device"
    print(f"mlx {mx.__version__}, {mx.default_device()}, B={args.batch}, {where} data")
    print("| case | samples/s | wall us/step | host CPU us/step |\n|---|---:|---:|---:|")
    for name, (wall, cpu) in best.items():
        print(f"| {name} | {args.batch / wall:,.0f} | {wall * 1e6:.0f} | {cpu * 1e6:.0f} |")
    if args.profile:
        profiler = cProfile.Profile()
        run(x, y, args.batch, **CASES[args.profile], profiler=profiler)
        text = io.StringIO()
        pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(30)
        print(f"\ncProfile of '{args.profile}' (steady batches):\n" + text.getvalue()[-7000:])


if __name__ == "__main__":
    main()
