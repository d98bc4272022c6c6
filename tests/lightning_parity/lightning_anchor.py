"""Runs a snippet in the anchor venv (real Lightning) and reads the JSON it prints last; shared
by the small differential tests of this folder. In CI a missing anchor venv is a failure."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

ANCHOR = Path(__file__).resolve().parents[2] / ".venv-anchor" / "bin" / "python"


def lightning_json(code: str) -> Any:
    if not ANCHOR.exists():
        if os.environ.get("CI"):  # `make test` builds it: in CI its absence is a failure
            pytest.fail(
                "the anchor venv .venv-anchor is missing; `make test` builds it (make anchor)"
            )
        pytest.skip("the anchor venv (make anchor) is not built")
    run = subprocess.run(
        [str(ANCHOR), "-c", code], capture_output=True, text=True, timeout=300, check=True
    )
    return json.loads(run.stdout.strip().splitlines()[-1])
