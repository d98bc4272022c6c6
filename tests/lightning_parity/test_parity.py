"""Differential suite: each scenario runs through real Lightning (anchor venv) and through our
Trainer with the same arguments; the traces (validations with step/epoch/batch count, saves,
files kept, best checkpoint and score, hook call counts, CSV rows) must be equal.

Scenarios whose difference is deliberate are listed in scenarios.DIFFERENCES with the reason
(and in docs/api/training.md); they are expected to differ (strict xfail), so the list stays true.
"""

from __future__ import annotations

import json
import os
import subprocess
import warnings
from pathlib import Path

import pytest
import run_ours
from scenarios import DIFFERENCES, IGNORED_COUNTS, SCENARIOS

HERE = Path(__file__).resolve().parent
ANCHOR = HERE.parents[1] / ".venv-anchor" / "bin" / "python"


@pytest.fixture(scope="session")
def lightning_traces(tmp_path_factory):
    if not ANCHOR.exists():
        if os.environ.get("CI"):  # `make test` builds it: in CI its absence is a failure
            pytest.fail(
                "the anchor venv .venv-anchor is missing; `make test` builds it (make anchor)"
            )
        pytest.skip("the anchor venv (make anchor) is not built")
    out = tmp_path_factory.mktemp("lightning") / "traces.json"
    subprocess.run(
        [str(ANCHOR), str(HERE / "run_lightning.py"), str(out)], cwd=HERE, check=True, timeout=600
    )
    return json.loads(out.read_text())


def _trace(scenario, root):
    try:
        with warnings.catch_warnings():  # the Trainer's own lines go through logging (captured)
            warnings.simplefilter("ignore")
            trace = run_ours.run(scenario, str(root))
    except (ValueError, RuntimeError) as error:
        return {"error": type(error).__name__}
    for hook in IGNORED_COUNTS:
        trace["counts"].pop(hook, None)
    return trace


def _expected(trace):
    if "error" in trace:
        return {
            "error": "ValueError"
            if trace["error"] in ("MisconfigurationException", "ValueError")
            else trace["error"]
        }
    for hook in IGNORED_COUNTS:
        trace["counts"].pop(hook, None)
    return trace


def _param(scenario):
    marks = []
    if scenario["name"] in DIFFERENCES:
        marks.append(pytest.mark.xfail(strict=True, reason=DIFFERENCES[scenario["name"]]))
    return pytest.param(scenario, id=scenario["name"], marks=marks)


@pytest.mark.parametrize("scenario", [_param(s) for s in SCENARIOS])
def test_same_as_lightning(scenario, lightning_traces, tmp_path):
    assert _trace(scenario, tmp_path) == _expected(lightning_traces[scenario["name"]])


def test_enough_scenarios():
    assert len(SCENARIOS) - len(DIFFERENCES) >= 60
