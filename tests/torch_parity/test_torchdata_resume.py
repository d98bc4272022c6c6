"""Resume differential: each case in state_cases.py runs through torchdata's
StatefulDataLoader and our DataLoader (our state through JSON); the batches before and after
the resume must be the same. torchdata's results come from golden/torchdata.json (recorded by
`make anchor`), or live from the anchor venv where it exists (test_golden_files.py then checks
that the golden file is the same). Deliberate differences are listed in DIFFERENCES (also in
docs/api/data.md) and expected to differ."""

from __future__ import annotations

import json
import types
import warnings

import mlx.core as mx
import numpy as np
import pytest
from anchor import reference
from state_cases import STATE_CASES, roundtrip_json

import mlx_audio.data as ours


@pytest.fixture(scope="session")
def torchdata_results():
    return reference("torchdata")


def tolist(value):
    return value.tolist() if isinstance(value, mx.array) else value


def _rng_state():
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return [name, keys.tolist(), pos, has_gauss, cached]


def _set_rng_state(state):
    name, keys, pos, has_gauss, cached = state
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))


L = types.SimpleNamespace(
    Loader=ours.DataLoader,
    IterableDataset=ours.IterableDataset,
    get_worker_info=ours.get_worker_info,
    roundtrip=roundtrip_json,
    same=lambda a, b: a == b,
    seed_all=np.random.seed,
    seeded=lambda seed: {"seed": seed},
    randint=lambda n: int(np.random.randint(n)),
    rng_state=_rng_state,
    set_rng_state=_set_rng_state,
)


# deliberate differences (docs/api/data.md), expected to differ (strict xfail) so the list stays true
DIFFERENCES = {
    "num_workers_mismatch_map": "a map-style state resumes with any num_workers (torchdata: "
    "AssertionError): its batches do not depend on the workers",
    "stream_state_after_its_last_batch": "a worker that had run out stays out: nothing more of "
    "that epoch (torchdata restarts it, into the next epoch's items)",
}


def _param(name):
    marks = (
        [pytest.mark.xfail(strict=True, reason=DIFFERENCES[name])] if name in DIFFERENCES else []
    )
    return pytest.param(name, id=name, marks=marks)


@pytest.mark.parametrize("name", [_param(n) for n in STATE_CASES])
def test_resumes_like_torchdata(name, torchdata_results):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mine = {"ok": json.loads(json.dumps(STATE_CASES[name](L, tolist)))}
    assert mine == torchdata_results[name]
