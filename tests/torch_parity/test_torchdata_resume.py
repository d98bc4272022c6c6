"""Resume differential: each case in state_cases.py runs through torchdata's
StatefulDataLoader and our DataLoader (our state through JSON); the batches before and after
the resume must be the same. torchdata's results come from golden/torchdata.json (recorded by
`make anchor`), or live from the anchor venv where it exists (test_golden_files.py then checks
that the golden file is the same)."""

from __future__ import annotations

import json
import types
import warnings

import mlx.core as mx
import pytest
from anchor import reference
from state_cases import STATE_CASES, roundtrip_json

import mlx_audio.data as ours


@pytest.fixture(scope="session")
def torchdata_results():
    return reference("torchdata")


def tolist(value):
    return value.tolist() if isinstance(value, mx.array) else value


L = types.SimpleNamespace(
    Loader=ours.DataLoader,
    IterableDataset=ours.IterableDataset,
    get_worker_info=ours.get_worker_info,
    roundtrip=roundtrip_json,
)


@pytest.mark.parametrize("name", list(STATE_CASES))
def test_resumes_like_torchdata(name, torchdata_results):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mine = {"ok": json.loads(json.dumps(STATE_CASES[name](L, tolist)))}
    assert mine == torchdata_results[name]
