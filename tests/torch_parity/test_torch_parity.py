"""Differential suite for the data package: each case in cases.py runs through torch's
DataLoader (anchor venv, one subprocess) and through ours; the results must be equal.

Deliberate differences are listed in DIFFERENCES with the reason (also in docs/api/data.md)
and expected to differ (strict xfail), so the list stays true."""

from __future__ import annotations

import json
import os
import subprocess
import types
import warnings
from pathlib import Path

import mlx.core as mx
import numpy as np
import pytest
from cases import CASES, run_case

import mlx_audio.data as ours

HERE = Path(__file__).resolve().parent
ANCHOR = HERE.parents[1] / ".venv-anchor" / "bin" / "python"
DIFFERENCES: dict[str, str] = {}


@pytest.fixture(scope="session")
def torch_results(tmp_path_factory):
    if not ANCHOR.exists():
        if os.environ.get("CI"):
            pytest.fail("the anchor venv .venv-anchor is missing; `make test` builds it (make anchor)")
        pytest.skip("the anchor venv (make anchor) is not built")
    out = tmp_path_factory.mktemp("torch") / "results.json"
    subprocess.run([str(ANCHOR), str(HERE / "run_torch.py"), str(out)], cwd=HERE, check=True, timeout=600)
    return json.loads(out.read_text())


L = types.SimpleNamespace(**{name: getattr(ours, name) for name in ours.__all__})


def tolist(value):
    if isinstance(value, (mx.array, np.ndarray, np.generic)):
        return value.tolist()
    if isinstance(value, (list, tuple)):
        return [tolist(v) for v in value]
    if isinstance(value, dict):
        return {k: tolist(v) for k, v in value.items()}
    return value


def _param(name):
    marks = [pytest.mark.xfail(strict=True, reason=DIFFERENCES[name])] if name in DIFFERENCES else []
    return pytest.param(name, id=name, marks=marks)


@pytest.mark.parametrize("name", [_param(n) for n in CASES])
def test_same_as_torch(name, torch_results):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mine = json.loads(json.dumps(run_case(name, L, tolist)))
    theirs = torch_results[name]
    if "error" in theirs and "error" in mine:  # every class torch's error has, ours has too
        assert set(theirs["error"]) <= set(mine["error"]), (mine, theirs)
    else:
        assert mine == theirs
