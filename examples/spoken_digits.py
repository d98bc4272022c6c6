"""Spoken digits "zero" ... "nine", synthesized offline with espeak-ng: many voices (accents x
voice variants), speeds and pitches, mixed with noise at random SNRs, written as 16 kHz FLAC
files with CSV manifests. Whole voices are held out for validation, so the accuracy measures
generalisation to voices the model never heard. Generated once into a cache folder.

    python examples/spoken_digits.py [--root data/spoken_digits]

espeak-ng: ``apt-get install espeak-ng`` (the Makefile does this where apt exists), ``brew
install espeak-ng`` on macOS.
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor

import numpy as np

DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
ACCENTS = ("en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-029", "en-gb-x-gbcwmd")
VARIANTS = (
    "m1",
    "m2",
    "m3",
    "m4",
    "m5",
    "m6",
    "m7",
    "f1",
    "f2",
    "f3",
    "f4",
    "f5",
    "Andy",
    "Annie",
    "Denis",
    "Gene",
    "Jacky",
    "Lee",
    "Michael",
    "Mike",
    "anika",
    "aunty",
    "belinda",
    "benjamin",
    "david",
    "edward",
    "grandma",
    "grandpa",
    "john",
    "linda",
    "max",
    "norbert",
    "paul",
    "quincy",
    "robert",
    "steph",
    "travis",
    "victor",
    "zac",
    "shelby",
)
SPEEDS = (120, 150, 180, 210)
RATE = 16_000
VERSION = "1"  # bump when the recipe changes: the cache is rebuilt


def voices(seed: int = 0, limit: int | None = None) -> tuple[list[str], list[str]]:
    """All voices (accent+variant; the first ``limit`` of a seeded shuffle), split into train
    and held-out validation voices (20 %)."""
    every = [f"{accent}+{variant}" for accent in ACCENTS for variant in VARIANTS]
    if limit is not None:
        every = [every[i] for i in np.random.default_rng(seed + 1).permutation(len(every))[:limit]]
    order = np.random.default_rng(seed).permutation(len(every))
    held = max(1, len(every) // 5)
    return [every[i] for i in order[held:]], [every[i] for i in order[:held]]


def synthesize(voice: str, text: str, speed: int, pitch: int, path: str) -> None:
    subprocess.run(
        ["espeak-ng", "-v", voice, "-s", str(speed), "-p", str(pitch), "-w", path, text],
        check=True,
        capture_output=True,
        timeout=30,
    )


def noisy(wave: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The clip at a random level with silence around it and noise at a random SNR (0-20 dB)."""
    wave = wave / (np.abs(wave).max() + 1e-9) * rng.uniform(0.2, 0.9)
    lead, tail = rng.integers(0, RATE // 5, 2)
    wave = np.concatenate([np.zeros(lead), wave, np.zeros(tail)])
    signal = np.mean(wave**2) + 1e-12
    snr_db = rng.uniform(0.0, 20.0)
    color = rng.standard_normal(len(wave))
    if rng.random() < 0.5:  # brown-ish noise half of the time
        color = np.cumsum(color)
        color -= np.convolve(color, np.ones(400) / 400, mode="same")
    color *= np.sqrt(signal / (10 ** (snr_db / 10)) / (np.mean(color**2) + 1e-12))
    return np.clip(wave + color, -1.0, 1.0).astype(np.float32)


def generate(
    root: str,
    clips_per_digit: int = 2,
    seed: int = 0,
    workers: int = 4,
    voice_limit: int | None = None,
) -> None:
    """Write ``root/{train,val}.csv`` and the FLAC files they name (skipped when present)."""
    import soundfile as sf

    from mlx_audio.data.audio import load_audio

    marker = os.path.join(root, f".complete-v{VERSION}")
    if os.path.exists(marker):
        return
    if shutil.which("espeak-ng") is None:
        sys.exit(
            "espeak-ng is needed to make the spoken digits: apt-get install espeak-ng (brew install espeak-ng)"
        )
    shutil.rmtree(root, ignore_errors=True)
    os.makedirs(os.path.join(root, "clips"))
    train, val = voices(seed, voice_limit)
    jobs = []
    rng = np.random.default_rng(seed)
    for split, names in (("train", train), ("val", val)):
        for voice in names:
            for label, digit in enumerate(DIGITS):
                for k in range(clips_per_digit):
                    speed = int(rng.choice(SPEEDS)) + int(rng.integers(-10, 11))
                    pitch = int(rng.integers(20, 80))
                    name = f"{split}-{voice.replace('+', '_')}-{digit}-{k}.flac"
                    jobs.append(
                        (split, voice, label, digit, speed, pitch, name, int(rng.integers(2**31)))
                    )
    scratch = tempfile.mkdtemp()

    def make(job: tuple) -> tuple:
        split, voice, label, digit, speed, pitch, name, clip_seed = job
        wav = os.path.join(scratch, name + ".wav")
        synthesize(voice, digit, speed, pitch, wav)
        wave, _ = load_audio(wav, RATE)
        os.remove(wav)
        sf.write(
            os.path.join(root, "clips", name), noisy(wave, np.random.default_rng(clip_seed)), RATE
        )
        return split, f"clips/{name}", label, voice

    rows: dict[str, list[tuple]] = {"train": [], "val": []}
    with ThreadPoolExecutor(workers) as pool:
        for done, (split, path, label, voice) in enumerate(pool.map(make, jobs), start=1):
            rows[split].append((path, label, voice))
            if done % 200 == 0 or done == len(jobs):
                bar = "#" * int(30 * done / len(jobs))
                print(f"\rmaking spoken digits [{bar:<30}] {done}/{len(jobs)}", end="", flush=True)
    print()
    shutil.rmtree(scratch, ignore_errors=True)
    for split, items in rows.items():
        with open(os.path.join(root, f"{split}.csv"), "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["path", "label", "voice"])
            writer.writerows(items)
    open(marker, "w").close()
    print(
        f"spoken digits: {len(rows['train'])} training clips ({len(train)} voices), "
        f"{len(rows['val'])} validation clips ({len(val)} held-out voices) in {root}"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=os.path.join("data", "spoken_digits"))
    parser.add_argument("--clips-per-digit", type=int, default=2)
    args = parser.parse_args()
    generate(args.root, args.clips_per_digit)
