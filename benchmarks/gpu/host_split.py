"""Where the wall time of one train step goes on the host, piece by piece (issue 30).

On MLX's CUDA backend the host thread spins while it waits, so its CPU time says nothing about
how busy it is; this times each piece with the wall clock instead, per step (mean over
``--steps`` after 30 warm-up steps), on the tutorial CNN with pre-made device batches:

  hand / hand+metric   the hand-written compiled step: ``call`` (building the lazy graph from
                       the compiled tape), ``launch`` (``mx.async_eval``: encoding and launching
                       the kernels), ``wait`` (``mx.eval`` until the step is done)
  runner               our ``StepRunner.run``: the same three inside it, and ``python`` (the rest
                       of ``run``: key, guard, clock, unpacking)
  fit                  ``Trainer.fit`` bare over an ``ArrayDataset`` of device arrays: ``run``
                       (all of the above) and ``loop`` (everything else between two batch ends:
                       loader, hooks, logging bookkeeping)
and ``kernel``: the host cost of one uncompiled element-wise kernel (a chain of 200 launched in
one ``mx.async_eval``), so the kernel counts of ``step_overhead.py --kernels`` convert to time.

    python3 benchmarks/gpu/host_split.py [--batch 64] [--steps 600]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
import cnn_fit as c  # noqa: E402
import mlx.core as mx  # noqa: E402
import mlx.optimizers as optim  # noqa: E402
import step_overhead as s  # noqa: E402

from mlx_audio.data import ArrayDataset, DataLoader  # noqa: E402
from mlx_audio.train import Trainer  # noqa: E402
from mlx_audio.train._runner import StepRunner  # noqa: E402
from mlx_audio.train._step import StepBuilder  # noqa: E402
from mlx_audio.train.callbacks import Callback  # noqa: E402

WARM = 30
clock = time.perf_counter


class Split:
    def __init__(self) -> None:
        self.totals: dict[str, float] = {}
        self.steps = 0

    def add(self, name: str, seconds: float) -> None:
        if self.steps >= WARM:
            self.totals[name] = self.totals.get(name, 0.0) + seconds

    def line(self, name: str) -> str:
        n = max(self.steps - WARM, 1)
        parts = ", ".join(f"{k} {v / n * 1e6:.0f}" for k, v in self.totals.items())
        return f"{name:12s} {sum(self.totals.values()) / n * 1e6:6.0f} us/step = {parts}"


def hand(data, metric: bool) -> str:
    mx.random.seed(0)
    model = s.FixedLR()
    mx.eval(model.parameters())
    step, state = s._hand_step(model, metric)
    split = Split()
    for x, y in data:
        a = clock()
        out = step(x, y)
        b = clock()
        mx.async_eval(state, out)
        d = clock()
        mx.eval(state, out)
        e = clock()
        split.add("call", b - a)
        split.add("launch", d - b)
        split.add("wait", e - d)
        split.steps += 1
    return split.line("hand+metric" if metric else "hand")


def _timed_runner(split: Split):
    """Patch StepBuilder/StepRunner so each piece of ``run`` adds its wall time to ``split``."""
    run, dispatch = StepRunner.run, StepRunner._dispatch

    def timed_run(self, *args, **kwargs):
        fused = self.builder.fused
        if not hasattr(fused, "_timed"):

            def timed_fused(*a, **k):
                t = clock()
                out = fused(*a, **k)
                split.add("call", clock() - t)
                return out

            timed_fused._timed = True
            self.builder.fused = timed_fused
        t = clock()
        out = run(self, *args, **kwargs)
        split.add("run", clock() - t)
        split.steps += 1
        return out

    def timed_dispatch(self, outputs, loss, deferred):
        t = clock()
        mx.async_eval(outputs)
        u = clock()
        if self._in_flight is not None:
            mx.eval(self._in_flight)
        self._in_flight = loss
        split.add("launch", u - t)
        split.add("wait", clock() - u)

    return run, dispatch, timed_run, timed_dispatch


def runner(data) -> str:
    split = Split()
    run, dispatch, timed_run, timed_dispatch = _timed_runner(split)
    StepRunner.run, StepRunner._dispatch = timed_run, timed_dispatch
    try:
        mx.random.seed(0)
        model = s.FixedLR()
        mx.eval(model.parameters())
        optimizer = optim.AdamW(learning_rate=1e-3, weight_decay=0.01)
        steps = StepRunner(StepBuilder(model, optimizer, 1, 1.0, "norm", "32", True), 1)
        for i, batch in enumerate(data):
            loss = steps.run(batch, i, True, (i, 0, i))[0]
        mx.eval(loss)
    finally:
        StepRunner.run, StepRunner._dispatch = run, dispatch
    inner = {k: split.totals[k] for k in ("call", "launch", "wait")}
    split.totals = {**inner, "python": split.totals["run"] - sum(inner.values())}
    return split.line("runner")


class BatchClock(Callback):
    def __init__(self, split: Split) -> None:
        self.split, self.last = split, None

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        now = clock()
        if self.last is not None:
            self.split.add("between", now - self.last)
        self.last = now


def fit(x, y, batch: int) -> str:
    split = Split()
    run, dispatch, timed_run, timed_dispatch = _timed_runner(split)
    StepRunner.run = timed_run
    try:
        mx.random.seed(0)
        trainer = Trainer(
            max_epochs=1,
            gradient_clip_val=1.0,
            logger=False,
            enable_progress_bar=False,
            enable_checkpointing=False,
            enable_model_summary=False,
            num_sanity_val_steps=0,
            callbacks=[BatchClock(split)],
        )
        loader = DataLoader(ArrayDataset(x, y), batch_size=batch, shuffle=True, seed=0)
        trainer.fit(c.FixedLR(), loader)
    finally:
        StepRunner.run = run
    between = split.totals.pop("between")
    split.totals.pop("call")
    split.totals["loop"] = between - split.totals["run"]
    return split.line("fit bare")


def kernel_cost(n: int = 200) -> str:
    x = mx.zeros((64,))
    mx.eval(x)
    best = float("inf")
    for _ in range(20):
        y = x
        for i in range(n):
            y = y * 1.0001 + float(i)  # two kernels per line, uncompiled
        t = clock()
        mx.async_eval(y)
        u = clock()
        mx.eval(y)
        best = min(best, u - t)
    return f"kernel       {best / (2 * n) * 1e6:.1f} us of host launch per uncompiled kernel"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=600)
    args = parser.parse_args()
    data = s.batches(args.steps, args.batch)
    x, y = c.data(args.steps * args.batch)
    x, y = mx.array(x), mx.array(y)
    mx.eval(x, y)
    print(f"mlx {mx.__version__}, {mx.default_device()}, B={args.batch}, {args.steps} steps")
    print(kernel_cost())
    for _ in range(2):
        print(hand(data, False))
        print(hand(data, True))
        print(runner(data))
        print(fit(x, y, args.batch))


if __name__ == "__main__":
    main()
