"""Multi-label training end to end: a manifest with a `labels` column (class names separated by
`;`, AudioSet-style) trains a sigmoid classifier with binary cross-entropy, monitored by the
epoch's mAP (`val_mAP`, mode max) -- through `mlx-audio train` (model.task auto detects it) and
the Python API; wrong combinations are one clear error."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from mlx_audio.cli import main

PITCHES = {"low": 220.0, "mid": 440.0, "high": 880.0}


@pytest.fixture(scope="module")
def manifest(tmp_path_factory) -> Path:
    """36 clips, each a mix of 1-3 of three tones; `labels` names the tones present."""
    import soundfile as sf

    root = tmp_path_factory.mktemp("multi")
    rng = np.random.default_rng(0)
    rows = []
    for i in range(36):
        present = [name for name in PITCHES if rng.random() < 0.5] or ["mid"]
        t = np.arange(8000) / 16000
        wave = sum(0.3 * np.sin(2 * np.pi * PITCHES[n] * t) for n in present)
        wave = wave + 0.05 * rng.standard_normal(len(t))
        sf.write(root / f"{i}.wav", wave.astype(np.float32), 16000)
        rows.append({"path": f"{i}.wav", "labels": ";".join(present)})
    with open(root / "train.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, ["path", "labels"])
        writer.writeheader()
        writer.writerows(rows)
    return root / "train.csv"


def args(data: Path, root: Path, *more: str) -> list[str]:
    return [
        "train",
        "--data",
        str(data),
        "--trainer.default_root_dir",
        str(root),
        "--data.clip_seconds",
        "0.5",
        "--data.batch_size",
        "8",
        "--data.num_workers",
        "0",
        "--data.val_fraction",
        "0.25",
        "--model.channels",
        "[4, 8]",
        "--trainer.max_epochs",
        "2",
        "--trainer.enable_progress_bar",
        "false",
        "--trainer.enable_model_summary",
        "false",
        "--trainer.loggers",
        "[csv]",
        *more,
    ]


def test_train_detects_multilabel_and_monitors_map(manifest, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(args(manifest, run)) == 0
    out = capsys.readouterr().out
    assert "held out, at random" in out, out
    assert "too few to choose a checkpoint reliably (one clip moves val_mAP by up to" in out, out
    saved = json.loads((run / "run.json").read_text())
    assert saved["task"] == "multilabel" and saved["classes"] == ["high", "low", "mid"]
    last = json.loads((run / "checkpoints" / "last" / "trainer_state.json").read_text())
    assert 0.0 <= last["callback_metrics"]["val_mAP"] <= 1.0
    checkpoint = next(v for k, v in last["callbacks"].items() if "Checkpoint" in k)
    assert checkpoint["monitor"] == "val_mAP", checkpoint
    scores = [
        row["val_mAP"]
        for row in csv.DictReader(open(run / "logs" / "version_0" / "metrics.csv"))
        if row.get("val_mAP")
    ]
    assert checkpoint["best_model_score"] == pytest.approx(max(map(float, scores)), abs=1e-6)  # max
    capsys.readouterr()
    # evaluate: each class's average precision and the mAP, as validation computes it
    assert main(["evaluate", "--run", str(run), "--data", str(manifest)]) == 0
    out = capsys.readouterr().out
    assert "mAP: " in out and (run / "evaluation" / "average_precision.txt").exists(), out
    # predict: the classes at or above 0.5 and every class's probability
    assert (
        main(
            [
                "predict",
                "--run",
                str(run),
                "--data",
                str(manifest),
                "--out",
                str(tmp_path / "p.csv"),
            ]
        )
        == 0
    )
    with open(tmp_path / "p.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 36 and set(rows[0]) == {"path", "labels", "high", "low", "mid"}
    assert all(0.0 <= float(row["low"]) <= 1.0 for row in rows)


def test_task_and_data_must_agree(manifest, tmp_path, capsys):
    assert main(args(manifest, tmp_path / "a", "--model.task", "multiclass")) == 1
    err = capsys.readouterr().err
    assert "has a 'labels' column" in err and "model.task multilabel" in err, err


def test_python_api_reads_the_labels_column(manifest):
    from mlx_audio.data import AudioManifest

    data = AudioManifest(manifest, sample_rate=16000)
    assert data.multilabel and data.classes == ["high", "low", "mid"]
    wave, target = data[0]
    assert target.dtype == np.float32 and target.shape == (3,) and target.sum() >= 1


def test_ema_decay_keeps_an_average_in_the_checkpoints(manifest, tmp_path, capsys):
    run = tmp_path / "ema"
    assert main(args(manifest, run, "--trainer.ema_decay", "0.9")) == 0
    last = run / "checkpoints" / "last"
    assert (last / "current_model.safetensors").exists()  # the raw weights beside the average
    state = json.loads((last / "trainer_state.json").read_text())
    assert state["averaging_state"]["n_averaged"] == 8  # 2 epochs x 4 batches (27 clips, 8 a batch)
    assert main(args(manifest, tmp_path / "bad", "--trainer.ema_decay", "1.5")) == 2
    assert "trainer.ema_decay: must be in (0, 1), e.g. 0.999, got 1.5" in capsys.readouterr().err
