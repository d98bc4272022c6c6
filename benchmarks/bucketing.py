"""Batching by duration: padding and throughput of plain shuffling, ``BucketBatchSampler`` (fixed
batch size, length buckets) and ``DynamicBucketingSampler`` (Lhotse's duration budget).

Two duration sets:

- the spoken digits (``examples/spoken_digits.py``: espeak-ng clips, ~0.5-1.5 s), durations
  from the FLAC headers (``AudioManifest.lengths()``); made once into a cache folder
  (``--digits`` names an existing one, e.g. ``data/spoken_digits`` after ``make demo``);
- a generated long tail of 0.5-30 s (log-normal, clipped), as speech corpora have.

Padding fractions are exact (a function of the durations and the seed). Throughput is one epoch
through the ``DataLoader`` (in-process), padded by ``PadCollate``, plus a strided 1-D
convolution on each padded batch (compute that grows with the padded size, as a model's does):
samples/s of that loop, the best of ``--repeats``. The digits are decoded from their FLAC files
(16 kHz); the long tail is synthetic noise of those durations at 1 kHz (so it stays quick).

Run: ``.venv/bin/python benchmarks/bucketing.py`` (< 1 min); prints a markdown table.

``--retraces``: a compiled train step (a strided convolution, mean-pooled, a linear layer,
cross-entropy, Adam) over two epochs of ``DynamicBucketingSampler`` batches, each padded to its
longest clip, to a multiple of 0.1 s, or to its duration bucket's upper boundary (what
``mlx-audio train --data.batching duration`` does: NOTE [batch shapes] in
``mlx_audio/cli/batching.py``); the sampler costs each clip at its padded length. Reports the
traces (one a new batch shape), the padding, and samples/s of the first epoch (compiles
included) and of the second (every shape compiled already).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

import mlx.core as mx
import numpy as np

import mlx_audio.data  # noqa: F401  (first: OpenBLAS before mlx.core on Linux)
from mlx_audio.data import (
    AudioManifest,
    BucketBatchSampler,
    DataLoader,
    Dataset,
    DynamicBucketingSampler,
    PadCollate,
)

RATE = 1000  # synthetic audio: 1 kHz keeps an epoch short; padding is rate-free


class Synthetic(Dataset):
    """Sample i: noise of ``durations[i]`` seconds at 1 kHz."""

    def __init__(self, durations: np.ndarray) -> None:
        self.lengths = np.maximum(1, np.round(durations * RATE).astype(int))

    def __len__(self) -> int:
        return len(self.lengths)

    def __getitem__(self, i: int) -> np.ndarray:
        return np.random.default_rng(i).standard_normal(self.lengths[i]).astype(np.float32)


def digits(root: str | None) -> tuple[np.ndarray, Dataset]:
    """The training clips' durations (from the headers) and the clips themselves."""
    if root is None:
        root = os.path.join(tempfile.gettempdir(), "mlx_audio_bench_spoken_digits")
        sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
        import spoken_digits

        spoken_digits.generate(root, clips_per_digit=2, voice_limit=15)
    manifest = AudioManifest(os.path.join(root, "train.csv"), sample_rate=16000)
    return manifest.lengths() / 16000, manifest


