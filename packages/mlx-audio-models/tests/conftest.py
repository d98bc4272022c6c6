"""The anchor venv (torch + transformers, built by `make anchor`, which `make test` runs)
produces reference outputs in a subprocess; tests that need it skip, visibly, without it, and
fail in CI (the `CI` environment variable set), where `make test` builds it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
ANCHOR = ROOT / ".venv-anchor" / "bin" / "python"


@pytest.fixture(scope="session")
def anchor():
    """Run a Python snippet in the anchor venv; returns its stdout."""
    if (
        not ANCHOR.exists()
        or subprocess.run(
            [str(ANCHOR), "-c", "import transformers, torch"], capture_output=True
        ).returncode
    ):
        message = "anchor venv with torch + transformers is absent: run `make anchor` (make test builds it)"
        if os.environ.get("CI"):  # `make test` builds it: in CI its absence is a failure
            pytest.fail(message)
        pytest.skip(message)

    def run(code: str, *args: str) -> str:
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in ("PYTHONPATH", "VIRTUAL_ENV", "LD_PRELOAD")
        }
        env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
        result = subprocess.run(
            [str(ANCHOR), "-c", code, *args], capture_output=True, text=True, env=env, timeout=900
        )
        assert result.returncode == 0, result.stderr[-4000:]
        return result.stdout

    return run


TINY = {
    "text_config": dict(
        vocab_size=99,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=37,
        max_position_embeddings=64,
    ),
    "audio_config": dict(
        spec_size=64,
        window_size=4,
        num_mel_bins=16,
        depths=[2, 2, 2],
        num_attention_heads=[2, 2, 4],
        patch_embeds_hidden_size=16,
        hidden_size=64,
        patch_stride=2,
        patch_size=2,
    ),
    "projection_dim": 24,
}


def tiny_config(fusion: bool = False, stride=2) -> str:
    config = json.loads(json.dumps(TINY))
    config["audio_config"].update(
        enable_fusion=fusion, fusion_type="aff_2d" if fusion else None, patch_stride=stride
    )
    return json.dumps(config)


def pytest_configure(config):
    sys.path.insert(0, str(Path(__file__).parent))
