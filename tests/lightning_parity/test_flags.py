"""Differential: Lightning's debugging flags (``barebones``, ``overfit_batches``,
``limit_predict_batches``, ``profiler`` names) resolve, and are refused, as in real Lightning
(probes.FLAGS, from golden/probes.json or live from the anchor venv): the same limits, the same
features turned off, the same error messages."""

from __future__ import annotations

import warnings

from lightning_anchor import probe
from probes import FLAG_CASES, FLAG_OUTCOME

from mlx_audio.train import Trainer


def make(**case):
    return Trainer(max_epochs=1, **case)


def test_flags_resolve_and_fail_as_in_lightning(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    theirs = probe("flags")
    namespace: dict = {}
    exec(FLAG_OUTCOME, namespace)  # the same probe here
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours = [namespace["flag_outcome"](make, case) for case in FLAG_CASES]
    assert dict(zip(map(repr, FLAG_CASES), ours)) == dict(zip(map(repr, FLAG_CASES), theirs))
