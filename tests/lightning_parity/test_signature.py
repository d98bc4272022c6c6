"""Differential: `Trainer.__init__`'s arguments against real Lightning's (probes.SIGNATURE, from
golden/probes.json or live from the anchor venv): every argument both have takes the same
default, and the ones still missing here are exactly the documented list (docs/api/training.md,
"Differences from Lightning"), so the list stays true."""

from __future__ import annotations

import inspect
from pathlib import Path

from lightning_anchor import probe

from mlx_audio.train import Trainer

ROOT = Path(__file__).resolve().parents[2]
MISSING = [
    "enable_autolog_hparams",
    "model_registry",
    "plugins",
]
OURS_ONLY = ["collective_timeout", "compile", "on_nonfinite_loss", "seed"]


def test_trainer_arguments_and_defaults_as_in_lightning():
    theirs = probe("signature")
    ours = {
        k: repr(v.default)
        for k, v in inspect.signature(Trainer.__init__).parameters.items()
        if k != "self"
    }
    shared = sorted(set(theirs) & set(ours))
    assert {k: ours[k] for k in shared} == {k: theirs[k] for k in shared}
    assert sorted(set(theirs) - set(ours)) == MISSING
    assert sorted(set(ours) - set(theirs)) == OURS_ONLY
    documented = (ROOT / "docs" / "api" / "training.md").read_text()
    assert all(f"`{name}`" in documented for name in MISSING + OURS_ONLY)
