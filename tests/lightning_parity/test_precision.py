"""Differential: what `Trainer(precision=...)` becomes (`trainer.precision`) and which warnings it
gives, for every input Lightning accepts and some it refuses, in real Lightning (anchor venv, on
the CPU) and here (NOTE [precision names]). 64-bit is the documented difference: refused here."""

from __future__ import annotations

import warnings

from lightning_anchor import lightning_json

from mlx_audio.train import Trainer

INPUTS = [
    None,
    32,
    "32",
    "32-true",
    "bf16",
    "bf16-mixed",
    "bf16-true",
    "16-true",
    16,
    "16",
    "16-mixed",
    "x",
    True,
    64,
    "64",
    "64-true",
]
DIFFERENT = {
    64,
    "64",
    "64-true",
}  # Lightning: "64-true"; here: ValueError (no float64 on MLX's GPU)
PROBE = """
import json, warnings
def outcome(make, precision):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            result = make(precision).precision
        except ValueError as error:
            result = "ValueError: " + str(error).split(".")[0]
    said = sorted({k for w in caught for k in ("historical reasons", "AMP with fp16") if k in str(w.message)})
    return [result, said]
"""
LIGHTNING = (
    PROBE
    + """
import lightning.pytorch as pl
def make(precision):
    kw = {} if precision is None else {"precision": precision}
    return pl.Trainer(logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                      accelerator="cpu", **kw)
print(json.dumps([outcome(make, p) for p in %r]))
"""
)


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
    theirs = lightning_json(LIGHTNING % (INPUTS,))
    namespace: dict = {}
    exec(PROBE, namespace)  # the same probe here
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
