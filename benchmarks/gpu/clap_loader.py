"""CLAP trained from audio files on disk vs from pre-made batches: does the DataLoader keep up?

Writes ``--files`` 10 s, 48 kHz WAV clips (int16) to a folder, then runs ``Trainer.fit``
(htsat-unfused, text frozen, AdamW, ``precision="bf16-mixed"``, B=32) twice, with the same
steps: (1) on pre-made log-mel batches already on the device, (2) from the files through our
DataLoader: worker processes decode the WAVs (``load_audio``), the batch is collated in shared
memory and the log-mel runs on the GPU as an ``mlx_transforms`` step (``LogMel``). (The WAVs
are read with the stdlib ``wave`` module: the lent GPU machine has no libsndfile.) Reports the
mean ms/step of each after ``--warmup`` steps and their ratio (target: loader <= 1.05x).
Usage: ``python3 benchmarks/gpu/clap_loader.py [--files 480] [--workers 12]``.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import wave

import numpy as np

B, SR, SECONDS, TOKENS = 32, 48_000, 10, 64


def write_clips(folder: str, count: int) -> list[str]:
    rng = np.random.default_rng(0)
    paths = []
    for i in range(count):
        path = os.path.join(folder, f"clip{i:05d}.wav")
        tone = np.sin(2 * np.pi * rng.uniform(100, 4000) * np.arange(SR * SECONDS) / SR)
        pcm = ((0.3 * tone + 0.05 * rng.standard_normal(tone.shape)) * 32767).astype("<i2")
        with wave.open(path, "wb") as f:
            f.setnchannels(1)
            f.setsampwidth(2)
            f.setframerate(SR)
            f.writeframes(pcm.tobytes())
        paths.append(path)
    return paths


class Clips:
    """(waveform, token ids, attention mask) per file."""

    def __init__(self, paths: list[str]) -> None:
        self.paths = paths
        rng = np.random.default_rng(1)
        self.ids = rng.integers(3, 50265, (len(paths), TOKENS)).astype(np.int32)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple:
        with wave.open(self.paths[i], "rb") as f:  # the stdlib reader: the lent GPU machine has no libsndfile
            pcm = np.frombuffer(f.readframes(f.getnframes()), dtype="<i2")
        return pcm.astype(np.float32) / 32768, self.ids[i], np.ones(TOKENS, np.int32)


def add_channel(batch: tuple) -> tuple:
    mels, ids, mask = batch
    return mels[:, None], ids, mask


def fit(data, steps: int, warmup: int) -> float:
    from clap_fit import fit_times

    per_step = fit_times(data, steps, warmup, "bf16-mixed")
    return 1000 * sum(per_step) / len(per_step)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=480)
    parser.add_argument("--workers", type=int, default=12)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=5)
    args = parser.parse_args()
    import mlx.core as mx

    import mlx_audio.models  # noqa: F401
    from mlx_audio.data import DataLoader, LogMel

    folder = tempfile.mkdtemp(prefix="clap-clips-")
    start = time.perf_counter()
    paths = write_clips(folder, args.files)
    print(f"wrote {len(paths)} clips in {time.perf_counter() - start:.1f} s", flush=True)
    log_mel = LogMel(SR, n_fft=1024, hop_length=480, n_mels=64, f_min=50, f_max=14_000)
    first = Clips(paths[:B])
    premade = add_channel(log_mel((mx.array(np.stack([first[i][0] for i in range(B)])),
                                   mx.array(first.ids[:B]), mx.ones((B, TOKENS), dtype=mx.int32))))
    mx.eval(premade)
    print("batch shapes", [tuple(a.shape) for a in premade], flush=True)
    base = fit([premade] * (args.warmup + args.steps), args.steps, args.warmup)
    print(f"pre-made batches: {base:.1f} ms/step", flush=True)
    loader = DataLoader(Clips(paths), batch_size=B, shuffle=True, drop_last=True, num_workers=args.workers,
                        persistent_workers=True, prefetch_factor=4, mlx_transforms=[log_mel, add_channel])
    ours = fit(loader, args.steps, args.warmup)
    print(f"from {args.files} WAV files, {args.workers} workers: {ours:.1f} ms/step ({ours / base:.3f}x pre-made)", flush=True)


if __name__ == "__main__":
    main()
