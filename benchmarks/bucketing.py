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
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--digits", help="a spoken-digits folder (default: made once, cached)")
    parser.add_argument("--clips", type=int, default=2000, help="long-tail set size")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
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
