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


needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed (make installs it)")


@pytest.fixture(scope="module")
def small_digits(tmp_path_factory):
    """The quick form's clips, made by whichever example runs first and shared by both."""
    return tmp_path_factory.mktemp("spoken_digits")


@needs_espeak
def test_demo_quick_run_and_resume(tmp_path, small_digits):
    env = {**os.environ, "MLX_AUDIO_DEMO_SMALL": "1", "MLX_AUDIO_DEMO_DATA": str(small_digits),
           "MLX_AUDIO_DEMO_RUN": str(tmp_path / "run")}

    def run():
        result = subprocess.run([sys.executable, str(ROOT / "examples" / "demo.py")], capture_output=True, text=True,
                                env=env, cwd=tmp_path, timeout=600)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        return result.stdout

    first = run()
    assert "accuracy on" in first and "held-out voices" in first and "training curves" in first
    assert (small_digits / "train.csv").exists() and (tmp_path / "run" / "checkpoints" / "last").exists()
    assert any((tmp_path / "run" / "tensorboard" / "version_0").iterdir())
    second = run()
    assert "nothing to do" in second and "making spoken digits" not in second


@needs_espeak
def test_clap_zero_shot_example_quick_run(tmp_path, small_digits):
    """examples/clap_zero_shot.py in its quick form: contrastive training on captioned clips
    through the Trainer, then zero-shot classification of held-out voices. (The full run's
    accuracy is in its docstring: 83.5 %.)"""
    env = {**os.environ, "MLX_AUDIO_DEMO_SMALL": "1", "MLX_AUDIO_DEMO_DATA": str(small_digits),
           "MLX_AUDIO_CLAP_RUN": str(tmp_path / "clap")}
    result = subprocess.run([sys.executable, str(ROOT / "examples" / "clap_zero_shot.py")], capture_output=True,
                            text=True, env=env, cwd=tmp_path, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    line = next(x for x in result.stdout.splitlines() if x.startswith("zero-shot accuracy on"))
    accuracy = float(line.split(": ")[-1].split("%")[0])
    assert 0 <= accuracy <= 100 and "held-out voices" in line
    assert (tmp_path / "clap" / "checkpoints" / "last" / "model.safetensors").exists()
