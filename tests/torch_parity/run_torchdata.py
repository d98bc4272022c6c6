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


def same(a, b) -> bool:
    """Two states are equal (tensors compared by value)."""
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and torch.equal(a, b)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return bool(a == b)


L = types.SimpleNamespace(
    Loader=StatefulDataLoader,
    IterableDataset=tud.IterableDataset,
    get_worker_info=tud.get_worker_info,
    roundtrip=lambda state: state,  # torchdata's state holds tensors: handed over in memory
    same=same,
    seed_all=torch.manual_seed,
    seeded=lambda seed: {"generator": torch.Generator().manual_seed(seed)},
    randint=lambda n: int(torch.randint(n, (1,)).item()),
    rng_state=torch.get_rng_state,
    set_rng_state=torch.set_rng_state,
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
