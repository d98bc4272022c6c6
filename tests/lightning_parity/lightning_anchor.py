"""Real Lightning's side of this folder's differential tests: live from the anchor venv where
it exists, else from the golden files that `make anchor` records (golden/*.json; tests/golden.py
says how they are made and checked). Without both, the tests fail saying so."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.append(str(Path(__file__).resolve().parents[1]))  # tests/golden.py, shared with make
from golden import check_golden, reference  # noqa: E402

__all__ = ["check_golden", "probe", "reference"]


def probe(name: str) -> Any:
    """The result of probes.PROBES[name] in real Lightning."""
    return reference("probes")[name]
