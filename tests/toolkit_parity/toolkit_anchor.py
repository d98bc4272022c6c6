"""The references' side of this folder's differential tests (Lightning's weight averaging,
torchmetrics): live from the anchor venv where it exists, else from the golden files that
`make anchor` records (golden/*.json; tests/golden.py says how they are made and checked)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.append(str(Path(__file__).resolve().parents[1]))  # tests/golden.py, shared with make
sys.path.append(str(Path(__file__).resolve().parent))  # the cases, shared by both sides
from golden import check_golden, reference  # noqa: E402

__all__ = ["check_golden", "reference"]
