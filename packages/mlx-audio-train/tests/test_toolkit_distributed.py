"""Metrics and weight averaging data-parallel, with real ``mlx.launch --backend ring`` processes:
metric states reduced across ranks (counts summed, scores gathered from unequal shares, or from
one rank when the other saw no batch) give
the one-process values, and EMAWeightAveraging on two ranks (global batch 8) averages the same
weights as one process with batch 8."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

HERE = Path(__file__).parent
SCRIPT = HERE / "toolkit_distributed_script.py"

pytestmark = pytest.mark.skipif(
    shutil.which("mlx.launch", path=str(Path(sys.executable).parent)) is None,
    reason="mlx.launch is not installed next to this Python",
)


def run(out: Path, ranks: int, **config) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    argument = json.dumps({"out": str(out), **config})
    command = [sys.executable, str(SCRIPT), argument]
    if ranks > 1:
        launcher = str(Path(sys.executable).parent / "mlx.launch")
        command = [launcher, "-n", str(ranks), "--backend", "ring", "--python", sys.executable]
        command += [str(SCRIPT), argument]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
    }
    done = subprocess.run(command, cwd=HERE, env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads((out / "result.json").read_text())


def test_metrics_and_ema_under_two_ranks_match_one_process(tmp_path):
    alone = run(tmp_path / "one", 1, batch=8)
    pair = run(tmp_path / "two", 2, batch=4)
    for name in ("map", "auroc", "accuracy", "confusion", "lonely"):
        np.testing.assert_allclose(pair[name], alone[name], rtol=1e-6, atol=1e-6, err_msg=name)
    assert pair["n_averaged"] == alone["n_averaged"] == 8
    for key, value in alone["ema"].items():
        np.testing.assert_allclose(pair["ema"][key], value, rtol=1e-5, atol=1e-5, err_msg=key)
