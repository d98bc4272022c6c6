"""Differential: what `Trainer(precision=...)` becomes (`trainer.precision`) and which warnings it
gives, for every input Lightning accepts and some it refuses, in real Lightning (on the CPU:
probes.PRECISION, from golden/probes.json or live from the anchor venv) and here (NOTE [precision
names]). 64-bit is the documented difference: refused here."""

from __future__ import annotations

import warnings

from lightning_anchor import probe
from probes import OUTCOME
from probes import PRECISION_INPUTS as INPUTS

from mlx_audio.train import Trainer

DIFFERENT = {
    64,
    "64",
    "64-true",
}  # Lightning: "64-true"; here: ValueError (no float64 on MLX's GPU)


def make(precision):
    return Trainer(
        precision=precision,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        max_epochs=1,
    )


def test_precision_names_and_warnings_as_in_lightning():
    theirs = probe("precision")
    namespace: dict = {}
    exec(OUTCOME, namespace)  # the same probe here
    ours = [namespace["outcome"](make, p) for p in INPUTS]
    same = [p for p in INPUTS if p not in DIFFERENT]
    assert {repr(p): ours[INPUTS.index(p)] for p in same} == {
        repr(p): theirs[INPUTS.index(p)] for p in same
    }
    for p in DIFFERENT:
        assert theirs[INPUTS.index(p)][0] == "64-true"
        assert ours[INPUTS.index(p)][0].startswith("ValueError: Trainer: precision=")


def test_bf16_true_and_16_true_cast_the_model():
    import mlx.core as mx
    import mlx.nn as nn

    from mlx_audio.train import TrainModule

    class Tiny(TrainModule):
        def __init__(self):
            super().__init__()
            self.layer = nn.Linear(4, 2)

        def training_step(self, batch, batch_idx):
            return mx.mean(self.layer(batch) ** 2)

        def configure_optimizers(self):
            import mlx.optimizers as optim

            return optim.SGD(learning_rate=0.1)

    for precision, dtype in (
        ("bf16-true", mx.bfloat16),
        ("16-true", mx.float16),
        ("bf16-mixed", mx.float32),
    ):
        model = Tiny()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            make(precision).fit(model, [mx.ones((3, 4))] * 2)
        assert model.layer.weight.dtype == dtype, precision
