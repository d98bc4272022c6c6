"""A new user's reports on `mlx-audio`, each as the real command: resuming with other data or
settings, validation files that are training files, unreadable noise files, conflicting and
misspelled options, the messages of empty or missing inputs, exit statuses (2: the command line
or config; 1: the data's files), the logging line after a resume, model names, EMA decay."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mlx_audio.cli import main

QUICK = ["--data.clip_seconds", "0.5", "--data.num_workers", "0", "--model.channels", "[4]"]
QUICK += ["--trainer.enable_progress_bar", "false", "--trainer.loggers", "[csv]"]


def tones(root: Path, names: list[str], count: int = 6, seconds: float = 0.5) -> Path:
    import soundfile as sf

    rng = np.random.default_rng(0)
    for k, name in enumerate(names):
        (root / name).mkdir(parents=True)
        for i in range(count):
            t = np.arange(int(16000 * seconds)) / 16000
            wave = 0.5 * np.sin(2 * np.pi * 220 * (k + 1) * t) + 0.05 * rng.standard_normal(len(t))
            sf.write(root / name / f"{i}.wav", wave, 16000)
    return root


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> tuple[Path, Path, Path]:
    """(classes high/low/mid, classes aaa/bbb/ccc, a manifest of 9 of the first's files)."""
    base = tmp_path_factory.mktemp("reports")
    clips = tones(base / "clips", ["high", "low", "mid"])
    other = tones(base / "other", ["aaa", "bbb", "ccc"])
    test = base / "test.csv"
    files = sorted(clips.glob("*/*.wav"))[:9]
    test.write_text("path,label\n" + "".join(f"{p},{p.parent.name}\n" for p in files))
    return clips, other, test


def train(root: Path, *flags: str) -> int:
    return main(["train", "--trainer.default_root_dir", str(root), *QUICK, *flags])


def one_error(capsys) -> str:
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in captured.err, captured.err
    return lines[0]


def test_resume_with_other_classes_or_features_is_refused_other_changes_said(
    data, tmp_path, capsys
):
    clips, other, test = data
    run = tmp_path / "run"
    assert train(run, "--data", str(clips), "--trainer.max_epochs", "1") == 0
    capsys.readouterr()
    assert train(run, "--data", str(other), "--trainer.max_epochs", "2", "--resume") == 2
    err = one_error(capsys)
    assert "trained on classes high, low, mid" in err and "has aaa, bbb, ccc" in err, err
    assert "--trainer.default_root_dir" in err and "without --resume" in err
    assert json.loads((run / "run.json").read_text())["classes"] == ["high", "low", "mid"]
    # a setting that changes what the weights mean: refused before the data is read
    assert train(run, "--data", str(clips), "--model.n_mels", "32", "--resume") == 2
    captured = capsys.readouterr()
    assert "model.n_mels 40 -> 32" in captured.err and "mlx-audio: data " not in captured.out
    # another validation set, batch size and epochs: allowed, said in one line
    more = ["--val-data", str(test), "--data.batch_size", "4", "--trainer.max_epochs", "3"]
    assert train(run, "--data", str(clips), *more, "--resume") == 0
    out = capsys.readouterr().out
    changed = [line for line in out.splitlines() if "resuming with changed settings" in line]
    assert len(changed) == 1, out
    for part in ("data.val None -> ", "data.batch_size 32 -> 4", "trainer.max_epochs 1 -> 3"):
        assert part in changed[0]
    assert "measured on the earlier validation set" in changed[0]
    # item 9: the steps still to run, to the step the run ends at (1 done, 2 epochs of 5 left)
    assert "(10 steps to run, to step 11, 5 an epoch;" in out, out
    state = json.loads((run / "run.json").read_text())
    assert state["step"] == 11 and state["classes"] == ["high", "low", "mid"]


def test_overlapping_training_and_validation_files_are_a_warning(data, tmp_path, capsys):
    clips, _, test = data
    assert train(tmp_path / "r", "--data", str(clips), "--val-data", str(test)) == 0
    out = capsys.readouterr().out
    assert "warning: 9 validation files of 9 are also training files (" in out, out
    assert str(clips / "high" / "0.wav") in out
    # the same file in two data.train sources
    a = tmp_path / "a.csv"
    a.write_text(test.read_text())
    assert train(tmp_path / "r2", "--data", f"{a},{test}", "--trainer.max_epochs", "1") == 0
    assert "in more than one data.train source" in capsys.readouterr().out


def test_unreadable_noise_files_are_checked_up_front(data, tmp_path, capsys):
    clips, _, _ = data
    noise = tmp_path / "noise"
    noise.mkdir()
    (noise / "x.wav").write_text("not audio")
    assert train(tmp_path / "r", "--data", str(clips), "--data.noise_dir", str(noise)) == 1
    captured = capsys.readouterr()
    assert "data.noise_dir: 1 of 1 file cannot be read" in captured.err
    assert f"{noise}/x.wav" in captured.err and "data.on_error: skip" in captured.err
    assert "mlx-audio: data " not in captured.out  # before the data scan, before training
    (noise / "ok.wav").write_bytes((clips / "low" / "0.wav").read_bytes())
    skip = ["--data.noise_dir", str(noise), "--data.on_error", "skip", "--trainer.max_epochs", "1"]
    assert train(tmp_path / "r2", "--data", str(clips), *skip) == 0
    out = capsys.readouterr().out
    assert "warning: data.noise_dir: leaving out 1 unreadable file (data.on_error: skip)" in out
    empty = tmp_path / "empty"
    empty.mkdir()
    for flags, message in (
        (["--data.noise_dir", str(tmp_path / "nowhere")], "data.noise_dir: "),
        (["--data.noise_dir", str(empty)], "data.noise_dir: no audio files"),
        (["--data.rir_dir", str(tmp_path / "nowhere")], "data.rir_dir: "),
    ):
        assert train(tmp_path / "r3", "--data", str(clips), *flags) == 2
        assert message in one_error(capsys)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["train", "--data", "x.csv", "--data.train", "y.csv"], "--data and --data.train both given"),
        (["train", "--data", "x", "--val-data", "v", "--data.val", "w"], "--val-data and --data.val"),
        (["train", "--trainer.max_epoch", "3"], "mlx-audio train: error: unknown option --trainer.max_epoch (did you mean --trainer.max_epochs?)"),
        (["train", "--data.batchsize", "4"], "mlx-audio train: error: unknown option --data.batchsize (did you mean --data.batch_size?)"),
        (["train", "--trainer.in_memory", "true"], "unknown option --trainer.in_memory (did you mean --data.in_memory?)"),
        (["train", "--data.max_epochs", "3"], "unknown option --data.max_epochs (did you mean --trainer.max_epochs?)"),
        (["train", "--data", "x", "--data.in_memory", ""], "data.in_memory: expected bool, got no value"),
        (["evaluate", "--run", "r", "--data", "d", "--data.batch_size", "4"], "mlx-audio evaluate: error: unknown option --data.batch_size"),
        (["train", "--config", "missing.yaml"], "config file not found: missing.yaml"),
        (["plot", "nope"], "mlx-audio plot: error: nope: no such folder"),
        (["train", "--data", "nowhere"], "--data nowhere: no such file or folder"),
        (["train", "--data", "x", "--trainer.ema_decay", "1"], "trainer.ema_decay: must be in (0, 1)"),
        (["train", "--data", "x", "--trainer.ema_decay", "1.5"], "trainer.ema_decay: must be in (0, 1)"),
    ],
)  # fmt: skip
def test_command_line_mistakes_are_one_line_exit_2(tmp_path, capsys, monkeypatch, argv, message):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    assert message in one_error(capsys)


