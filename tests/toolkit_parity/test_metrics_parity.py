"""Differential test of mlx_audio.train.metrics against torchmetrics: each case of
metric_cases.py (random predictions; absent classes, ignore_index, thresholds, top-k, logits
and probabilities, ties) updated batch by batch through ``forward``: every batch value and the
epoch value (``compute``) must match torchmetrics' within float tolerance."""

from __future__ import annotations

import warnings

import mlx.core as mx
import numpy as np
import pytest
from metric_cases import CASES, run_case
from toolkit_anchor import check_golden, reference

from mlx_audio.train import metrics


@pytest.fixture(scope="module")
def torchmetrics_results():
    return reference("torchmetrics")


def tolist(value):
    return np.array(value).astype(np.float64).tolist()


@pytest.mark.parametrize("name", list(CASES))
def test_same_as_torchmetrics(name, torchmetrics_results):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mine = run_case(name, lambda cls, kw: getattr(metrics, cls)(**kw), mx.array, tolist)
    theirs = torchmetrics_results[name]
    for key in ("epoch", "steps"):
        np.testing.assert_allclose(
            np.array(mine[key], dtype=np.float64),
            np.array(theirs[key], dtype=np.float64),
            rtol=1e-5,
            atol=1e-6,
            err_msg=f"{name} {key}",
        )


def test_golden_file_is_what_torchmetrics_gives():
    check_golden("torchmetrics")
