"""Runs one of this folder's anchor scripts in the anchor venv (torch, torchdata) and reads
its JSON results; shared by the differential tests. In CI a missing anchor venv is a failure."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
ANCHOR = HERE.parents[1] / ".venv-anchor" / "bin" / "python"


def anchor_results(script: str, out_dir: Path) -> dict[str, Any]:
    if not ANCHOR.exists():
        if os.environ.get("CI"):  # `make test` builds it: in CI its absence is a failure
            pytest.fail(
                "the anchor venv .venv-anchor is missing; `make test` builds it (make anchor)"
            )
        pytest.skip("the anchor venv (make anchor) is not built")
    out = out_dir / "results.json"
    subprocess.run([str(ANCHOR), str(HERE / script), str(out)], cwd=HERE, check=True, timeout=600)
    return json.loads(out.read_text())