def test_settings_are_checked_before_the_data(data, tmp_path, capsys):
    clips, _, _ = data
    assert train(tmp_path / "r", "--data", str(clips), "--trainer.ema_decay", "1.5") == 2
    assert "mlx-audio: data " not in capsys.readouterr().out


def test_a_missing_validation_path_is_said_before_the_data_is_read(data, tmp_path, capsys):
    clips, _, _ = data
    assert train(tmp_path / "r", "--data", str(clips), "--val-data", "nowhere.csv") == 2
    captured = capsys.readouterr()
    assert "--val-data nowhere.csv: no such file or folder" in captured.err
    assert "mlx-audio: data " not in captured.out


def test_empty_and_header_only_manifests_say_so_exit_1(tmp_path, capsys):
    empty, header = tmp_path / "empty.csv", tmp_path / "header.csv"
    empty.write_text("")
    header.write_text("path,label\n")
    assert main(["train", "--data", str(empty)]) == 1
    assert "the file is empty" in one_error(capsys)
    assert main(["train", "--data", str(header)]) == 1
    assert "no rows, only the header line (path,label)" in one_error(capsys)


def test_one_weight_for_two_sources_is_the_count_mismatch(data, tmp_path, capsys):
    _, _, test = data
    flags = ["--data", f"{test},{test}", "--data.weights", "0.7"]
    assert train(tmp_path / "r", *flags) == 2
    assert "data.weights: 1 weight for 2 training sources" in one_error(capsys)


