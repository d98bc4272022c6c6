"""`mlx-audio train --data.batching duration` (issue 31): whole clips batched by Lhotse's
``DynamicBucketingSampler`` within ``data.max_duration``, padded to few shapes (each new shape
retraces the compiled step: counted here), resumed exactly mid-epoch, split evenly by rank, its
padding and batch sizes reported; and the one-line errors for bad settings."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path
from types import SimpleNamespace

import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim
import numpy as np
import pytest
import soundfile as sf

from mlx_audio.cli import batching, main
from mlx_audio.cli.config import load
from mlx_audio.data import DataLoader, Dataset, PadCollate
from mlx_audio.train import OptimizerConfig, Trainer, TrainModule

QUICK = ["--trainer.max_epochs", "1", "--model.channels", "[8]", "--data.num_workers", "0"]
QUICK += ["--trainer.enable_progress_bar", "false", "--trainer.loggers", "[csv]"]


def tone(path: Path, pitch: float, seconds: float, rate: int = 16000) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(rate * seconds)) / rate
    sf.write(path, (0.5 * np.sin(2 * np.pi * pitch * t)).astype(np.float32), rate)


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("clips")
    rng = np.random.default_rng(0)
    for name, pitch in (("low", 220.0), ("high", 880.0)):
        for i in range(10):
            tone(root / name / f"{i}.wav", pitch, float(rng.choice([0.5, 1.0, 2.0])))
    return root


class Waves(Dataset):
    """Ones of the given lengths, labels alternating."""

    def __init__(self, lengths) -> None:
        self.lengths = [int(n) for n in lengths]

    def __len__(self) -> int:
        return len(self.lengths)

    def __getitem__(self, i):
        return np.ones(self.lengths[i], np.float32), i % 2


class Counting(TrainModule):
    """``traces``: how often the compiled step was traced (compute_loss's Python runs then)."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(1, 2)
        self.traces = 0

    def compute_loss(self, batch):
        self.traces += 1
        logits = self.lin(mx.mean(batch[0], axis=-1, keepdims=True))
        return mx.mean(nn.losses.cross_entropy(logits, batch[1])), {}

    def configure_optimizers(self):
        return OptimizerConfig(optim.SGD(learning_rate=0.1))


def traces(loader) -> int:
    module = Counting()
    Trainer(
        max_epochs=1, logger=False, enable_progress_bar=False, enable_checkpointing=False,
        num_sanity_val_steps=0, seed=0,
    ).fit(module, loader)  # fmt: skip
    return module.traces


def test_each_new_batch_shape_traces_the_compiled_step_once():
    batches = [[0, 1], [2, 3], [4, 5], [6], [0, 1], [2, 3]]  # shapes (2,10) (2,10) (2,20) (1,30)
    loader = DataLoader(Waves([10, 10, 10, 10, 20, 20, 30]), batch_sampler=batches)
    loader.collate_fn = PadCollate()
    assert traces(loader) == 3
    loader.collate_fn = PadCollate(pad_to_multiple_of=32)  # every length pads to 32
    assert traces(loader) == 2  # (2, 32) and (1, 32)


def settings_for(*flags: str):
    return load(None, dict(zip(flags[::2], flags[1::2])))


def epoch_shapes(seconds: np.ndarray, multiple: int | None, budget: float):
    """The command's sampler and collate at 100 Hz (quick), and the epoch's batch shapes."""
    clips = SimpleNamespace(seconds=seconds, sources=np.zeros(len(seconds), np.int64))
    flags = ["data.batching", "duration", "data.max_duration", budget, "data.sample_rate", 100]
    settings = settings_for(*flags, "data.pad_to_multiple_of", multiple)
    lengths = batching.pad_lengths(seconds, float(seconds.max()), settings)
    sampler = batching.sampler(clips, settings, True, lengths)
    sampler.seed = 0
    shapes = {(len(b), float(sampler.durations[b].max())) for b in sampler.index_batches()}
    return sampler, batching.collate(lengths, settings), shapes


def test_padding_to_the_buckets_bounds_the_retraces():
    """NOTE [batch shapes]: a long tail of 0.5-30 s clips. Padded to a multiple of 0.01 s,
    nearly every batch is a new shape (a retrace); padded to the bucket boundaries (the
    default), about two shapes a bucket (its full batches, and its last one)."""
    rng = np.random.default_rng(0)
    seconds = np.clip(rng.lognormal(1.0, 1.0, 4000), 0.5, 30.0)
    fine = epoch_shapes(seconds, 1, 120.0)[2]
    sampler, _, coarse = epoch_shapes(seconds, None, 120.0)
    batches = len(sampler.index_batches())
    assert batches > 100 and len(fine) > 0.5 * batches and len(coarse) <= 2 * 10 + 5, (
        batches,
        len(fine),
        len(coarse),
    )
    # the compiled step traces once a shape (a smaller set: the Trainer runs it)
    seconds = seconds[:400]
    sampler, collate, shapes = epoch_shapes(seconds, None, 120.0)
    rows = np.round(seconds * 100).astype(int)
    loader = DataLoader(Waves(rows), batch_sampler=sampler, collate_fn=collate, seed=0)
    assert traces(loader) == len(shapes) <= 25


def test_the_commands_sampler_resumes_exactly_and_splits_evenly_by_rank():
    rng = np.random.default_rng(1)
    seconds = rng.uniform(0.5, 4.0, 200)
    clips = SimpleNamespace(seconds=seconds, sources=np.zeros(200, np.int64))
    settings = settings_for("data.batching", "duration", "data.max_duration", 20.0)
    lengths = batching.pad_lengths(seconds, float(seconds.max()), settings)
    rows = np.round(seconds * 100).astype(int)

    def loader():
        sampler = batching.sampler(clips, settings, True, lengths)
        return DataLoader(Waves(rows), batch_sampler=sampler, collate_fn=PadCollate(), seed=3)

    whole = [np.array(b[0]).shape for b in loader()]
    first = loader()
    it = iter(first)
    taken = [np.array(next(it)[0]).shape for _ in range(5)]
    state = first.state_dict()
    resumed = loader()
    resumed.load_state_dict(state)
    assert taken + [np.array(b[0]).shape for b in resumed] == whole
    sampler = batching.sampler(clips, settings, True, lengths)
    sampler.seed = 3
    shares = [sampler.for_rank(2, r).index_batches() for r in range(2)]
    assert len(shares[0]) == len(shares[1]) > 0


def test_train_by_duration_reports_padding_and_batch_sizes(folder, tmp_path, capsys):
    run = tmp_path / "run"
    args = ["train", "--data", str(folder), "--trainer.default_root_dir", str(run), *QUICK]
    args += ["--data.batching", "duration", "--data.max_duration", "8", "--data.num_buckets", "2"]
    args += ["--model.spec_augment", "true", "--model.mixup_alpha", "0.4"]  # odd batches mix
    assert main([*args, "--trainer.max_epochs", "2"]) == 0
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if x.startswith("mlx-audio: duration batching:"))
    assert re.search(r"padding \d+\.\d%, \d+ batch shapes; batch sizes \(size:count\)", line)
    saved = json.loads((run / "batching.json").read_text())
    assert saved["samples"] == 18 and sum(saved["batch_sizes"].values()) == saved["batches"]
    assert 0.0 <= saved["padding_fraction"] < 0.5
    # and each epoch's padding, through the run's loggers (the first epoch's is the one said)
    with open(run / "logs" / "version_0" / "metrics.csv") as f:
        rows = [r for r in csv.DictReader(f) if r.get("train/padding_fraction")]
    assert [int(r["epoch"]) for r in rows] == [0, 1], rows
    logged = [float(r["train/padding_fraction"]) for r in rows]
    assert logged[0] == pytest.approx(saved["padding_fraction"], abs=1e-6)
    assert all(0.0 <= v < 0.5 for v in logged)
    assert main(["evaluate", "--run", str(run), "--data", str(folder)]) == 0  # whole clips


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--data.batching", "duration"], "data.batching duration needs data.max_duration"),
        (["--data.batching", "length"], "'length' is not valid; valid values: 'fixed', 'duration'"),
        (["--data.batching", "duration", "--data.max_duration", "0"], "data.max_duration: must be > 0"),
        (["--data.batching", "duration", "--data.max_duration", "-5"], "data.max_duration: must be > 0"),
        (["--data.max_duration", "60"], "data.max_duration applies to data.batching duration only (batches of whole clips by seconds); add --data.batching duration"),
        (["--data.batching", "duration", "--data.max_duration", "60", "--data.batch_size", "8"],
         "cannot go with data.batch_size"),
        (["--data.batching", "duration", "--data.max_duration", "60", "--data.in_memory", "true"],
         "cannot go with data.in_memory"),
        (["--data.batching", "duration", "--data.max_duration", "60", "--data.num_buckets", "1"],
         "data.num_buckets: must be >= 2"),
        (["--data.batching", "duration", "--data.max_duration", "60", "--data.pad_to_multiple_of", "0"],
         "data.pad_to_multiple_of: must be >= 1"),
    ],
)  # fmt: skip
def test_bad_batching_settings_are_one_line_exit_2(folder, tmp_path, capsys, flags, message):
    args = ["train", "--data", str(folder), "--trainer.default_root_dir", str(tmp_path / "r")]
    assert main([*args, *QUICK, *flags]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err


def test_a_budget_below_the_longest_clip_names_it_with_a_hint(folder, tmp_path, capsys):
    args = ["train", "--data", str(folder), "--trainer.default_root_dir", str(tmp_path / "r")]
    flags = ["--data.batching", "duration", "--data.max_duration", "1.5"]
    assert main([*args, *QUICK, *flags]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "data.max_duration 1.5 s is shorter than the longest clip" in err[0]
    assert "2.00 s); raise data.max_duration to at least 2.00" in err[0]


def test_ctrl_c_then_resume_gives_the_uninterrupted_runs_weights(folder, tmp_path):
    """Duration batching, stopped by Ctrl-C mid-run and resumed (`--resume`) to the end of the
    epoch it stopped in: the same weights as a run that was never stopped."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from safetensors.numpy import load_file

    def args(run: Path, epochs: int, *more: str) -> list[str]:
        flags = [sys.executable, "-m", "mlx_audio", "train", "--data", str(folder), *QUICK[2:]]
        flags += ["--data.batching", "duration", "--data.max_duration", "8"]
        flags += ["--data.num_buckets", "2", "--scheduler.name", "constant"]
        return [
            *flags,
            "--trainer.max_epochs",
            str(epochs),
            "--trainer.default_root_dir",
            str(run),
            *more,
        ]

    env = {**os.environ, "PYTHONUNBUFFERED": "1", "MLX_AUDIO_PROGRESS_BAR": "0"}
    stopped = tmp_path / "stopped"
    process = subprocess.Popen(
        args(stopped, 1000), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env=env, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 300
        while not (stopped / "run.json").exists():
            assert process.poll() is None and time.monotonic() < deadline, "no run.json"
            time.sleep(0.05)
        time.sleep(1.0)
        os.killpg(process.pid, signal.SIGINT)
        output, _ = process.communicate(timeout=180)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode == 130, output
    saved = json.loads((stopped / "run.json").read_text())
    epochs = saved["epoch"] + 1
    resumed = subprocess.run(
        args(stopped, epochs, "--resume"), capture_output=True, text=True, env=env, timeout=300
    )
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    whole = tmp_path / "whole"
    done = subprocess.run(args(whole, epochs), capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    a, b = (
        load_file(str(r / "checkpoints" / "last" / "model.safetensors")) for r in (stopped, whole)
    )
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def test_under_mlx_launch_each_rank_takes_an_equal_share(folder, tmp_path):
    """Two ranks (`mlx.launch --backend ring`): the epoch's duration batches are split so both
    take the same number of steps (a collective each: unequal counts would hang)."""
    import shutil
    import subprocess
    import sys

    launcher = Path(sys.executable).parent / "mlx.launch"
    if shutil.which("mlx.launch", path=str(launcher.parent)) is None:
        pytest.skip("mlx.launch is not installed next to this Python")
    script = tmp_path / "cli.py"
    script.write_text("import sys\nfrom mlx_audio.cli import main\nsys.exit(main(sys.argv[1:]))\n")
    run = tmp_path / "run"
    args = ["train", "--data", str(folder), *QUICK, "--trainer.default_root_dir", str(run)]
    args += ["--data.batching", "duration", "--data.max_duration", "8", "--data.num_buckets", "2"]
    command = [str(launcher), "-n", "2", "--backend", "ring", "--python", sys.executable]
    result = subprocess.run(
        [*command, str(script), *args], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout + result.stderr
    batches = json.loads((run / "batching.json").read_text())["batches"]
    steps = json.loads((run / "run.json").read_text())["step"]
    assert steps == -(-batches // 2), (batches, steps)


def test_yaml_and_flags_set_the_same_batching(tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text(
        "data:\n  batching: duration\n  max_duration: 60\n  num_buckets: 4\n"
        "  quadratic_duration: 30\n  max_batch_size: 16\n  pad_to_multiple_of: 800\n"
    )
    from_yaml = load(str(config), {}).data
    flags = {"data.batching": "duration", "data.max_duration": 60, "data.num_buckets": 4}
    flags |= {"data.quadratic_duration": 30, "data.max_batch_size": 16}
    from_flags = load(None, flags | {"data.pad_to_multiple_of": 800}).data
    assert from_yaml == from_flags and from_yaml.max_duration == 60.0
    bad = tmp_path / "bad.yaml"
    bad.write_text("data:\n  batching: buckets\n")
    with pytest.raises(ValueError, match=r"data.batching: 'buckets' is not valid; valid values"):
        load(str(bad), {})


def test_a_padded_clip_is_normalized_over_its_own_frames():
    """The classifier's log-mels of a padded batch: mean and spread of each clip's own frames,
    its padding 0; as the clip alone would be (but for the last frames, where the STFT's
    centring reads the padding)."""
    from mlx_audio.cli.classifier import AudioClassifier

    settings = load(None, {"data.batching": "duration", "data.max_duration": 10.0})
    model = AudioClassifier(settings, 2)
    wave = mx.random.normal((8000,), key=mx.random.key(0))
    alone = np.array(model.normalized(wave[None]))[0]
    padded = mx.concatenate([wave, mx.zeros((16000,))])[None]
    together = np.array(model.normalized(padded, mx.array([8000])))[0]
    frames = 8000 // 160 + 1
    np.testing.assert_array_equal(together[:, frames:], 0.0)
    np.testing.assert_allclose(together[:, : frames - 3], alone[:, : frames - 3], atol=0.15)
    unmasked = np.array(model.normalized(padded))[0]
    assert np.abs(unmasked[:, : frames - 3] - alone[:, : frames - 3]).mean() > 0.3