def long_tail(count: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    return np.clip(0.5 + rng.lognormal(1.2, 0.9, count), 0.5, 30.0)


def samplers(durations: np.ndarray, batch_size: int, max_duration: float) -> dict[str, object]:
    n = len(durations)
    order = np.random.default_rng(0).permutation(n)
    plain = [order[i : i + batch_size].tolist() for i in range(0, n, batch_size)]
    steps = np.round(durations * 1000).astype(int)
    return {
        f"shuffled, batch {batch_size}": plain,
        f"BucketBatchSampler, batch {batch_size}, 10 buckets": BucketBatchSampler(
            steps, batch_size, num_buckets=10, seed=0
        ),
        f"DynamicBucketingSampler, max_duration {max_duration:g} s": DynamicBucketingSampler(
            durations, max_duration=max_duration, num_buckets=10, shuffle=True, seed=0
        ),
    }


def padding(durations: np.ndarray, batches: list[list[int]]) -> dict[str, float]:
    padded = sum(len(b) * durations[b].max() for b in batches)
    return {
        "padding": 1 - durations.sum() / padded,
        "batches": len(batches),
        "mean": np.mean([len(b) for b in batches]),
        "peak": max(len(b) * durations[b].max() for b in batches),
    }


def throughput(dataset: Dataset, batches: list[list[int]], repeats: int) -> float:
    kernel = mx.array(np.random.default_rng(0).standard_normal((16, 9, 1)).astype(np.float32))

    @mx.compile
    def step(x: mx.array) -> mx.array:
        return mx.mean(mx.abs(mx.conv1d(x[..., None], kernel, stride=4)))

    loader = DataLoader(dataset, batch_sampler=batches, collate_fn=PadCollate())
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for batch in loader:
            mx.eval(step(batch[0]))  # the padded waves
        best = min(best, time.perf_counter() - start)
    return sum(map(len, batches)) / best


def padded_batches(
    durations: np.ndarray, budget: float, rate: int, how: str
) -> tuple[DynamicBucketingSampler, PadCollate]:
    """The sampler (durations in samples, padded as ``how`` pads them) and its collate."""
    from mlx_audio.data import estimate_duration_buckets

    samples = np.ceil(durations * rate)
    bins: list[float] | None = None
    if how == "longest":
        costs, collate = samples, PadCollate()
    elif how == "0.1 s":
        step = rate // 10
        costs, collate = np.ceil(samples / step) * step, PadCollate(pad_to_multiple_of=step)
    else:  # the buckets' upper boundaries
        edges = estimate_duration_buckets(durations, 10)
        lengths = sorted({int(np.ceil(b * rate)) for b in edges} | {int(samples.max())})
        targets = np.asarray(lengths, np.float64)
        costs = targets[np.minimum(np.searchsorted(targets, samples), len(targets) - 1)]
        bins, collate = [float(n) for n in lengths[:-1]], PadCollate(pad_to_lengths=lengths)
    sampler = DynamicBucketingSampler(
        costs, max_duration=budget * rate, num_buckets=10, duration_bins=bins, shuffle=True,
        seed=0,
    )  # fmt: skip
    return sampler, collate


VARIANTS = ("longest", "0.1 s", "bucket boundary")


def retraces(dataset: Dataset, durations: np.ndarray, budget: float, rate: int, how: str) -> None:
    """One row: ``how``'s padding, run in a process of its own (a fresh compile cache)."""
    import mlx.nn as nn
    import mlx.optimizers as optim

    sampler, collate = padded_batches(durations, budget, rate, how)
    mx.random.seed(0)
    conv, head = nn.Conv1d(1, 16, 9, stride=4), nn.Linear(16, 2)
    model = nn.Sequential(conv, nn.ReLU(), head)
    optimizer = optim.Adam(learning_rate=1e-3)
    traces = [0]

    def loss_fn(x: mx.array, y: mx.array) -> mx.array:
        h = mx.mean(nn.relu(conv(x[..., None])), axis=1)
        return mx.mean(nn.losses.cross_entropy(head(h), y))

    grad = nn.value_and_grad(model, loss_fn)
    state = [model.state, optimizer.state]

    @partial(mx.compile, inputs=state, outputs=state)
    def step(x: mx.array, y: mx.array) -> mx.array:
        traces[0] += 1  # Python runs only while tracing
        loss, grads = grad(x, y)
        optimizer.update(model, grads)
        return loss

    speeds, real, padded = [], 0.0, 0.0
    for epoch in range(2):  # the same batches twice (a new loader: epoch 0 again)
        loader = DataLoader(dataset, batch_sampler=sampler, collate_fn=collate, seed=0)
        start, count = time.perf_counter(), 0
        for batch in loader:
            waves = batch[0]
            mx.eval(step(waves, mx.array(np.arange(waves.shape[0]) % 2)))
            count += waves.shape[0]
            if epoch == 0:
                real += float(np.array(batch[-1]).sum())
                padded += waves.shape[0] * waves.shape[1]
        speeds.append(count / (time.perf_counter() - start))
    print(
        f"| {how} | {traces[0]} | {1 - real / padded:.1%} | {speeds[0]:,.0f} | {speeds[1]:,.0f} |",
        flush=True,
    )


def all_retraces(args: argparse.Namespace) -> None:
    import subprocess

    print(f"{platform.machine()} {platform.system()}, MLX {mx.__version__}")
    for name, text in (
        ("tail", f"long tail 0.5-30 s ({args.clips} clips at {RATE} Hz), max_duration 200 s"),
        ("digits", "spoken digits (16 kHz), max_duration 16 s"),
    ):
        print(f"\n{text}:\n")
        print("| padded to | batch shapes (traces) | padding | samples/s, epoch 1 | epoch 2 |")
        print("|---|---:|---:|---:|---:|", flush=True)
        for how in VARIANTS:
            command = [sys.executable, __file__, "--variant", name, how, "--clips", str(args.clips)]
            subprocess.run(command + (["--digits", args.digits] if args.digits else []), check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--digits", help="a spoken-digits folder (default: made once, cached)")
    parser.add_argument("--clips", type=int, default=2000, help="long-tail set size")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument(
        "--retraces", action="store_true", help="traces and speed of the padding choices"
    )
    parser.add_argument("--variant", nargs=2, help=argparse.SUPPRESS)  # one --retraces row
    args = parser.parse_args()
    if args.retraces:
        all_retraces(args)
        return
    if args.variant:
        name, how = args.variant
        if name == "tail":
            tail = long_tail(args.clips)
            retraces(Synthetic(tail), tail, 200.0, RATE, how)
        else:
            spoken, clips = digits(args.digits)
            retraces(clips, spoken, 16.0, 16000, how)
        return
    spoken, clips = digits(args.digits)
    tail = long_tail(args.clips)
    sets = {
        "spoken digits": (spoken, clips, 16, 16.0),
        "long tail 0.5-30 s": (tail, Synthetic(tail), 32, 200.0),
    }
    print(f"{platform.machine()} {platform.system()}, MLX {mx.__version__}, {os.cpu_count()} cores")
    print()
    print(
        "| durations | batching | batches | mean batch | padding | peak batch (s of audio) "
        "| samples/s |"
    )
    print("|---|---|---:|---:|---:|---:|---:|")
    for name, (durations, dataset, batch_size, budget) in sets.items():
        for label, sampler in samplers(durations, batch_size, budget).items():
            batches = [list(b) for b in sampler]  # type: ignore[attr-defined]
            row = padding(durations, batches)
            speed = f"{throughput(dataset, batches, args.repeats):,.0f}"
            print(
                f"| {name} ({len(durations)}) | {label} | {row['batches']} | {row['mean']:.1f} "
                f"| {row['padding']:.1%} | {row['peak']:.0f} | {speed} |"
            )


if __name__ == "__main__":
    main()
