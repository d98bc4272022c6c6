"""The docs' code blocks run as written (each page top to bottom, as one script)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [
    "README.md",
    "docs/api/data.md",
    "docs/api/loggers.md",
    "docs/api/training.md",
    "docs/api/models.md",
    # the PyPI pages (the data package's example reads a folder of your own files: not run)
    "packages/mlx-audio-train/README.md",
    "packages/mlx-audio-loggers/README.md",
    "packages/mlx-audio-models/README.md",
    "packages/mlx-audio-stack/README.md",
]


def python_blocks(page: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", page.read_text(), flags=re.S)


@pytest.mark.parametrize("page", PAGES)
def test_page_runs(page, tmp_path):
    blocks = python_blocks(ROOT / page)
    assert blocks, f"{page} has no python blocks"
    script = tmp_path / "page.py"
    script.write_text("\n\n".join(blocks))
    result = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
        env=os.environ.copy(),
    )
    assert result.returncode == 0, result.stdout + result.stderr
