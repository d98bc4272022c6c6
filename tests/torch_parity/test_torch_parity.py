"""Differential suite for the data package: each case in cases.py runs through torch's
DataLoader and through ours; the results must be equal. torch's results come from
golden/torch.json (recorded by `make anchor`), or live from the anchor venv (one subprocess)
where it exists (test_golden_files.py then checks that the golden file is the same).

Deliberate differences are listed in DIFFERENCES with the reason (also in docs/api/data.md)
and expected to differ (strict xfail), so the list stays true."""

from __future__ import annotations

import json
import types
import warnings

import mlx.core as mx
import numpy as np
import pytest
from anchor import reference
from cases import CASES, run_case, to_python

import mlx_audio.data as ours

DIFFERENCES: dict[str, str] = {}


@pytest.fixture(scope="session")
def torch_results():
    return reference("torch")


L = types.SimpleNamespace(**{name: getattr(ours, name) for name in ours.__all__})
L.as_array = np.asarray  # what an ArrayDataset holds (torch's side: torch.as_tensor)


def tolist(value):
    return to_python(value, lambda v: isinstance(v, (mx.array, np.ndarray, np.generic)))


def _param(name):
    marks = (
        [pytest.mark.xfail(strict=True, reason=DIFFERENCES[name])] if name in DIFFERENCES else []
    )
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
