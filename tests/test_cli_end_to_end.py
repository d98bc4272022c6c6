"""`mlx-audio` end to end on data as a user brings it (issue 26): a mixed-format folder (wav,
flac, ogg, mp3; 8-44.1 kHz; mono and stereo) with one corrupt file, a 1-based-label manifest, a
test folder lacking one class, a flat folder to predict; train -> evaluate -> predict -> plot ->
Ctrl-C -> resume, each step checked for its numbers and for one-line messages."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from mlx_audio.cli import main

PITCHES = {"high": 1320.0, "low": 220.0, "mid": 550.0}
# (extension, sample rate, channels): every class gets each kind
KINDS = [(".wav", 16000, 1), (".flac", 44100, 2), (".ogg", 22050, 1), (".mp3", 8000, 1)]
QUICK = [
    "--data.clip_seconds",
    "0.5",
    "--data.batch_size",
    "8",
    "--data.num_workers",
    "0",
    "--model.channels",
    "[8, 16]",
    "--trainer.enable_progress_bar",
    "false",
    "--trainer.enable_model_summary",
    "false",
    "--trainer.loggers",
    "[csv]",
    "--trainer.seed",
    "0",
]


def tone(path: Path, pitch: float, rate: int, channels: int, rng: np.random.Generator) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(rate * rng.uniform(0.5, 0.9))) / rate
    wave = 0.5 * np.sin(2 * np.pi * pitch * t) + 0.02 * rng.standard_normal(len(t))
    data = np.stack([wave] * channels, axis=1) if channels > 1 else wave
    sf.write(path, data.astype(np.float32), rate)


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("e2e")
    rng = np.random.default_rng(0)
    for name, pitch in PITCHES.items():
        for i in range(16):
            ext, rate, channels = KINDS[i % len(KINDS)]
            tone(root / "train" / name / f"{i}{ext}", pitch, rate, channels, rng)
        for i in range(3):
            ext, rate, channels = KINDS[i % len(KINDS)]
            tone(root / "flat" / f"{name}-{i}{ext}", pitch, rate, channels, rng)
            if name != "mid":  # the test set lacks a class
                tone(root / "test" / name / f"{i}{ext}", pitch, rate, channels, rng)
    (root / "train" / "low" / "corrupt.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk" * 8)
    with open(root / "manifest.csv", "w", newline="") as f:  # labels 1..3, not indices
        writer = csv.writer(f)
        writer.writerow(["path", "label"])
        for label, name in enumerate(PITCHES, start=1):
            for i in range(16):
                if i % len(KINDS) == 0:  # the wav files
                    writer.writerow([f"train/{name}/{i}.wav", label])
    return root


def test_a_users_folder_from_training_to_resume(world, tmp_path, capsys):
    run = tmp_path / "run"
    train = ["train", "--data", str(world / "train"), "--trainer.default_root_dir", str(run)]

    # the corrupt file: found before training, one line, exit 1, nothing trained
    assert main([*train, *QUICK, "--trainer.max_epochs", "4"]) == 1
    err = capsys.readouterr().err
    lines = err.strip().splitlines()  # one message: what is wrong, then each file
    assert lines[0].startswith("mlx-audio train: error: 1 of 49 files cannot be read"), err
    assert len(lines) == 2 and "corrupt.wav" in lines[1] and "Traceback" not in err
    assert not (run / "checkpoints").exists()

    # skipping it: trains on every other format, rate and channel count
    assert main([*train, *QUICK, "--trainer.max_epochs", "4", "--data.on_error", "skip"]) == 0
    out = capsys.readouterr().out
    assert "corrupt.wav" in (run / "skipped.txt").read_text()
    assert "high" in out and "low" in out and "mid" in out  # what it found, per class
    saved = json.loads((run / "run.json").read_text())
    assert saved["classes"] == ["high", "low", "mid"]

    # evaluate on a test folder without "mid": labels numbered by the run's classes, so the
    # accuracy is the share of files predict gets right
    assert main(["evaluate", "--run", str(run), "--data", str(world / "test")]) == 0
    said = capsys.readouterr().out
    accuracy = float(said.split("accuracy:")[1].split()[0])
    predictions = tmp_path / "test.csv"
    assert (
        main(
            ["predict", "--run", str(run), "--data", str(world / "test")]
            + ["--out", str(predictions)]
        )
        == 0
    )
    with open(predictions) as f:
        rows = list(csv.DictReader(f))
    right = [Path(r["path"]).parent.name == r["label"] for r in rows]
    assert len(rows) == 6 and accuracy == pytest.approx(np.mean(right))
    assert accuracy >= 0.5, said  # tones this far apart are easy: a trained model, not chance

    # predict on a flat folder: every file, with a label among the run's classes
    flat = tmp_path / "flat.json"
    assert (
        main(["predict", "--run", str(run), "--data", str(world / "flat"), "--out", str(flat)]) == 0
    )
    predicted = json.loads(flat.read_text())
    assert sorted(Path(r["path"]).name for r in predicted) == sorted(os.listdir(world / "flat"))
    assert {r["label"] for r in predicted} <= set(PITCHES)

    # plot: the curves of the run
    assert main(["plot", str(run)]) == 0
    assert any(name.endswith(".png") for name in os.listdir(run))

    # a manifest with labels 1..3: class names, never indices past the end
    manifest_run = tmp_path / "manifest-run"
    args = ["train", "--data", str(world / "manifest.csv"), "--trainer.default_root_dir"]
    assert main([*args, str(manifest_run), *QUICK, "--trainer.max_epochs", "1"]) == 0
    assert json.loads((manifest_run / "run.json").read_text())["classes"] == ["1", "2", "3"]
    capsys.readouterr()

    # Ctrl-C in a longer run, then --resume to its end
    long_run = tmp_path / "long"
    command = [sys.executable, "-m", "mlx_audio", "train", "--data", str(world / "train")]
    command += ["--trainer.default_root_dir", str(long_run), *QUICK, "--data.on_error", "skip"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [*command, "--trainer.max_epochs", "1000"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 240
        while not (long_run / "run.json").exists():
            assert process.poll() is None and time.monotonic() < deadline, "no checkpoint"
            time.sleep(0.05)
        os.killpg(process.pid, signal.SIGINT)
        output, _ = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode == 130 and "Traceback" not in output, output
    stopped = json.loads((long_run / "run.json").read_text())
    assert stopped["status"] == "interrupted"
    epochs = stopped["epoch"] + 2
    resumed = subprocess.run(
        [*command, "--trainer.max_epochs", str(epochs), "--resume"],
        capture_output=True,
        text=True,
        env=env,
        timeout=240,
    )
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    finished = json.loads((long_run / "run.json").read_text())
    assert finished["status"] == "finished" and finished["epoch"] == epochs  # epochs done
