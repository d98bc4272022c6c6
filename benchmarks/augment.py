"""What augmentation costs: the compiled train step with SpecAugment + mixup/cutmix inside it
vs the plain step, and the worker-side waveform chain per sample.

The step is the CLI's audio classifier: waveforms (16 x 1 s at 16 kHz) -> ``LogMel`` on the
accelerator -> ``AudioCNN`` (channels 16, 32, 64), AdamW, compiled with ``mx.compile`` over
``[model.state, optimizer.state, mx.random.state]`` as the Trainer does. The augmented step
adds two ``FrequencyMasking(8)``, two ``TimeMasking(20, p=0.2)`` (adaptive, with lengths) and
``Mixup(0.4, cutmix_alpha=1.0)`` with soft-target cross entropy. A and B run interleaved
(ABAB...), the median of each is reported, so a loaded machine slows both alike.

Worker side: ``Compose([Gain, Shift, SpeedPerturbation, AddBackgroundNoise,
ApplyImpulseResponse])`` on a 1 s clip, in ms per sample (it runs in the workers, in parallel
with the step).

Run: ``.venv/bin/python benchmarks/augment.py`` (< 1 minute). ``--rounds`` sets the A/B pairs.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time

import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim
import numpy as np

import mlx_audio.data  # noqa: F401  (first: OpenBLAS before mlx.core on Linux)
from mlx_audio.data import LogMel
from mlx_audio.data.audio.augment import (
    AddBackgroundNoise,
    ApplyImpulseResponse,
    Compose,
    Gain,
    Shift,
    SpeedPerturbation,
)
from mlx_audio.data.audio.augment_mlx import FrequencyMasking, Mixup, TimeMasking
from mlx_audio.models import AudioCNN

RATE, BATCH, CLASSES = 16000, 16, 10


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = LogMel(RATE, n_fft=512, hop_length=160, n_mels=64)
        self.net = AudioCNN(CLASSES, channels=(16, 32, 64), dropout=0.1)

    def __call__(self, mels: mx.array) -> mx.array:
        return self.net(mels[:, None])


def make_step(augment: bool):  # noqa: ANN201
    mx.random.seed(0)
    model = Net()
    opt = optim.AdamW(1e-3)
    opt.init(model.trainable_parameters())
    masks = [FrequencyMasking(8), FrequencyMasking(8)]
    times = [TimeMasking(20, p=0.2), TimeMasking(20, p=0.2)]
    mix = Mixup(0.4, cutmix_alpha=1.0, label_smoothing=0.1, num_classes=CLASSES)

    def loss_fn(model: Net, waves: mx.array, labels: mx.array, lengths: mx.array) -> mx.array:
        mels = model.features.features(waves)  # (B, n_mels, frames)
        if augment:
            frames = mx.minimum(lengths // 160 + 1, mels.shape[-1])
            for m in masks:
                mels = m(mels)
            for t in times:
                mels = t(mels, lengths=frames)
            mels, target = mix(mels, labels)
            return mx.mean(nn.losses.cross_entropy(model(mels), target))
        return mx.mean(nn.losses.cross_entropy(model(mels), labels))

    grad = nn.value_and_grad(model, loss_fn)
    state = [model.state, opt.state, mx.random.state]

    def raw(waves: mx.array, labels: mx.array, lengths: mx.array) -> mx.array:
        loss, grads = grad(model, waves, labels, lengths)
        opt.update(model, grads)
        return loss

    compiled = mx.compile(raw, inputs=state, outputs=state)
    return compiled, state


def time_steps(step, state, batch, count: int) -> float:  # noqa: ANN001
    start = time.perf_counter()
    for _ in range(count):
        mx.eval(step(*batch), state)
    return (time.perf_counter() - start) / count


def augment_alone(count: int) -> float:
    """The masks and mixup by themselves, compiled, on one batch of log-mels (16, 64, 101)."""
    masks = [FrequencyMasking(8), FrequencyMasking(8)]
    times = [TimeMasking(20, p=0.2), TimeMasking(20, p=0.2)]
    mix = Mixup(0.4, cutmix_alpha=1.0, label_smoothing=0.1, num_classes=CLASSES)

    def run(mels: mx.array, labels: mx.array, frames: mx.array) -> tuple[mx.array, mx.array]:
        for m in masks:
            mels = m(mels)
        for t in times:
            mels = t(mels, lengths=frames)
        return mix(mels, labels)

    fn = mx.compile(run, inputs=mx.random.state, outputs=mx.random.state)
    mels = mx.random.normal((BATCH, 64, RATE // 160 + 1))
    labels, frames = mx.zeros((BATCH,), mx.int32), mx.full((BATCH,), 80)
    mx.eval(fn(mels, labels, frames))
    start = time.perf_counter()
    for _ in range(count):
        mx.eval(fn(mels, labels, frames))
    return (time.perf_counter() - start) / count


def worker_chain(folder: str) -> float:
    rng = np.random.default_rng(0)
    import soundfile as sf

    os.makedirs(os.path.join(folder, "noise"), exist_ok=True)
    os.makedirs(os.path.join(folder, "rir"), exist_ok=True)
    for i in range(4):
        sf.write(f"{folder}/noise/{i}.wav", rng.standard_normal(RATE * 3) * 0.1, RATE)
        ir = rng.standard_normal(RATE // 4) * np.exp(-np.arange(RATE // 4) / 800)
        sf.write(f"{folder}/rir/{i}.wav", ir, RATE)
    chain = Compose(
        [
            Gain(p=1.0),
            Shift(p=1.0),
            SpeedPerturbation(RATE, (0.9, 1.0, 1.1), p=1.0),
            AddBackgroundNoise(f"{folder}/noise", p=1.0, sample_rate=RATE),
            ApplyImpulseResponse(f"{folder}/rir", p=1.0, sample_rate=RATE),
        ]
    )
    wave = rng.standard_normal(RATE).astype(np.float32) * 0.1
    for i in range(10):  # warm the file cache
        chain(wave, rng=np.random.default_rng(i))
    start = time.perf_counter()
    for i in range(200):
        chain(wave, rng=np.random.default_rng(i))
    return (time.perf_counter() - start) / 200


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--steps", type=int, default=2, help="steps per timed block")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    batch = (
        mx.array(rng.standard_normal((BATCH, RATE)).astype(np.float32) * 0.1),
        mx.array(rng.integers(0, CLASSES, BATCH).astype(np.int32)),
        mx.array(rng.integers(RATE // 2, RATE + 1, BATCH).astype(np.int32)),
    )
    plain, plain_state = make_step(False)
    augmented, aug_state = make_step(True)
    for step, state in ((plain, plain_state), (augmented, aug_state)):
        time_steps(step, state, batch, 3)  # compile and warm up
    a, b = [], []
    for _ in range(args.rounds):
        a.append(time_steps(plain, plain_state, batch, args.steps))
        b.append(time_steps(augmented, aug_state, batch, args.steps))
    ma, mb = statistics.median(a), statistics.median(b)
    alone = augment_alone(50)
    with tempfile.TemporaryDirectory() as folder:
        per_sample = worker_chain(folder)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"machine: {platform.platform()}, {os.cpu_count()} cpus, load average {load:.1f}")
    print(f"plain step     : {ma * 1e3:8.2f} ms (median of {args.rounds} x {args.steps})")
    print(f"augmented step : {mb * 1e3:8.2f} ms (SpecAugment 2F+2T adaptive + mixup/cutmix)")
    print(f"overhead       : {100 * (mb / ma - 1):+7.1f} % (B/A medians; noisy under load)")
    print(f"augment alone  : {alone * 1e3:8.2f} ms ({100 * alone / ma:.1f} % of the plain step)")
    print(
        f"worker chain   : {per_sample * 1e3:8.2f} ms per 1 s clip (gain, shift, speed, noise, RIR)"
    )


if __name__ == "__main__":
    main()
