"""The files ``predict`` and ``zero-shot`` write: CSV, JSON Lines or one JSON list, by the
suffix of ``--out``; its folder is checked before any work is done."""

from __future__ import annotations

import csv
import json
import os
from typing import Any

KINDS = (".csv", ".jsonl", ".json")


def check(path: str) -> None:
    """Refuse an ``--out`` that could not be written, before predicting anything."""
    if not path.lower().endswith(KINDS):
        raise ValueError(f"--out {path}: write .csv, .jsonl (one JSON object a line) or .json")
    folder = os.path.dirname(path) or "."
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"--out {path}: the folder {folder} does not exist")


def write(path: str, rows: list[dict[str, Any]], fields: list[str]) -> None:
    lowered = path.lower()
    with open(path, "w", newline="") as f:
        if lowered.endswith(".jsonl"):
            f.writelines(json.dumps(row) + "\n" for row in rows)
        elif lowered.endswith(".json"):
            json.dump(rows, f, indent=1)
            f.write("\n")
        else:
            writer = csv.DictWriter(f, fieldnames=fields)
            writer.writeheader()
            writer.writerows(rows)
