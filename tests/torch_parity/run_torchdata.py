"""torchdata's side of the resume cases: ``.venv-anchor/bin/python run_torchdata.py OUT``."""

from __future__ import annotations

import json
import sys
import types
import warnings

import torch
import torch.utils.data as tud
from state_cases import STATE_CASES
from torchdata.stateful_dataloader import StatefulDataLoader


def tolist(value):
    return value.tolist() if isinstance(value, torch.Tensor) else value


L = types.SimpleNamespace(
    Loader=StatefulDataLoader,
    IterableDataset=tud.IterableDataset,
    get_worker_info=tud.get_worker_info,
    roundtrip=lambda state: state,  # torchdata's state holds tensors: handed over in memory
)

if __name__ == "__main__":
    warnings.filterwarnings("ignore")
    results = {}
    for name, fn in STATE_CASES.items():
        try:
            results[name] = {"ok": fn(L, tolist)}
        except Exception as error:
            results[name] = {"error": type(error).__name__, "message": str(error)[:200]}
    with open(sys.argv[1], "w") as f:
        json.dump(results, f)
