"""torchmetrics' side of the metrics differential test: ``.venv-anchor/bin/python run_torchmetrics.py OUT``."""

from __future__ import annotations

import json
import os
import sys

if "LD_PRELOAD" in os.environ:  # torch's own BLAS, not the tests' OpenBLAS
    env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
    os.execve(sys.executable, [sys.executable, *sys.argv], env)

import warnings  # noqa: E402

import torch  # noqa: E402
import torchmetrics.classification  # noqa: E402
from metric_cases import CASES, run_case  # noqa: E402


def tolist(value):
    return torch.as_tensor(value).double().tolist()


if __name__ == "__main__":
    warnings.filterwarnings("ignore")
    results = {
        name: run_case(
            name,
            lambda cls, kw: getattr(torchmetrics.classification, cls)(**kw),
            torch.from_numpy,
            tolist,
        )
        for name in CASES
    }
    with open(sys.argv[1], "w") as f:
        json.dump(results, f)
