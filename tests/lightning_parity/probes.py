"""The small Lightning probes of this folder's differential tests (test_model_summary.py,
test_precision.py, test_signature.py): each a snippet run in the anchor venv that prints its
result as JSON on its last line (run_probes.py runs them all; the results are recorded in
golden/probes.json). Imports nothing: read by both interpreters."""

from __future__ import annotations

# Which model-summary callbacks a Trainer holds, for these cases (test_model_summary.py).
SUMMARY_CASES = ["default", "off", "on", "given", "given_off"]
MODEL_SUMMARY = """
import json, lightning.pytorch as pl
from lightning.pytorch.callbacks import ModelSummary
def held(**kw):
    given = kw.pop("given", None)
    trainer = pl.Trainer(logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         callbacks=[given] if given else None, **kw)
    summaries = [c for c in trainer.callbacks if isinstance(c, ModelSummary)]
    return [len(summaries), given is not None and given in summaries]
print(json.dumps([held(), held(enable_model_summary=False), held(enable_model_summary=True),
                  held(given=ModelSummary()), held(given=ModelSummary(), enable_model_summary=False)]))
"""

# What `Trainer(precision=...)` becomes and which warnings it gives (test_precision.py): OUTCOME
# runs in both frameworks.
PRECISION_INPUTS = [
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
OUTCOME = """
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
PRECISION = (
    OUTCOME
    + """
import lightning.pytorch as pl
def make(precision):
    kw = {} if precision is None else {"precision": precision}
    return pl.Trainer(logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                      accelerator="cpu", **kw)
print(json.dumps([outcome(make, p) for p in PRECISION_INPUTS]))
""".replace("PRECISION_INPUTS", repr(PRECISION_INPUTS))
)

# `Trainer.__init__`'s arguments and the repr of their defaults (test_signature.py).
SIGNATURE = """
import inspect, json, lightning.pytorch as pl
print(json.dumps({k: repr(v.default) for k, v in inspect.signature(pl.Trainer.__init__).parameters.items() if k != "self"}))
"""

PROBES = {"model_summary": MODEL_SUMMARY, "precision": PRECISION, "signature": SIGNATURE}
