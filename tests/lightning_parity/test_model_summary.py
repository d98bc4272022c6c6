"""Differential: which model-summary callbacks a Trainer holds for `enable_model_summary` and a
given ModelSummary, in real Lightning (probes.MODEL_SUMMARY: golden/probes.json, or live from the
anchor venv) and here."""

from __future__ import annotations

from lightning_anchor import probe
from probes import SUMMARY_CASES

from mlx_audio.train import Trainer
from mlx_audio.train.callbacks import ModelSummary


def held(**kw):
    given = kw.pop("given", None)
    trainer = Trainer(
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        callbacks=[given] if given else None,
        **kw,
    )
    summaries = [c for c in trainer.callbacks if isinstance(c, ModelSummary)]
    return [len(summaries), given is not None and given in summaries]


def test_model_summary_callbacks_as_in_lightning():
    theirs = probe("model_summary")
    ours = [
        held(),
        held(enable_model_summary=False),
        held(enable_model_summary=True),
        held(given=ModelSummary()),
        held(given=ModelSummary(), enable_model_summary=False),
    ]
    assert dict(zip(SUMMARY_CASES, ours)) == dict(zip(SUMMARY_CASES, theirs))
