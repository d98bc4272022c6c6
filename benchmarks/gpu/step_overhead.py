"""Where the time between a hand-written loop and ``Trainer.fit`` goes, step by step.

The tutorial CNN, AdamW, clip 1.0, pre-made batches on the device; samples/s of:
  hand            the hand-written mx.compile loop (mx.eval each step)
  hand+metric     the same, also computing the model's accuracy (its ``compute_loss``, which our
                  step runs): what the model adds, apart from what the library adds. (Until
                  2026-12-07 this row was ``hand+seed``: a host reseed per step, as fit did before
                  issue 30 carried MLX's key in the compiled step's state.)
  runner          our StepBuilder/StepRunner alone (guarded update, the model's metric, async dispatch)
  runner-noguard  the same without the non-finite guard (the update applied unconditionally;
                  MLX's ops, as runner-naive-guard)
  (runner: with the step's CUDA kernels where MLX_AUDIO_CUDA_KERNELS=1, which staged.sh sets)
  runner-mlx-ops  the runner without its CUDA kernels: the gradients' norm (two kernels per
                  array), the clip scale, the update's flag and the counters (a kernel each) and
                  the AdamW update (one per array) in MLX ops (NOTE [one kernel for the
                  gradients' sum of squares], NOTE [one kernel for the step's scalars], NOTE [one
                  kernel for the optimizer's update])
  runner-naive-guard  the guard as before issue 30: every new weight and state array selected
                  against its old value (splits each parameter's fused update into 5-6 kernels)
  runner-sync     the same with the step evaluated synchronously (mx.eval) instead of async
  fit             Trainer.fit with nothing switched on
and a cProfile of ``fit`` (host time per function). ``--kernels``: the kernels of one compiled
step of each (MLX's graph of its lazy outputs after compile's fusion, views left out).
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
from mlx.utils import tree_flatten  # noqa: E402

import mlx_audio.train  # noqa: F401  (first: OpenBLAS before mlx.core on Linux)
from mlx_audio.train import Trainer, _kernels  # noqa: E402
from mlx_audio.train._counters import counters_at  # noqa: E402
from mlx_audio.train._runner import StepRunner  # noqa: E402
from mlx_audio.train._step import StepBuilder  # noqa: E402

sys.path.insert(
    0, os.path.join(os.path.dirname(__file__), "..", "..", "packages", "mlx-audio-train", "tests")
)
from cnn_testing import MNISTLikeCNN  # noqa: E402
from graph_testing import kernel_labels  # noqa: E402


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


def _hand_step(model: FixedLR, metric: bool):
    """The hand-written compiled step (mlx-lm style) and its state; ``metric``: it also returns
    the model's accuracy, as the model's ``compute_loss`` (what our step computes) does."""
    optimizer = optim.AdamW(learning_rate=1e-3, weight_decay=0.01)

    def loss_fn(model, x, y):
        if metric:
            loss, metrics = model.compute_loss((x, y))
            return loss, metrics["accuracy"]
        return mx.mean(nn.losses.cross_entropy(model(x), y))

    value_and_grad = nn.value_and_grad(model, loss_fn)
    state = [model.state, optimizer.state, mx.random.state]

    @partial(mx.compile, inputs=state, outputs=state)
    def step(x, y):
        out, grads = value_and_grad(model, x, y)
        grads, _ = optim.clip_grad_norm(grads, 1.0)
        optimizer.update(model, grads)
        return out

    return step, state


def hand(data, metric: bool) -> float:
    mx.random.seed(0)
    model = FixedLR()
    mx.eval(model.parameters())
    step, state = _hand_step(model, metric)
    start = time.perf_counter()
    for x, y in data:
        out = step(x, y)
        mx.eval(state, out)
    return len(data) * data[0][0].shape[0] / (time.perf_counter() - start)


def _unguarded_update(self, grads, finite):
    """StepBuilder._update without the non-finite guard (for measuring what the guard costs)."""
    from mlx.utils import tree_map

    from mlx_audio.train._guarded import global_norm as _global_norm

    norm = _global_norm(grads)  # (averaged by the caller where data-parallel)
    scale = mx.minimum(1.0, self.clip_val / (norm + 1e-6))
    grads = tree_map(lambda g: (g * scale).astype(g.dtype), grads)
    self.optimizer.update(self.module, grads)
    return mx.isfinite(norm)


def _naive_update(self, grads, finite):
    """StepBuilder._update as before issue 30 (each new array selected against its old one)."""
    from mlx.utils import tree_map

    from mlx_audio.train._guarded import select_in_place as _select_in_place

    leaves = [g for _, g in tree_flatten(grads)]
    norm = mx.sqrt(mx.sum(mx.stack([mx.sum(mx.square(g.astype(mx.float32))) for g in leaves])))
    applied = mx.logical_and(finite, mx.isfinite(norm))
    scale = mx.minimum(1.0, self.clip_val / (norm + 1e-6))
    grads = tree_map(lambda g: (g * scale).astype(g.dtype), grads)
    params = self.module.trainable_parameters()
    state = tree_map(lambda x: x, self.optimizer.state)
    self.optimizer.update(self.module, grads)
    self.module.update(
        tree_map(
            lambda new, old: mx.where(applied, new, old), self.module.trainable_parameters(), params
        )
    )
    _select_in_place(self.optimizer.state, state, applied)
    return applied


def runner(data, guard: bool | str = True, sync: bool = False, cuda_kernels: bool = True) -> float:
    original = (StepBuilder._update, StepRunner._dispatch, _kernels.cuda_step_kernels)
    if not cuda_kernels or guard is not True:  # the other guards are MLX-op formulations
        _kernels.cuda_step_kernels = lambda: False
    if guard == "naive":
        StepBuilder._update = _naive_update
    elif not guard:
        StepBuilder._update = _unguarded_update
    if sync:
        StepRunner._dispatch = lambda self, outputs, loss, deferred: mx.eval(outputs)
    try:
        return _runner(data)
    finally:
        StepBuilder._update, StepRunner._dispatch, _kernels.cuda_step_kernels = original


def _runner(data) -> float:
    mx.random.seed(0)
    model = FixedLR()
    mx.eval(model.parameters())
    optimizer = optim.AdamW(learning_rate=1e-3, weight_decay=0.01)
    start = time.perf_counter()
    run = StepRunner(StepBuilder(model, optimizer, 1, 1.0, "norm", "32", True), 1)
    for i, batch in enumerate(data):
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


def _count(outputs, skip: str = "") -> int:
    """The kernels of the graph of ``outputs`` (views left out, and nodes labelled ``skip``)."""
    return len(kernel_labels(outputs, skip))


def _stand_in_kernels() -> None:
    """Off CUDA: ``mx.fast.cuda_kernel`` replaced by a stand-in whose outputs are zeros made to
    depend on the inputs (one ``Depends`` node per launch, counted as its kernel), so a step on
    the kernel path can be traced and counted (the zeros' ``Full`` nodes are not counted)."""
    from mlx_audio.train import _adam_kernel, _guard_kernel

    def factory(**_):
        def launch(*, inputs, output_shapes, output_dtypes, **__):
            outs = [mx.zeros(s, dtype=d) for s, d in zip(output_shapes, output_dtypes)]
            return mx.depends(outs, inputs)

        return launch

    mx.fast.cuda_kernel = factory
    _kernels.cuda_step_kernels = lambda: True
    _adam_kernel._checked = _guard_kernel._checked = lambda: True


def kernels(data) -> dict[str, int]:
    """Kernels of one compiled step (the third call, after tracing) of the hand loop and of our
    step with each guard; off CUDA also ``runner, kernel stand-ins`` (the step on its CUDA
    kernels' path, each launch counted as one kernel: ``_stand_in_kernels``)."""
    out = {}
    for name, metric in (("hand", False), ("hand+metric", True)):
        mx.random.seed(0)
        model = FixedLR()
        step, state = _hand_step(model, metric)
        for x, y in data[:2]:
            mx.eval(state, step(x, y))
        out[name] = _count([state, step(*data[2])])
        mx.eval(state)
    for name, update in (
        ("runner", StepBuilder._update),
        ("runner-mlx-ops", StepBuilder._update),
        ("runner-naive-guard", _naive_update),
        ("runner-noguard", _unguarded_update),
    ):
        original = StepBuilder._update, _kernels.cuda_step_kernels
        StepBuilder._update = update
        if name != "runner":  # the others are MLX-op formulations
            _kernels.cuda_step_kernels = lambda: False
        try:
            model = FixedLR()
            builder = StepBuilder(
                model,
                optim.AdamW(learning_rate=1e-3, weight_decay=0.01),
                1,
                1.0,
                "norm",
                "32",
                True,
            )
            run = StepRunner(builder, 1)
            for i, batch in enumerate(data[:2]):
                run.run(batch, i, True, None, 0)
            mx.eval(builder.state)
            out[name] = _count(
                [builder.state, builder.fused(data[2], counters_at(2), mx.array(0.0))]
            )
            mx.eval(builder.state)
        finally:
            StepBuilder._update, _kernels.cuda_step_kernels = original
    if not _kernels.cuda_step_kernels():
        graphs = {}
        for stand_in in (False, True):
            if stand_in:
                _stand_in_kernels()
            model = FixedLR()
            mx.eval(model.parameters())
            optimizer = optim.AdamW(learning_rate=1e-3, weight_decay=0.01)
            builder = StepBuilder(model, optimizer, 1, 1.0, "norm", "32", True)
            graphs[stand_in] = [
                builder.state,
                builder.fused(data[2], counters_at(2), mx.array(0.0)),
            ]
        full = _count(graphs[False]) - _count(graphs[False], skip="Full")  # the step's own
        out["runner, kernel stand-ins"] = _count(graphs[True], skip="Full") + full
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-profile", action="store_true")
    parser.add_argument("--kernels", action="store_true", help="count each step's kernels only")
    args = parser.parse_args()
    data = batches(args.steps, args.batch)
    if args.kernels:
        print(f"kernels per step (B={args.batch}; views left out):")
        for name, count in kernels(data).items():
            print(f"  {name:24s} {count}")
        return
    sides = {
        "hand": lambda: hand(data, False),
        "hand+metric": lambda: hand(data, True),
        "runner": lambda: runner(data),
        "runner-noguard": lambda: runner(data, guard=False),
        "runner-mlx-ops": lambda: runner(data, cuda_kernels=False),
        "runner-naive-guard": lambda: runner(data, guard="naive"),
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
