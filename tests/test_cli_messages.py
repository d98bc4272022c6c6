"""What `mlx-audio` says about a bad config file, a bad value, a bad output path or a missing
model folder (one line, naming the file, line or setting), and its --help's types."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mlx_audio.cli import main


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, Path]:
    """A one-epoch run on two classes of tones: (run folder, data folder)."""
    import soundfile as sf

    data = tmp_path_factory.mktemp("tones")
    rng = np.random.default_rng(1)
    for label, pitch in {"low": 220.0, "high": 880.0}.items():
        (data / label).mkdir()
        for i in range(6):
            t = np.arange(8000) / 16000
            wave = 0.5 * np.sin(2 * np.pi * pitch * t) + 0.05 * rng.standard_normal(len(t))
            sf.write(data / label / f"{i}.wav", wave, 16000)
    run = tmp_path_factory.mktemp("run") / "run"
    args = ["--data", str(data), "--trainer.default_root_dir", str(run)]
    small = ["--data.clip_seconds", "0.5", "--data.num_workers", "0", "--model.channels", "[4]"]
    quiet = ["--trainer.enable_progress_bar", "false", "--trainer.loggers", "[csv]"]
    assert main(["train", *args, *small, *quiet, "--trainer.max_epochs", "1"]) == 0
    return run, data


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1, err
    return err


def test_malformed_yaml_names_the_file_and_line(tmp_path, capsys):
    config = tmp_path / "run.yaml"
    config.write_text("data:\n  batch_size: 8\ntrainer:\n  max_epochs: 3\n   seed: 1\n")  # indent
    assert main(["train", "--data", "x", "--config", str(config)]) == 2
    err = one_error_line(capsys)
    assert f"{config}, line 5, column 8: not valid YAML: mapping values are not allowed" in err


def test_a_flag_that_is_not_yaml_is_one_line(capsys):
    assert main(["train", "--data", "x", "--trainer.max_epochs", "[3,"]) == 2
    err = one_error_line(capsys)
    assert "command line: trainer.max_epochs: not a YAML value: '[3,' (expected" in err, err


@pytest.mark.parametrize(
    "key, value",
    [("data.clip_seconds", "0"), ("data.clip_seconds", "-1.5"), ("data.sample_rate", "0")],
)
def test_values_that_must_be_positive_name_the_setting(key, value, capsys):
    assert main(["train", "--data", "x", f"--{key}", value]) == 2
    err = one_error_line(capsys)
    assert f"command line: {key}: must be > 0, got {value}" in err.replace(".0\n", "\n"), err


def test_predict_into_a_missing_folder_fails_before_predicting(
    trained, tmp_path, capsys, monkeypatch
):
    run, data = trained
    from mlx_audio.cli import tasks

    calls = []
    monkeypatch.setattr(tasks, "predict", lambda *a: calls.append(a) or 0)
    out = tmp_path / "no" / "such" / "folder" / "p.csv"
    assert main(["predict", "--run", str(run), "--data", str(data), "--out", str(out)]) == 2
    err = one_error_line(capsys)
    assert f"--out {out}: the folder {out.parent} does not exist" in err, err
    assert not calls


def test_predict_out_json_writes_json(trained, tmp_path, capsys):
    run, data = trained
    out = tmp_path / "p.json"
    assert main(["predict", "--run", str(run), "--data", str(data), "--out", str(out)]) == 0
    rows = json.loads(out.read_text())
    assert len(rows) == 12 and set(rows[0]) == {"path", "label", "probability"}


def test_predict_refuses_an_unknown_output_kind(trained, tmp_path, capsys):
    run, data = trained
    out = tmp_path / "p.xlsx"
    assert main(["predict", "--run", str(run), "--data", str(data), "--out", str(out)]) == 2
    assert "--out" in one_error_line(capsys) and not out.exists()


@pytest.mark.parametrize("name", ["no_clap", "no_clap/", "./models/no_clap"])
def test_zero_shot_with_a_missing_model_folder_says_so(
    trained, tmp_path, capsys, monkeypatch, name
):
    _, data = trained
    monkeypatch.chdir(tmp_path)
    args = ["zero-shot", "--model", name, "--data", str(data), "--labels", "low,high"]
    assert main(args) == 2
    err = one_error_line(capsys)
    assert f"--model {name}: no such folder" in err, err


def test_help_shows_yaml_types():
    shown = subprocess.run(
        [sys.executable, "-m", "mlx_audio", "train", "--help"],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
    ).stdout
    assert "<class" not in shown and "NoneType" not in shown, shown
    flat = " ".join(shown.split())
    for expected in (
        "--data.batch_size VALUE int (default 32)",
        "--data.val VALUE str | null (default null)",
        "--model.channels VALUE list of int (default [16, 32, 64, 128])",
        "--model.top_db VALUE float | null (default 80.0)",
        "--model.freeze_text VALUE bool (default true)",
    ):
        assert expected in flat, expected


def test_model_clap_is_model_name_clap(capsys):
    assert main(["train", "--data", "x", "--model", "clap", "--print-config"]) == 0
    assert "  name: clap\n" in capsys.readouterr().out
