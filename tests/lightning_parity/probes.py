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

# Lightning's debugging flags (test_flags.py): what each case becomes, or its error. FLAG_OUTCOME
# runs in both frameworks on a Trainer made from the case.
FLAG_CASES = [
    {"barebones": True},
    {"barebones": True, "enable_checkpointing": True},
    {"barebones": True, "logger": True},
    {"barebones": True, "enable_progress_bar": True},
    {"barebones": True, "log_every_n_steps": 5},
    {"barebones": True, "log_every_n_steps": 0},
    {"barebones": True, "enable_model_summary": True},
    {"barebones": True, "num_sanity_val_steps": 2},
    {"barebones": True, "fast_dev_run": True},
    {"barebones": True, "detect_anomaly": True},
    {"barebones": True, "profiler": "simple"},
    {"overfit_batches": 3},
    {"overfit_batches": 0.25},
    {"overfit_batches": -1},
    {"overfit_batches": 1.5},
    {"overfit_batches": 3, "fast_dev_run": 2},
    {"overfit_batches": 3, "limit_train_batches": 7},
    {"limit_predict_batches": 5},
    {"limit_predict_batches": 0.5},
    {"limit_predict_batches": 1.5},
    {"fast_dev_run": 2},
    {"profiler": "SIMPLE"},
]
FLAG_OUTCOME = """
import json
def flag_outcome(make, case):
    try:
        t = make(**case)
    except Exception as error:
        return "error: " + str(error).split(" (")[0]
    bars = [c for c in t.callbacks if "ProgressBar" in type(c).__name__]
    return {"limit_train_batches": t.limit_train_batches, "limit_val_batches": t.limit_val_batches,
            "limit_predict_batches": t.limit_predict_batches, "overfit_batches": t.overfit_batches,
            "num_sanity_val_steps": t.num_sanity_val_steps, "log_every_n_steps": t.log_every_n_steps,
            "checkpointing": t.checkpoint_callback is not None,
            "loggers": len([x for x in t.loggers if type(x).__name__ != "DummyLogger"]),
            "bars": len(bars), "profiler": type(t.profiler).__name__}
"""
FLAGS = (
    FLAG_OUTCOME
    + """
import lightning.pytorch as pl
def make(**case):
    return pl.Trainer(accelerator="cpu", max_epochs=1, **case)
print(json.dumps([flag_outcome(make, c) for c in FLAG_CASES]))
""".replace("FLAG_CASES", repr(FLAG_CASES))
)

# The learning-rate finder (test_tuner.py): the rates of Lightning's schedules, the smoothed
# losses and early stop of its _LRCallback, and _LRFinder.suggestion on given loss sequences.
LR_RAW_LOSSES = [
    2.3,
    2.1,
    2.2,
    1.9,
    1.7,
    1.8,
    1.2,
    0.9,
    0.95,
    0.7,
    0.6,
    0.62,
    0.5,
    0.55,
    0.9,
    1.6,
    3.0,
    7.0,
    20.0,
    60.0,
]
LR_SEQUENCES = [
    [3.0 - 0.1 * i + (0.3 if i % 4 == 0 else 0.0) + 0.02 * i * i / 10 for i in range(40)],
    [
        2.0,
        1.9,
        float("nan"),
        1.5,
        1.2,
        0.8,
        0.81,
        0.6,
        float("inf"),
        0.5,
        0.45,
        0.44,
        0.3,
        0.9,
        1.2,
        5.0,
    ],
    [1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.05, 0.04],
    [1.0, 0.9, 0.8],
]
LR_FINDER = """
import json, types
nan, inf = float("nan"), float("inf")
import torch
from lightning.pytorch.tuner.lr_finder import _ExponentialLR, _LinearLR, _LRCallback, _LRFinder
out = {"rates": {}, "smoothed": None, "suggestions": []}
for mode, cls in (("exponential", _ExponentialLR), ("linear", _LinearLR)):
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1e-5)
    for group in opt.param_groups:
        group["initial_lr"] = 1e-5
    sched = cls(opt, 10.0, 20)
    rates = []
    for _ in range(20):
        rates.append(sched.lr[0])
        opt.step(); sched.step()
    out["rates"][mode] = rates
cb = _LRCallback(20, 4.0)
trainer = types.SimpleNamespace(fit_loop=types.SimpleNamespace(batch_idx=0), accumulate_grad_batches=1,
                                global_step=0, should_stop=False,
                                strategy=types.SimpleNamespace(broadcast=lambda x: x))
stops = []
for i, loss in enumerate(LR_RAW_LOSSES):
    trainer.fit_loop.batch_idx = i
    trainer.global_step = i + 1
    cb.on_train_batch_end(trainer, None, {"loss": torch.tensor(loss)}, None, i)
    stops.append(trainer.should_stop)
out["smoothed"] = [cb.losses, stops]
for losses in LR_SEQUENCES:
    lrs = [1e-6 * (1e7) ** ((i + 1) / len(losses)) if i else 1e-6 for i in range(len(losses))]
    for kw in ({}, {"skip_begin": 2, "skip_end": 2}, {"skip_begin": 0, "skip_end": 1}):
        f = _LRFinder("exponential", 1e-6, 10.0, len(losses))
        f.results = {"lr": lrs, "loss": losses}
        out["suggestions"].append([f.suggestion(**kw), f._optimal_idx])
print(json.dumps(out))
""".replace("LR_RAW_LOSSES", repr(LR_RAW_LOSSES)).replace("LR_SEQUENCES", repr(LR_SEQUENCES))

PROBES = {
    "model_summary": MODEL_SUMMARY,
    "precision": PRECISION,
    "signature": SIGNATURE,
    "flags": FLAGS,
    "lr_finder": LR_FINDER,
}