def test_a_library_warning_is_one_status_line(data, tmp_path, capfd):
    """Elsewhere (fixed batching) a library warning is the command's line, not Python's."""
    code = (
        "import sys, warnings; from mlx_audio.cli import main, status_line; "
        "warnings.showwarning = status_line; "
        "warnings.warn('the compiled train step has now been traced for 9 different batch "
        "shapes; MLX keeps one graph per shape')"
    )
    process = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert process.stderr.strip().splitlines() == [
        "mlx-audio: warning: the compiled train step has now been traced for 9 different batch "
        "shapes: each shape compiles once (seconds, memory); fewer shapes: --data.batching "
        "duration with a smaller --data.num_buckets or a --data.pad_to_multiple_of, or "
        "--data.batching fixed, or --trainer.compile false"
    ], process.stderr


def test_every_model_name_is_accepted_by_the_shorthand(capsys):
    assert main(["train", "--model", "clap-audio-classifier", "--print-config"]) == 0
    assert "name: clap-audio-classifier" in capsys.readouterr().out


def test_duration_batching_prints_no_python_warning(tmp_path):
    """Many batch shapes under duration batching: said by the command's own line, never as a
    Python warning with a file and source line (a real process, stderr as the user sees it)."""
    import soundfile as sf

    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        (tmp_path / "var" / name).mkdir(parents=True)
        for i in range(12):
            size = int(16000 * rng.uniform(0.2, 1.2))
            sf.write(tmp_path / "var" / name / f"{i}.wav", 0.1 * rng.standard_normal(size), 16000)
    argv = ["train", "--data", str(tmp_path / "var"), "--trainer.default_root_dir", "r"]
    argv += ["--data.batching", "duration", "--data.max_duration", "2", "--trainer.max_epochs", "1"]
    argv += QUICK[2:]
    code = "import sys; from mlx_audio.cli import main; sys.exit(main(sys.argv[1:]))"
    process = subprocess.run(
        [sys.executable, "-c", code, *argv],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONWARNINGS": "default"},
        timeout=600,
    )
    output = process.stdout + process.stderr
    assert process.returncode == 0, output
    import re

    shapes = int(re.search(r"(\d+) batch shapes;", output).group(1))  # the command's own line
    assert shapes > 8, output  # more than the compiled step's warning allows without a word
    assert "UserWarning" not in output and "warnings.warn" not in output, output
    assert "_step.py" not in output and "_fit_loop.py" not in output, output
    assert "different batch shapes" not in output, output  # bounded by design, said above


def test_the_logging_line_after_a_resume_counts_the_steps_left(data, tmp_path, capsys):
    """Resumed from a run cut short by max_steps (its epoch counts as finished, as Lightning's):
    the step the line says the run ends at is the step it ends at."""
    import re

    clips, _, _ = data
    run = tmp_path / "run"
    flags = ["--data", str(clips), "--data.batch_size", "4"]
    assert train(run, *flags, "--trainer.max_steps", "2", "--trainer.max_epochs", "5") == 0
    assert json.loads((run / "run.json").read_text())["step"] == 2
    capsys.readouterr()
    assert train(run, *flags, "--trainer.max_epochs", "2", "--resume") == 0
    out = capsys.readouterr().out
    said = re.search(r"\((\d+) steps? to run, to step (\d+), (\d+) an epoch;", out)
    assert said, out
    left, end, per_epoch = map(int, said.groups())
    assert end == 2 + per_epoch and left == per_epoch  # epoch 1 only
    assert json.loads((run / "run.json").read_text())["step"] == end
