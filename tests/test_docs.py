"""The docs' code blocks run as written (each page top to bottom, as one script)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Every page with Python blocks, except the tutorial: its examples have tests of their own
# (packages/mlx-audio-train/tests/test_tutorial.py, mlx-audio-models/tests/test_tutorial_example_2.py,
# which make the CLAP example's datasets smaller, as the page says).
RUN_ELSEWHERE = {"docs/tutorials/training.md"}
PAGES = sorted(
    str(p.relative_to(ROOT))
    for p in [
        ROOT / "README.md",
        *(ROOT / "docs").rglob("*.md"),
        *(ROOT / "packages").glob("*/README.md"),
    ]
    if str(p.relative_to(ROOT)) not in RUN_ELSEWHERE
    and "```python" in p.read_text()
    # the data package's PyPI page reads a folder of your own files: shown, not run
    and p != ROOT / "packages" / "mlx-audio-data" / "README.md"
)


def test_every_page_with_code_is_run():
    assert {
        "README.md",
        "docs/index.md",
        "docs/getting-started.md",
        "docs/migrating.md",
        "docs/api/data.md",
    } <= set(PAGES)


def python_blocks(page: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", page.read_text(), flags=re.S)


@pytest.mark.parametrize("page", PAGES)
def test_page_runs(page, tmp_path):
    blocks = python_blocks(ROOT / page)
    assert blocks, f"{page} has no python blocks"
    run_script("\n\n".join(blocks), tmp_path / "page.py")


def run_script(source: str, script) -> None:
    """Run ``source`` as a fresh Python process in ``script``'s folder; it must exit 0."""
    script.write_text(source)
    result = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        cwd=script.parent,
        timeout=300,
        env=os.environ.copy(),
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_tutorial_fragments_compile_and_name_real_arguments():
    """The tutorial's "Tips" blocks are fragments (``...``); Examples 1 and 2 run elsewhere."""
    import inspect

    from mlx_audio.data import DataLoader
    from mlx_audio.train import Trainer

    text = (ROOT / "docs" / "tutorials" / "training.md").read_text()
    tips = text[text.index("## Tips and Best Practices") :]
    blocks = re.findall(r"```python\n(.*?)```", tips, flags=re.S)
    assert len(blocks) == 4
    for block in blocks:
        compile(block, "tutorial-tip", "exec")
    assert {"cpu_transforms", "mlx_transforms"} <= set(inspect.signature(DataLoader).parameters)
    assert "gradient_clip_val" in inspect.signature(Trainer).parameters


def test_reference_pages_are_current():
    """docs/reference/*.md list every public name (regenerate: python docs/site.py reference)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("docs_site", ROOT / "docs" / "site.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for page in module.PAGES:
        assert (ROOT / "docs" / "reference" / f"{page}.md").read_text() == module.render(page), (
            f"docs/reference/{page}.md is out of date: run python docs/site.py reference"
        )


# Blocks a reader copies on their own: each must run alone (its imports and a tiny definition
# of what it uses), not only after the page's earlier blocks.
STANDALONE = [
    ("docs/api/data.md", "self.mixup = Mixup(mixup_alpha=0.4"),
    ("docs/api/data.md", "dynamic = DynamicBucketingSampler("),
    ("docs/api/data.md", "mixed = mux([Corpus"),
    ("docs/api/training.md", "ema = EMAWeightAveraging(decay=0.99)"),
]


@pytest.mark.parametrize("page, marker", STANDALONE)
def test_block_runs_alone(page, marker, tmp_path):
    (block,) = [b for b in python_blocks(ROOT / page) if marker in b]
    run_script(block, tmp_path / "block.py")
