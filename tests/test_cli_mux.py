"""Several training sources mixed by weight (issue 31): ``--data.train a.csv,b.csv
--data.weights 0.7,0.3`` (or YAML lists): each batch's samples drawn by weight with the run's
seed (``WeightedOrder``), resumable exactly, split by rank; classes merged (a class of one
source only is fine, and said); one-line errors."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from mlx_audio.cli import main, tasks
from mlx_audio.cli.config import load
from mlx_audio.data import DynamicBucketingSampler
from mlx_audio.data.interleave import WeightedOrder

QUICK = ["--trainer.max_epochs", "1", "--model.channels", "[8]", "--data.num_workers", "0"]
QUICK += ["--trainer.enable_progress_bar", "false", "--trainer.loggers", "[csv]"]
PITCHES = {"low": 220.0, "high": 880.0, "mid": 440.0}


def manifest(root: Path, classes: list[str], per_class: int, column: str = "label") -> Path:
    rows = []
    for name in classes:
        for i in range(per_class):
            path = root / f"{name}{i}.wav"
            root.mkdir(parents=True, exist_ok=True)
            t = np.arange(8000) / 16000
            sf.write(path, (0.5 * np.sin(2 * np.pi * PITCHES[name] * t)).astype(np.float32), 16000)
            rows.append({"path": path.name, column: name})
    out = root / "m.csv"
    with open(out, "w", newline="") as f:
        writer = csv.DictWriter(f, ["path", column])
        writer.writeheader()
        writer.writerows(rows)
    return out


@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("mux")
    return manifest(root / "a", ["low", "high"], 12), manifest(root / "b", ["low", "mid"], 4)


def test_weighted_order_draws_by_weight_and_knows_each_sources_position():
    order = WeightedOrder([0] * 100 + [1] * 20, [0.5, 0.5])
    rows = order(seed=0, epoch=0)
    assert len(rows) == 120
    taken_b = int((rows >= 100).sum())
    assert 45 < taken_b < 75  # about half from the 20 rows of b: each drawn ~3 times
    np.testing.assert_array_equal(rows, order(0, 0))
    assert not np.array_equal(rows, order(0, 1))
    positions = order.positions(0, 0, 50)
    assert sum(positions) == 50 and positions[1] == int((rows[:50] >= 100).sum())
    with pytest.raises(ValueError, match="weights must be finite, >= 0"):
        WeightedOrder([0, 1], [1.0, -1.0])
    with pytest.raises(ValueError, match="source 1 has weight 1.0 and no rows"):
        WeightedOrder([0, 0], [1.0, 1.0])


def test_training_loader_mixes_by_weight_resumes_exactly_and_splits_by_rank(sources, tmp_path):
    a, b = sources
    flags = {"data.train": f"{a},{b}", "data.weights": "0.5,0.5", "data.batch_size": 4}
    settings = load(None, flags | {"data.num_workers": 0, "data.val_fraction": 0.1})
    settings.trainer.default_root_dir = str(tmp_path / "run")
    np.random.seed(0)  # as the Trainer seeds it (trainer.seed): the loaders' seed comes from it
    train, _, classes = tasks.loaders(settings)
    assert classes == ["high", "low", "mid"]
    sampler = train.batch_sampler
    assert isinstance(sampler, DynamicBucketingSampler)
    batches = [np.array(labels).tolist() for _, labels in train]
    assert all(len(x) == 4 for x in batches[:-1])
    drawn = np.asarray(train.dataset.sources)[np.concatenate(sampler.index_batches())]
    assert 0.3 < (drawn == 1).mean() < 0.7  # b has 7 of 31 rows, drawn half the time
    # mid-epoch resume: the rest of the epoch exactly
    np.random.seed(0)
    partial, _, _ = tasks.loaders(settings)
    it = iter(partial)
    first = [np.array(next(it)[1]).tolist() for _ in range(3)]
    state = partial.state_dict()
    np.random.seed(1)  # the global seed does not matter: the sampler has trainer.seed
    again, _, _ = tasks.loaders(settings)
    again.load_state_dict(state)
    assert first + [np.array(y).tolist() for _, y in again] == batches
    shares = [sampler.for_rank(2, r).index_batches() for r in range(2)]
    assert len(shares[0]) == len(shares[1])


def test_train_on_two_manifests_reports_each_source(sources, tmp_path, capsys):
    a, b = sources
    run = tmp_path / "run"
    args = ["train", "--data", f"{a},{b}", "--data.weights", "0.7,0.3", *QUICK]
    assert main([*args, "--trainer.default_root_dir", str(run)]) == 0
    out = capsys.readouterr().out
    assert "data.train: 2 sources, drawn by weight" in out
    assert f"{b}:" in out and "weight 0.3 (30% of draws), 2 classes; only here: mid" in out
    config = tmp_path / "run.yaml"  # the YAML list form
    config.write_text(f"data:\n  train: [{a}, {b}]\n  weights: [1, 3]\n")
    run2 = tmp_path / "run2"
    assert (
        main(["train", "--config", str(config), *QUICK, "--trainer.default_root_dir", str(run2)])
        == 0
    )
    assert "weight 3 (75% of draws)" in capsys.readouterr().out


def test_mux_mistakes_are_one_line(sources, tmp_path, capsys):
    a, b = sources
    root = ["--trainer.default_root_dir", str(tmp_path / "r"), *QUICK]
    cases = [
        ([f"{a},{b}", "--data.weights", "0.7"], 2, "data.weights: 1 weight for 2 training sources"),
        ([f"{a},{b}", "--data.weights", "1,2,3"], 2, "data.weights: 3 weights for 2 training sources"),
        ([f"{a},{b}", "--data.weights", "0.7,-0.3"], 2, "data.weights: must be finite, >= 0"),
        ([f"{a},{tmp_path}/none.csv"], 2, "none.csv: no such file or folder (one of data.train's sources)"),
        ([str(a), "--data.weights", "0.5,0.5"], 2, "data.weights: 2 weights for 1 training sources"),
        ([f"{a},{b}", "--data.label_column", "cls"], 2, "has no 'cls' column"),
        ([f"{a},{b}", "--data.in_memory", "true"], 2, "data.in_memory batches one array"),
    ]  # fmt: skip
    for flags, status, message in cases:
        assert main(["train", "--data", *flags, *root]) == status, flags
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0] and "Traceback" not in err[0], err
