"""torch's side of the data differential suite: ``.venv-anchor/bin/python run_torch.py OUT``."""

from __future__ import annotations

import json
import sys
import types
import warnings

import torch
import torch.utils.data as tud
from cases import CASES, run_case, to_python

L = types.SimpleNamespace(
    **{name: getattr(tud, name) for name in dir(tud) if not name.startswith("_")}
)
L.default_collate = tud.default_collate
L.as_array = torch.as_tensor  # what TensorDataset holds (ours: numpy, cases' ``L.as_array``)


def tolist(value):
    return to_python(value, lambda v: isinstance(v, torch.Tensor))


if __name__ == "__main__":
    warnings.filterwarnings("ignore")
    results = {name: run_case(name, L, tolist) for name in CASES}
    with open(sys.argv[1], "w") as f:
        json.dump(results, f)
