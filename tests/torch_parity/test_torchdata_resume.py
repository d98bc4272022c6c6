"""Resume differential: each case in state_cases.py runs through torchdata's
StatefulDataLoader (anchor venv) and our DataLoader (our state through JSON); the batches
before and after the resume must be the same."""

from __future__ import annotations

import json
import os
import subprocess
import types
import warnings
from pathlib import Path

import mlx.core as mx
import pytest
from state_cases import STATE_CASES, roundtrip_json

import mlx_audio.data as ours

HERE = Path(__file__).resolve().parent
ANCHOR = HERE.parents[1] / ".venv-anchor" / "bin" / "python"


@pytest.fixture(scope="session")
def torchdata_results(tmp_path_factory):
    if not ANCHOR.exists():
        if os.environ.get("CI"):
            pytest.fail("the anchor venv .venv-anchor is missing; `make test` builds it (make anchor)")
        pytest.skip("the anchor venv (make anchor) is not built")
    out = tmp_path_factory.mktemp("torchdata") / "results.json"
    subprocess.run([str(ANCHOR), str(HERE / "run_torchdata.py"), str(out)], cwd=HERE, check=True, timeout=600)
    return json.loads(out.read_text())


def tolist(value):
    return value.tolist() if isinstance(value, mx.array) else value


L = types.SimpleNamespace(
    Loader=ours.DataLoader, IterableDataset=ours.IterableDataset, get_worker_info=ours.get_worker_info,
    roundtrip=roundtrip_json,
)


@pytest.mark.parametrize("name", list(STATE_CASES))
def test_resumes_like_torchdata(name, torchdata_results):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mine = {"ok": json.loads(json.dumps(STATE_CASES[name](L, tolist)))}
    assert mine == torchdata_results[name]
