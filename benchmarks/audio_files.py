"""Loading a folder of real audio files of mixed lengths: mlx_audio vs torch's DataLoader.

~2,000 generated clips of 1-10 s at 16 kHz (half FLAC, half WAV) in one folder per class;
per sample: decode, resample 16 -> 48 kHz (soxr), random 2 s crop (padded when shorter),
64-band log-mel; padded batches of 32 with lengths; 2 workers. The same Python per-sample code
runs in both loaders (torch's gets the sample's generator seeded by (epoch, index) as ours
does). Also: ours with the log-mel computed by MLX on each batch (``LogMel`` in
``mlx_transforms``: workers only decode, resample and crop), and the padding fraction of
random batching vs ``BucketBatchSampler`` over the uncropped clips.

Run: ``.venv-anchor/bin/python benchmarks/audio_files.py`` (``make bench``). Each figure is
the best of ``--repeats`` full epochs, worker start-up included.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time

import mlx.core as mx
import numpy as np

import mlx_audio.data  # noqa: F401  (first: OpenBLAS before mlx.core on Linux)
from mlx_audio.data import AudioFolder, BucketBatchSampler, DataLoader, LogMel, PadCollate
from mlx_audio.data.audio import load_audio
from mlx_audio.data.audio.features import log_mel_spectrogram, mel_filterbank
from mlx_audio.data.sampler import epoch_rng

RATE_IN = 16000
RATE = 48000
CROP = 2 * RATE
FILTERS = mel_filterbank(RATE, 1024, 64)


def make_clips(root: str, count: int) -> None:
    import soundfile as sf

    rng = np.random.default_rng(0)
    for i in range(count):
        label = f"class{i % 10}"
        os.makedirs(os.path.join(root, label), exist_ok=True)
        seconds = rng.uniform(1.0, 10.0)
        t = np.arange(int(seconds * RATE_IN)) / RATE_IN
        wave = 0.3 * np.sin(2 * np.pi * (200 + 50 * (i % 10)) * t) + 0.05 * rng.standard_normal(
            t.size
        )
        ext = "flac" if i % 2 else "wav"
        sf.write(os.path.join(root, label, f"{i:05d}.{ext}"), wave.astype(np.float32), RATE_IN)
        if i % 200 == 0:
            print(f"  generating clips: {i}/{count}", file=sys.stderr, flush=True)


def crop(wave: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    if wave.shape[-1] > CROP:
        start = int(rng.integers(0, wave.shape[-1] - CROP + 1))
        return wave[start : start + CROP]
    return wave


def sample_features(path: str, label: int, rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """The per-sample code both loaders run: decode + resample, crop, log-mel (frames, mels)."""
    wave, _ = load_audio(path, RATE)
    return log_mel_spectrogram(
        crop(wave, rng), RATE, 1024, 480, filters=FILTERS, channels_last=True
    ), label


class Features:
    """Map-style dataset over the folder's files: the full per-sample pipeline."""

    def __init__(self, folder: AudioFolder, epoch_seed: int = 0) -> None:
        self.samples = folder.samples
        self.epoch_seed = epoch_seed

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int):
        path, label = self.samples[index]
        return sample_features(path, label, epoch_rng(0, self.epoch_seed, index))


def pad_frames(samples):
    """torch side: pad (frames, mels) features to the longest, with lengths (as PadCollate)."""
    import torch

    longest = max(s[0].shape[0] for s in samples)
    batch = np.zeros((len(samples), longest, samples[0][0].shape[1]), np.float32)
    for row, (mel, _) in enumerate(samples):
        batch[row, : mel.shape[0]] = mel
    lengths = [s[0].shape[0] for s in samples]
    labels = [s[1] for s in samples]
    return torch.from_numpy(batch), torch.tensor(labels), torch.tensor(lengths)


class Waves:
    """Workers decode, resample and crop only; the log-mel runs in MLX on each batch."""

    def __init__(self, folder: AudioFolder) -> None:
        self.samples = folder.samples

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int):
        from mlx_audio.data import sample_rng

        path, label = self.samples[index]
        wave, _ = load_audio(path, RATE)
        return crop(wave, sample_rng()), label


def timed_epoch(loader, sync) -> tuple[float, int]:
    start = time.perf_counter()
    count = 0
    for batch in loader:
        sync(batch)
        count += int(batch[1].shape[0])
    return time.perf_counter() - start, count


def best(loader, sync, repeats: int) -> float:
    rates = []
    for _ in range(repeats):
        seconds, count = timed_epoch(loader, sync)
        rates.append(count / seconds)
    return max(rates)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clips", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--root", default=None, help="reuse a folder of generated clips")
    args = parser.parse_args()
    root = args.root or os.path.join(tempfile.gettempdir(), f"mlx_audio_bench_clips_{args.clips}")
    if not os.path.isdir(root) or sum(len(f) for _, _, f in os.walk(root)) < args.clips:
        print(f"generating {args.clips} clips in {root}", file=sys.stderr)
        make_clips(root, args.clips)
    folder = AudioFolder(root)
    print(
        f"# {len(folder)} clips, python {platform.python_version()}, mlx {mx.__version__}, "
        f"numpy {np.__version__}, {os.cpu_count()} CPUs, {platform.platform()}"
    )

    collate = PadCollate(axis=0)
    ours = DataLoader(
        Features(folder),
        batch_size=32,
        shuffle=True,
        seed=0,
        num_workers=args.workers,
        collate_fn=collate,
    )
    rate_ours = best(ours, lambda b: mx.eval(b[0]), args.repeats)
    print(f"mlx_audio DataLoader, numpy log-mel in workers: {rate_ours:,.0f} clips/s")
    on_mlx = DataLoader(
        Waves(folder),
        batch_size=32,
        shuffle=True,
        seed=0,
        num_workers=args.workers,
        collate_fn=PadCollate(),
        mlx_transforms=LogMel(RATE, 1024, 480, 64, channels_last=True),
    )
    rate_mlx = best(on_mlx, lambda b: mx.eval(b[0]), args.repeats)
    print(f"mlx_audio DataLoader, log-mel by MLX per batch: {rate_mlx:,.0f} clips/s")
    try:
        import torch
        from torch.utils.data import DataLoader as TorchLoader
    except ImportError:
        print("torch not installed: anchor side skipped (run with the anchor venv)")
        return
    theirs = TorchLoader(
        Features(folder),
        batch_size=32,
        shuffle=True,
        num_workers=args.workers,
        collate_fn=pad_frames,
    )
    rate_torch = best(theirs, lambda b: b[0].sum().item(), args.repeats)
    print(f"torch {torch.__version__} DataLoader, same per-sample code: {rate_torch:,.0f} clips/s")
    print(
        f"ratio (same code): {rate_ours / rate_torch:.2f}x; with the log-mel on MLX: {rate_mlx / rate_torch:.2f}x"
    )
    lengths = folder.lengths()
    buckets = BucketBatchSampler(lengths, 32, num_buckets=8, seed=0)
    order = np.random.default_rng(0).permutation(len(lengths))
    random_batches = [lengths[order[i : i + 32]] for i in range(0, len(order), 32)]
    random_padding = 1 - lengths.sum() / sum(b.max() * len(b) for b in random_batches)
    print(
        f"padding of whole clips: random batches {random_padding:.1%}, BucketBatchSampler(8 buckets) "
        f"{buckets.padding_fraction():.1%}"
    )


if __name__ == "__main__":
    main()
