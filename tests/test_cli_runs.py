"""`mlx-audio train`'s run folder: never overwritten, `--resume` says what it resumes, Ctrl-C
keeps the work (a real process and SIGINT), `trainer.seed` reproduces a run (two processes),
run.json is written at every checkpoint with paths relative to the run (a moved run works), and
the logging interval fits the run's length."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from mlx_audio.cli import main

PITCHES = {"low": 220.0, "mid": 440.0, "high": 880.0}
STEPS = 9  # an epoch: 36 files, 3 held out for validation (one per class), batches of 4


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> Path:
    """Noisy tones of three pitches, 12 files each, as class folders."""
    import soundfile as sf

    root = tmp_path_factory.mktemp("clips")
    rng = np.random.default_rng(0)
    for label, pitch in PITCHES.items():
        (root / label).mkdir()
        for i in range(12):
            t = np.arange(int(16000 * rng.uniform(0.3, 0.6))) / 16000
            wave = 0.5 * np.sin(2 * np.pi * pitch * t) + 0.05 * rng.standard_normal(len(t))
            sf.write(root / label / f"{i}.wav", wave, 16000)
    return root


def small(clips: Path, root: Path, *more: str) -> list[str]:
    """A quick run: 0.5 s clips, a small CNN, no bar, CSV log only."""
    return [
        "train",
        "--data",
        str(clips),
        "--trainer.default_root_dir",
        str(root),
        "--data.clip_seconds",
        "0.5",
        "--data.batch_size",
        "4",
        "--data.num_workers",
        "0",
        "--model.channels",
        "[4, 8]",
        "--trainer.enable_progress_bar",
        "false",
        "--trainer.enable_model_summary",
        "false",
        "--trainer.loggers",
        "[csv]",
        *more,
    ]


def state(checkpoint: Path) -> dict:
    return json.loads((checkpoint / "trainer_state.json").read_text())


def test_training_into_an_existing_run_refuses_and_keeps_it(clips, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(small(clips, run, "--trainer.max_epochs", "1")) == 0
    before = sorted(os.listdir(run / "checkpoints")), (run / "run.json").read_text()
    capsys.readouterr()
    assert main(small(clips, run, "--trainer.max_epochs", "2")) == 2
    err = capsys.readouterr().err
    assert f"{run} already holds a run" in err and "--resume" in err, err
    assert len(err.splitlines()) == 1, err
    assert (sorted(os.listdir(run / "checkpoints")), (run / "run.json").read_text()) == before


def test_resume_without_checkpoints_says_it_starts_fresh(clips, tmp_path, capsys):
    run = tmp_path / "fresh"
    assert main(small(clips, run, "--trainer.max_epochs", "1", "--resume")) == 0
    out = capsys.readouterr().out
    assert f"--resume: no checkpoint in {run / 'checkpoints'}; starting a new run" in out, out
    assert state(run / "checkpoints" / "last")["global_step"] == STEPS


def test_run_json_paths_are_relative_so_a_moved_run_works(clips, tmp_path, capsys):
    run = tmp_path / "here"
    assert main(small(clips, run, "--trainer.max_epochs", "1")) == 0
    saved = json.loads((run / "run.json").read_text())
    assert saved["best"].startswith("checkpoints/") and saved["last"] == "checkpoints/last"
    moved = tmp_path / "elsewhere"
    shutil.move(run, moved)
    capsys.readouterr()
    assert main(["evaluate", "--run", str(moved), "--data", str(clips)]) == 0
    assert "accuracy:" in capsys.readouterr().out


def test_log_interval_fits_a_short_run(clips, tmp_path, capsys):
    """8 steps an epoch, 2 epochs: the default interval (Lightning's 50) would log no step at
    all; the command picks one that draws a curve and says so."""
    run = tmp_path / "curve"
    assert main(small(clips, run, "--trainer.max_epochs", "2")) == 0
    out = capsys.readouterr().out
    assert "mlx-audio: logging training metrics every 1 step (18 steps" in out, out
    assert logged_steps(run / "logs" / "version_0") == list(range(2 * STEPS))


def logged_steps(version: Path) -> list[int]:
    """The steps with a training loss in a CSV log (none when nothing was logged)."""
    if not (version / "metrics.csv").exists():
        return []
    with open(version / "metrics.csv") as f:
        return [int(r["step"]) for r in csv.DictReader(f) if r["train_loss"]]


def command(*args: str) -> list[str]:
    return [sys.executable, "-m", "mlx_audio", *args]


def environment() -> dict[str, str]:
    return {**os.environ, "PYTHONUNBUFFERED": "1", "MLX_AUDIO_PROGRESS_BAR": "0"}


def test_ctrl_c_saves_a_checkpoint_and_resume_continues_from_it(clips, tmp_path):
    """Ctrl-C (SIGINT to the process group, as a terminal sends it, workers included) in the
    middle of training: one line saying where the work is, no traceback, exit status 130; the
    run's run.json was written at the first checkpoint already, evaluate works on the
    interrupted run, and --resume goes on after the last finished batch, keeping the logs."""
    run = tmp_path / "interrupted"
    args = small(clips, run, "--trainer.max_epochs", "1000", "--data.num_workers", "2")
    process = subprocess.Popen(
        command(*args),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=environment(),
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 240
        while not (run / "run.json").exists():  # written at the first checkpoint (epoch 0)
            assert process.poll() is None and time.monotonic() < deadline, "no run.json"
            time.sleep(0.05)
        time.sleep(0.5)  # into a later epoch
        os.killpg(process.pid, signal.SIGINT)
        output, _ = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode == 130, output
    assert "Traceback" not in output and "KeyboardInterrupt" not in output, output
    said = [line for line in output.splitlines() if "interrupted" in line]
    assert len(said) == 1 and said[0].startswith("mlx-audio train: interrupted at epoch"), output
    assert output.count("Ctrl-C received") == 1, output
    last = (run / "checkpoints" / "last").resolve()
    assert last.name.startswith("interrupted-") and last.name in said[0], output
    stopped = state(last)
    saved = json.loads((run / "run.json").read_text())
    assert saved["last"] == "checkpoints/last" and saved["status"] == "interrupted"
    assert (saved["epoch"], saved["step"]) == (stopped["epoch"], stopped["global_step"])
    assert main(["evaluate", "--run", str(run), "--data", str(clips)]) == 0

    # resume to the end of the interrupted epoch: exactly the batches it had left
    epochs = stopped["epoch"] + 1
    resumed = subprocess.run(
        command(*small(clips, run, "--trainer.max_epochs", str(epochs), "--resume")),
        capture_output=True,
        text=True,
        env=environment(),
        timeout=240,
    )
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert f"resuming from {last}" in resumed.stdout, resumed.stdout
    assert f", to step {STEPS * epochs}, " in resumed.stdout, resumed.stdout  # the logging line
    assert state((run / "checkpoints" / "last").resolve())["global_step"] == STEPS * epochs
    first, second = (logged_steps(run / "logs" / f"version_{v}") for v in (0, 1))
    assert first and max(first) < stopped["global_step"] <= min(second or [STEPS * epochs])
    assert second or stopped["batch_in_epoch"] == STEPS  # nothing left when it stopped there
    from mlx_audio.cli.plots import joined_rows  # what `plot` draws: both parts

    assert [int(r["step"]) for r in joined_rows(str(run / "logs")) if r["train_loss"]] == [
        *first,
        *second,
    ]
    assert json.loads((run / "run.json").read_text())["status"] == "finished"


def test_the_seed_reproduces_a_run(clips, tmp_path):
    """Two processes, one seed: the same weights and the same logged metrics."""
    import mlx.core as mx

    runs = [tmp_path / "a", tmp_path / "b"]
    processes = [
        subprocess.Popen(
            command(*small(clips, run, "--trainer.max_epochs", "2", "--trainer.seed", "7")),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=environment(),
        )
        for run in runs
    ]
    for process in processes:
        output, _ = process.communicate(timeout=300)
        assert process.returncode == 0, output
    weights = [mx.load(str(run / "checkpoints" / "last" / "model.safetensors")) for run in runs]
    assert weights[0].keys() == weights[1].keys()
    for key in weights[0]:
        np.testing.assert_array_equal(np.array(weights[0][key]), np.array(weights[1][key]), key)
    logged = []
    for run in runs:
        with open(run / "logs" / "version_0" / "metrics.csv") as f:
            logged.append(list(csv.DictReader(f)))
    assert logged[0] == logged[1]
