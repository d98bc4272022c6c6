"""`mlx-audio` end to end on generated audio files: train (YAML + flags), resume, evaluate,
predict, plot, --print-config, --help, and the errors that name the bad setting."""

from __future__ import annotations

import csv
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mlx_audio.cli import config as cli_config
from mlx_audio.cli import main

CLASSES = {"low": 220.0, "mid": 440.0, "high": 880.0}


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> Path:
    """Noisy tones of three pitches and different lengths: train/ and val/ as class folders,
    and a manifest of the validation files."""
    import soundfile as sf

    root = tmp_path_factory.mktemp("clips")
    rng = np.random.default_rng(0)
    rows = []
    for split, count in (("train", 16), ("val", 5)):
        for label, pitch in CLASSES.items():
            (root / split / label).mkdir(parents=True)
            for i in range(count):
                t = np.arange(int(16000 * rng.uniform(0.4, 1.2))) / 16000
                wave = 0.5 * np.sin(2 * np.pi * pitch * t) + 0.05 * rng.standard_normal(len(t))
                sf.write(root / split / label / f"{i}.wav", wave, 16000)
                if split == "val":
                    rows.append({"path": f"val/{label}/{i}.wav", "label": label})
    with open(root / "val.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["path", "label"])
        writer.writeheader()
        writer.writerows(rows)
    return root


@pytest.fixture(scope="module")
def run(clips, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("run")
    config = out / "run.yaml"
    config.write_text(
        "data:\n  batch_size: 8\n  num_workers: 2\ntrainer:\n  max_epochs: 3\n  log_every_n_steps: 2\n"
        "  enable_progress_bar: false\nmodel:\n  channels: [8, 16, 32]\n"
    )
    code = main(
        [
            "train",
            "--data",
            str(clips / "train"),
            "--val-data",
            str(clips / "val.csv"),
            "--config",
            str(config),
            "--trainer.default_root_dir",
            str(out),
            "--optimizer.lr",
            "3e-3",
        ]
    )
    assert code == 0
    return out


def test_train_writes_checkpoints_logs_and_its_settings(run):
    saved = json.loads((run / "run.json").read_text())
    assert saved["classes"] == ["high", "low", "mid"] and (run / saved["best"]).is_dir()
    resolved = cli_config.load(str(run / "config.yaml"), {})
    assert (
        resolved.optimizer.lr == 3e-3
        and resolved.model.channels == [8, 16, 32]
        and resolved.trainer.max_epochs == 3
    )
    assert (run / "checkpoints" / "last").exists() and (
        run / "logs" / "version_0" / "metrics.csv"
    ).exists()
    assert any((run / "tensorboard" / "version_0").iterdir())


def test_resume_finds_nothing_left(run, clips, caplog):
    caplog.set_level(logging.INFO, "mlx_audio.train")  # the Trainer's status line
    code = main(
        [
            "train",
            "--data",
            str(clips / "train"),
            "--val-data",
            str(clips / "val.csv"),
            "--config",
            str(run / "config.yaml"),
            "--resume",
        ]
    )
    assert code == 0 and "nothing to do" in caplog.text


def test_evaluate_reports_accuracy_and_a_confusion_matrix(run, clips, capsys):
    assert main(["evaluate", "--run", str(run), "--data", str(clips / "val")]) == 0
    out = capsys.readouterr().out
    accuracy = float(out.split("accuracy: ")[1].split()[0])
    assert accuracy >= 0.9, out  # three pitches: easy
    matrix = (run / "evaluation" / "confusion.txt").read_text()
    assert (
        "true \\ predicted" in matrix
        and sum(int(v) for line in matrix.splitlines()[2:] for v in line.split()[1:]) == 15
    )
    assert (run / "evaluation" / "confusion.png").stat().st_size > 1000


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_predict_writes_one_row_per_file(run, clips, tmp_path, suffix):
    out = tmp_path / f"predictions{suffix}"
    assert (
        main(["predict", "--run", str(run), "--data", str(clips / "val.csv"), "--out", str(out)])
        == 0
    )
    if suffix == ".csv":
        with open(out) as f:
            rows = list(csv.DictReader(f))
    else:
        rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 15 and {r["label"] for r in rows} <= set(CLASSES)
    right = sum(r["label"] == r["path"].split("/")[-2] for r in rows)
    assert right >= 13 and all(0 < float(r["probability"]) <= 1 for r in rows)


def test_plot_writes_curves_and_learning_rate(run):
    assert main(["plot", str(run)]) == 0
    assert (run / "curves.png").stat().st_size > 5000 and (run / "lr.png").stat().st_size > 5000


def test_print_config_round_trips_and_flags_win(tmp_path, capsys):
    assert (
        main(
            [
                "train",
                "--data",
                "x",
                "--trainer.max_epochs",
                "7",
                "--trainer.gradient_clip_val",
                "null",
                "--print-config",
            ]
        )
        == 0
    )
    text = capsys.readouterr().out
    (tmp_path / "c.yaml").write_text(text)
    settings = cli_config.load(str(tmp_path / "c.yaml"), {"data.batch_size": 4})
    assert (
        settings.trainer.max_epochs == 7
        and settings.trainer.gradient_clip_val is None
        and settings.data.batch_size == 4
    )
    assert settings.data.train == "x"


@pytest.mark.parametrize(
    "args, message",
    [
        (["--trainer.max_epochs", "many"], "trainer.max_epochs: expected int, got 'many'"),
        (
            ["--optimizer.name", "lion"],
            "optimizer.name: 'lion' is not valid; valid values: 'adamw', 'adam', 'sgd'",
        ),
        (
            ["--trainer.loggers", "[csv, neptune]"],
            "'neptune' is not valid; valid values: csv, tensorboard, wandb, mlflow",
        ),
        ([], "no training data: pass --data"),
    ],
)
def test_bad_settings_name_the_key_and_valid_values(args, message, capsys):
    assert main(["train", *args]) == 2
    assert message in capsys.readouterr().err


def test_unknown_setting_in_a_config_file(tmp_path, capsys):
    (tmp_path / "bad.yaml").write_text("trainer:\n  max_epoch: 3\n")
    assert main(["train", "--data", "x", "--config", str(tmp_path / "bad.yaml")]) == 2
    err = capsys.readouterr().err
    assert "unknown setting trainer.max_epoch" in err and "trainer.max_epochs" in err


def test_help_lists_every_setting_and_python_dash_m_works():
    result = subprocess.run(
        [sys.executable, "-m", "mlx_audio", "train", "--help"],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert result.returncode == 0
    for key, _ in cli_config.flags():
        assert f"--{key}" in result.stdout, key
    for command in ("evaluate", "predict", "plot", "zero-shot"):
        shown = subprocess.run(
            [sys.executable, "-m", "mlx_audio", command, "--help"], capture_output=True, text=True
        )
        assert shown.returncode == 0 and "usage: mlx-audio " + command in shown.stdout


@pytest.fixture(scope="module")
def tiny_clap(tmp_path_factory) -> Path:
    """A small random CLAP in transformers' format, with a word-level tokenizer.json and a
    preprocessor_config.json for 16 mel bins over 1 s at 16 kHz."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors

    from mlx_audio.models.clap import CLAP, ClapConfig

    folder = tmp_path_factory.mktemp("clap")
    words = ["<s>", "<pad>", "</s>", "<unk>", "this", "is", "a", "sound", "of", *CLASSES]
    tokenizer = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", special_tokens=[("<s>", 0), ("</s>", 2)]
    )
    tokenizer.save(str(folder / "tokenizer.json"))
    config = ClapConfig.from_dict(
        {
            "text_config": {
                "vocab_size": len(words),
                "hidden_size": 32,
                "num_hidden_layers": 1,
                "num_attention_heads": 4,
                "intermediate_size": 64,
                "max_position_embeddings": 16,
            },
            "audio_config": {
                "spec_size": 64,
                "num_mel_bins": 16,
                "window_size": 4,
                "patch_size": 4,
                "patch_stride": 4,
                "patch_embeds_hidden_size": 16,
                "hidden_size": 32,
                "depths": [1, 1],
                "num_attention_heads": [2, 2],
            },
            "projection_dim": 16,
        }
    )
    CLAP(config).save_pretrained(str(folder))
    (folder / "preprocessor_config.json").write_text(
        json.dumps(
            {
                "feature_size": 16,
                "sampling_rate": 16000,
                "hop_length": 160,
                "max_length_s": 1,
                "fft_window_size": 400,
                "frequency_max": 8000,
                "truncation": "rand_trunc",
                "padding": "repeatpad",
            }
        )
    )
    return folder


def test_zero_shot_with_clap_writes_a_label_per_file(tiny_clap, clips, tmp_path, capsys):
    out = tmp_path / "zero.csv"
    labels = ",".join(CLASSES)
    assert (
        main(
            [
                "zero-shot",
                "--model",
                str(tiny_clap),
                "--data",
                str(clips / "val"),
                "--labels",
                labels,
                "--out",
                str(out),
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert (
        "15 files classified" in printed
        and "accuracy" in printed
        and "on 15 labelled files" in printed
    )
    with open(out) as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 15 and {r["label"] for r in rows} <= set(CLASSES)
    assert all(1 / 3 <= float(r["probability"]) <= 1 for r in rows)  # the best of three


def test_zero_shot_needs_a_tokenizer_and_labels(tiny_clap, clips, tmp_path, capsys):
    import shutil

    bare = tmp_path / "no_tokenizer"
    shutil.copytree(tiny_clap, bare)
    (bare / "tokenizer.json").unlink()
    assert (
        main(["zero-shot", "--model", str(bare), "--data", str(clips / "val"), "--labels", "a,b"])
        == 2
    )
    assert "no tokenizer.json" in capsys.readouterr().err
    assert (
        main(
            [
                "zero-shot",
                "--model",
                str(tiny_clap),
                "--data",
                str(clips / "val"),
                "--labels",
                "a,,b",
            ]
        )
        == 2
    )
    assert "non-empty label names" in capsys.readouterr().err


def test_train_clap_on_captions_then_zero_shot_with_the_result(tiny_clap, clips, tmp_path, capsys):
    """`--model.name clap` fine-tunes contrastively: captions from a manifest's caption column
    (and from class names through data.caption_template for class folders); the best weights
    come out as a CLAP folder that `zero-shot` reads."""
    rows = [
        {"path": f"train/{label}/{i}.wav", "caption": f"a sound of {label}"}
        for label in CLASSES
        for i in range(16)
    ]
    with open(clips / "captions.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["path", "caption"])
        writer.writeheader()
        writer.writerows(rows)
    out = tmp_path / "clap_run"
    common = [
        "--model.name",
        "clap",
        "--model.pretrained",
        str(tiny_clap),
        "--model.max_tokens",
        "8",
        "--data.batch_size",
        "12",
        "--trainer.max_epochs",
        "2",
        "--trainer.enable_progress_bar",
        "false",
        "--trainer.loggers",
        "[csv]",
        "--trainer.log_every_n_steps",
        "1",
        "--optimizer.lr",
        "1e-3",
    ]
    assert (
        main(
            [
                "train",
                "--data",
                str(clips / "captions.csv"),
                "--trainer.default_root_dir",
                str(out),
                *common,
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert (
        "val_retrieval_accuracy=" in printed
        and f"fine-tuned CLAP written to {out / 'clap'}" in printed
    )
    saved = json.loads((out / "run.json").read_text())
    assert saved["model"] == "clap" and saved["best"] and (out / saved["best"]).is_dir()
    assert {
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "preprocessor_config.json",
    } <= set(os.listdir(out / "clap"))
    with open(out / "logs" / "version_0" / "metrics.csv") as f:
        logged = list(csv.DictReader(f))
    assert any(r.get("train_retrieval_accuracy") for r in logged) and any(
        r.get("val_loss") for r in logged
    )
    # the exported folder differs from the one it started from, and zero-shot reads it
    from mlx_audio.models.clap import CLAP

    before = CLAP.from_pretrained(str(tiny_clap)).parameters()["audio_projection"]
    after = CLAP.from_pretrained(str(out / "clap")).parameters()["audio_projection"]
    assert not np.allclose(
        np.array(before["linear1"]["weight"]), np.array(after["linear1"]["weight"])
    )
    zero = tmp_path / "zero.csv"
    assert (
        main(
            [
                "zero-shot",
                "--model",
                str(out / "clap"),
                "--data",
                str(clips / "val"),
                "--labels",
                ",".join(CLASSES),
                "--template",
                "a sound of {}",
                "--out",
                str(zero),
            ]
        )
        == 0
    )
    # class folders: captions from the template; evaluate refuses a CLAP run with the way out
    folders = tmp_path / "clap_folders"
    assert (
        main(
            [
                "train",
                "--data",
                str(clips / "train"),
                "--data.caption_template",
                "a sound of {label}",
                "--trainer.default_root_dir",
                str(folders),
                *common,
            ]
        )
        == 0
    )
    assert main(["evaluate", "--run", str(folders), "--data", str(clips / "val")]) == 2
    assert "fine-tuned CLAP: classify with `mlx-audio zero-shot" in capsys.readouterr().err
