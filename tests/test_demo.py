"""`make demo`'s script end to end, in its quick form (15 voices, one epoch): espeak-ng clips
made and cached, trained through AudioManifest + workers + buckets + the Trainer, accuracy,
logs, checkpoints and curves reported; a second run resumes and finds nothing to do. (The full
run's figures -- accuracy on held-out voices, time -- are in the closing notes and README.)"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


needs_espeak = pytest.mark.skipif(
    shutil.which("espeak-ng") is None, reason="espeak-ng is not installed (make installs it)"
)


@pytest.fixture(scope="module")
def small_digits(tmp_path_factory):
    """The quick form's clips (15 voices, one clip per digit), shared by the tests below."""
    root = tmp_path_factory.mktemp("spoken_digits")
    if shutil.which("espeak-ng") is not None:
        code = f"import spoken_digits; spoken_digits.generate({str(root)!r}, clips_per_digit=1, voice_limit=15)"
        subprocess.run(
            [sys.executable, "-c", code],
            cwd=ROOT / "examples",
            check=True,
            capture_output=True,
            timeout=600,
        )
    return root


@needs_espeak
def test_demo_quick_run_and_resume(tmp_path, small_digits):
    env = {
        **os.environ,
        "MLX_AUDIO_DEMO_SMALL": "1",
        "MLX_AUDIO_DEMO_DATA": str(small_digits),
        "MLX_AUDIO_DEMO_RUN": str(tmp_path / "run"),
    }

    def run():
        result = subprocess.run(
            [sys.executable, str(ROOT / "examples" / "demo.py")],
            capture_output=True,
            text=True,
            env=env,
            cwd=tmp_path,
            timeout=600,
        )
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        return result.stdout

    first = run()
    assert "accuracy on" in first and "held-out voices" in first and "training curves" in first
    assert (small_digits / "train.csv").exists() and (
        tmp_path / "run" / "logs" / "version_0" / "checkpoints" / "last"  # under the first logger
    ).exists()
    assert any((tmp_path / "run" / "tensorboard" / "version_0").iterdir())
    second = run()
    assert "nothing to do" in second and "making spoken digits" not in second


@needs_espeak
def test_clap_zero_shot_example_quick_run(tmp_path, small_digits):
    """examples/clap_zero_shot.py in its quick form: contrastive training on captioned clips
    through the Trainer, then zero-shot classification of held-out voices. (The full run's
    accuracy is in its docstring: 83.5 %.)"""
    env = {
        **os.environ,
        "MLX_AUDIO_DEMO_SMALL": "1",
        "MLX_AUDIO_DEMO_DATA": str(small_digits),
        "MLX_AUDIO_CLAP_RUN": str(tmp_path / "clap"),
    }
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "clap_zero_shot.py")],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    line = next(x for x in result.stdout.splitlines() if x.startswith("zero-shot accuracy on"))
    accuracy = float(line.split(": ")[-1].split("%")[0])
    assert 0 <= accuracy <= 100 and "held-out voices" in line
    last = tmp_path / "clap" / "logs" / "version_0" / "checkpoints" / "last"  # the default logger's
    assert (last / "model.safetensors").exists()


@needs_espeak
def test_make_demo_settings_through_the_command_line(tmp_path, small_digits):
    """`make demo` runs `mlx-audio train --config examples/demo.yaml`, then evaluate and plot:
    the same commands on the quick form's clips, for one epoch."""
    run = tmp_path / "run"

    def cli(*args):
        result = subprocess.run(
            [sys.executable, "-m", "mlx_audio", *args],
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=600,
        )
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        return result.stdout

    cli(
        "train",
        "--config",
        "examples/demo.yaml",
        "--resume",
        "--data",
        str(small_digits / "train.csv"),
        "--val-data",
        str(small_digits / "val.csv"),
        "--trainer.max_epochs",
        "1",
        "--trainer.default_root_dir",
        str(run),
    )
    out = cli("evaluate", "--run", str(run), "--data", str(small_digits / "val.csv"))
    assert "accuracy: " in out and (run / "evaluation" / "confusion.txt").exists()
    assert "curves.png" in cli("plot", str(run))


@needs_espeak
def test_augmented_digits_recipe_quick_run(tmp_path, small_digits):
    """examples/augmented_digits.py --quick: the harder split (4 training voices, held-out
    voices also scored with extra noise), trained plain and with duration batching + worker
    noise + SpecAugment + mixup + EMA; the table holds both runs and their difference."""
    root = tmp_path / "digits"
    shutil.copytree(small_digits, root)  # the recipe writes its noise folders next to the clips
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "augmented_digits.py"), "--quick"]
        + ["--root", "digits"],  # relative, as the default data/augmented_digits
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "making spoken digits" not in result.stdout  # the cached clips were used
    rows = {}
    for line in result.stdout.splitlines():
        for name in ("plain", "augmented", "difference (points)"):
            if line.startswith(name + " "):
                rows[name] = [float(x.rstrip("%")) for x in line[len(name) :].split()]
    assert set(rows) == {"plain", "augmented", "difference (points)"}, result.stdout
    for accuracy in rows["plain"] + rows["augmented"]:
        assert 0.0 <= accuracy <= 100.0
    for k in range(2):
        assert rows["difference (points)"][k] == pytest.approx(
            rows["augmented"][k] - rows["plain"][k], abs=0.11
        )
    assert "30 clips of 3 voices never heard in training (4 training voices" in result.stdout
    assert len(os.listdir(root / "augmented" / "noise-train")) == 8
    assert len(os.listdir(root / "augmented" / "val-noisy")) == 30
