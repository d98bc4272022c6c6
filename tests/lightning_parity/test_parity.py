"""Differential suite: each scenario runs through real Lightning (anchor venv) and through our
Trainer with the same arguments; the traces (validations with step/epoch/batch count, saves,
files kept, best checkpoint and score, hook call counts, CSV rows) must be equal.

Lightning's traces come from golden/scenarios.json (recorded by `make anchor`), or live from the
anchor venv where it exists (test_golden_files.py then checks that the golden file is the same).

Scenarios whose difference is deliberate are listed in scenarios.DIFFERENCES with the reason
(and in docs/api/training.md); they are expected to differ (strict xfail), so the list stays true.
"""

from __future__ import annotations

import warnings

import pytest
import run_ours
from lightning_anchor import reference
from scenarios import DIFFERENCES, IGNORED_COUNTS, SCENARIOS


@pytest.fixture(scope="session")
def lightning_traces():
    return reference("scenarios")


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
