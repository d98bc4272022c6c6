"""What the on-device log-mel of one CLAP batch costs: ``LogMel`` on (32, 480000) float32 and
int16 audio already on the device, its FFT alone, and the same spectrum as a matmul with a DFT
matrix (two real (n_fft, n_fft//2+1) products). Median ms over ``--repeats`` evaluated calls.
Usage: ``python3 benchmarks/gpu/logmel_probe.py``.
"""

from __future__ import annotations

import argparse
import statistics
import time

import mlx.core as mx
import numpy as np

from mlx_audio.data.audio.features_mlx import LogMel


def timed(fn, repeats: int) -> float:
    mx.eval(fn())
    times = []
    for _ in range(repeats):
        mx.synchronize()
        start = time.perf_counter()
        mx.eval(fn())
        mx.synchronize()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--batch", type=int, default=32)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    audio = (0.3 * rng.standard_normal((args.batch, 480_000))).astype(np.float32)
    x32 = mx.array(audio)
    x16 = mx.array((audio * 32767).astype(np.int16))
    mx.eval(x32, x16)
    logmel = LogMel(48_000, n_fft=1024, hop_length=480, n_mels=64, f_min=50, f_max=14_000)
    n_fft = 1024
    frames = 1 + (480_000 + n_fft - n_fft) // 480
    windows = mx.as_strided(
        mx.pad(x32, [(0, 0), (512, 512)]),
        shape=(args.batch, frames, n_fft),
        strides=(480_000 + n_fft, 480, 1),
    )
    windows = mx.contiguous(windows * logmel._window)
    mx.eval(windows)
    k = np.arange(n_fft // 2 + 1)
    n = np.arange(n_fft)[:, None]
    cos = mx.array(np.cos(2 * np.pi * n * k / n_fft).astype(np.float32))
    sin = mx.array(-np.sin(2 * np.pi * n * k / n_fft).astype(np.float32))
    rows = {
        "LogMel float32": lambda: logmel.features(x32),
        "LogMel int16": lambda: logmel.features(x16),
        "LogMel float32, mx.compile": (lambda f: lambda: f(x32))(mx.compile(logmel.features)),
        "rfft of the windows": lambda: mx.fft.rfft(windows, axis=-1),
        "power via DFT matmul": lambda: mx.square(windows @ cos) + mx.square(windows @ sin),
        "copy of the windows": lambda: windows + 1,
    }
    print(f"mlx {mx.__version__}, {mx.default_device()}, batch {args.batch}")
    for name, fn in rows.items():
        print(f"{name}: {timed(fn, args.repeats):.2f} ms", flush=True)


if __name__ == "__main__":
    main()
