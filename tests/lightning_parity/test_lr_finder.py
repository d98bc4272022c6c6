"""Differential: the learning-rate finder's rule (``mlx_audio.train.Tuner.lr_find``) against
Lightning's own code (probes.LR_FINDER, from golden/probes.json or live from the anchor venv):
the rates of its exponential and linear schedules, the smoothed losses and the early stop of its
``_LRCallback`` on the same raw losses, and ``_LRFinder.suggestion`` on the same loss sequences
(NaN and infinity included). A whole ``lr_find`` on the same data cannot be compared across
frameworks (other kernels, other initial weights); tests/test_tuner.py runs it end to end."""

from __future__ import annotations

import types

import mlx.core as mx
import pytest
from lightning_anchor import probe
from probes import LR_RAW_LOSSES, LR_SEQUENCES

from mlx_audio.train.tuner import LRFinder, _LRCallback


@pytest.fixture(scope="module")
def theirs():
    return probe("lr_finder")


@pytest.mark.parametrize("mode", ["exponential", "linear"])
def test_rates_as_lightnings_schedules(theirs, mode):
    finder = LRFinder(mode, 1e-5, 10.0, 20)
    assert [finder.lr_at(k) for k in range(20)] == pytest.approx(theirs["rates"][mode], rel=1e-12)
    compiled = [float(finder.schedule(mx.array(k, mx.uint64))) for k in range(20)]
    assert compiled == pytest.approx(theirs["rates"][mode], rel=1e-5)  # float32 in the step


def test_smoothing_and_early_stop_as_lightnings_callback(theirs):
    callback = _LRCallback(LRFinder("exponential", 1e-5, 10.0, 20), 4.0)
    trainer = types.SimpleNamespace(accumulate_grad_batches=1, global_step=0, should_stop=False)
    stops = []
    for i, loss in enumerate(LR_RAW_LOSSES):
        trainer.global_step = i + 1  # after the update, as at Lightning's on_train_batch_end
        callback.on_train_batch_end(trainer, None, {"loss": mx.array(loss)}, None, i)
        stops.append(trainer.should_stop)
    losses, their_stops = theirs["smoothed"]
    assert callback.losses == pytest.approx(losses, rel=1e-6)  # float32 losses in both
    assert stops == their_stops


def test_suggestion_as_lightnings(theirs):
    ours = []
    for losses in LR_SEQUENCES:
        lrs = [1e-6 * (1e7) ** ((i + 1) / len(losses)) if i else 1e-6 for i in range(len(losses))]
        for kw in ({}, {"skip_begin": 2, "skip_end": 2}, {"skip_begin": 0, "skip_end": 1}):
            finder = LRFinder("exponential", 1e-6, 10.0, len(losses))
            finder.results = {"lr": lrs, "loss": losses}
            ours.append([finder.suggestion(**kw), finder._optimal_idx])
    assert ours == theirs["suggestions"]
