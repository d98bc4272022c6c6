"""`mlx-audio train`'s augmentation settings: worker noise/RIR/gain and device SpecAugment /
mixup / cutmix train end to end, repeat exactly, and bad values are one line, exit 2."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file

from mlx_audio.cli import main


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> tuple[Path, Path, Path]:
    import soundfile as sf

    root = tmp_path_factory.mktemp("augment")
    rng = np.random.default_rng(2)
    for label, pitch in {"low": 220.0, "high": 880.0}.items():
        (root / "data" / label).mkdir(parents=True)
        for i in range(6):
            t = np.arange(8000) / 16000
            sf.write(root / "data" / label / f"{i}.wav", 0.5 * np.sin(2 * np.pi * pitch * t), 16000)
    (root / "noise").mkdir()
    sf.write(root / "noise" / "hiss.wav", 0.2 * rng.standard_normal(4000), 16000)
    (root / "rir").mkdir()
    sf.write(root / "rir" / "room.wav", np.exp(-np.arange(400) / 50.0), 16000)
    return root / "data", root / "noise", root / "rir"


def train(run: Path, data: Path, *extra: str) -> int:
    return main(
        [
            "train", "--data", str(data), "--trainer.default_root_dir", str(run),
            "--data.clip_seconds", "0.5", "--data.num_workers", "0", "--data.batch_size", "4",
            "--model.channels", "[4]", "--trainer.enable_progress_bar", "false",
            "--trainer.loggers", "[csv]", "--trainer.max_epochs", "1", *extra,
        ]
    )  # fmt: skip


def weights(run: Path) -> dict[str, np.ndarray]:
    (folder,) = [p for p in (run / "checkpoints").iterdir() if p.name.startswith("last")]
    return load_file(str(folder / "model.safetensors"))


def test_augmented_training_runs_and_repeats_exactly(folders, tmp_path):
    data, noise, rir = folders
    augment = [
        "--data.noise_dir", str(noise), "--data.noise_snr_db", "[0, 10]",
        "--data.rir_dir", str(rir), "--data.gain_db", "6",
        "--model.spec_augment", "true", "--model.mixup_alpha", "0.4",
        "--model.cutmix_alpha", "1.0",
    ]  # fmt: skip
    assert train(tmp_path / "a", data, *augment) == 0
    assert train(tmp_path / "b", data, *augment) == 0
    assert train(tmp_path / "plain", data) == 0
    a, b, plain = (weights(tmp_path / n) for n in ("a", "b", "plain"))
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert any(not np.array_equal(a[k], plain[k]) for k in a)


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--model.mixup_alpha", "-1"], "command line: model.mixup_alpha: must be >= 0, got -1"),
        (["--data.gain_db", "-3"], "command line: data.gain_db: must be >= 0, got -3"),
        (
            ["--data.noise_snr_db", "[20, 5]"],
            "command line: data.noise_snr_db: expected [min, max] dB, min <= max, got [20.0, 5.0]",
        ),
        (
            ["--data.noise_dir", "/no/such/noise"],
            "data.noise_dir: /no/such/noise: no such file or folder",
        ),
        (["--data.rir_dir", "/no/such/rir"], "data.rir_dir: /no/such/rir: no such file or folder"),
        (["--model.spec_augment", "maybe"], "model.spec_augment: expected bool"),
        (
            ["--model.name", "clap", "--model.mixup_alpha", "0.2"],
            "model.mixup_alpha: augmentation applies to model.name cnn only, not clap",
        ),
    ],
)
def test_bad_augmentation_settings_are_one_line_exit_2(folders, tmp_path, capsys, flags, message):
    assert train(tmp_path / "run", folders[0], *flags) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and message in err, err


def test_multilabel_targets_are_mixed_as_multi_hot(tmp_path):
    """A multi-label manifest (`labels`, `;`-separated) with mixup/cutmix and SpecAugment: the
    multi-hot targets are mixed (BCE on soft targets) and the run trains."""
    import csv

    import soundfile as sf

    rows = []
    for i in range(12):
        t = np.arange(8000) / 16000
        names = [("low", 220.0), ("high", 880.0)][: 1 + i % 2]
        wave = sum(0.3 * np.sin(2 * np.pi * f * t) for _, f in names)
        sf.write(tmp_path / f"{i}.wav", wave.astype(np.float32), 16000)
        rows.append({"path": f"{i}.wav", "labels": ";".join(n for n, _ in names)})
    with open(tmp_path / "train.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, ["path", "labels"])
        writer.writeheader()
        writer.writerows(rows)
    flags = ["--model.spec_augment", "true", "--model.mixup_alpha", "0.4"]
    flags += ["--model.cutmix_alpha", "1.0", "--data.val_fraction", "0.25"]
    assert train(tmp_path / "run", tmp_path / "train.csv", *flags) == 0
    from mlx_audio.cli import runs

    assert runs.read(str(tmp_path / "run")).get("task") == "multilabel"
