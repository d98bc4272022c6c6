"""Data-parallel training with real ``mlx.launch --backend ring`` processes on the CPU.

Each test runs ``distributed_script.py`` under ``mlx.launch -n 2`` and, where it compares,
alone with the same global batch: weights and every logged value agree within 1e-5.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import mlx.core as mx
import numpy as np
import pytest

HERE = Path(__file__).parent
SCRIPT = HERE / "distributed_script.py"
TOLERANCE = 1e-5

pytestmark = pytest.mark.skipif(
    shutil.which("mlx.launch", path=str(Path(sys.executable).parent)) is None,
    reason="mlx.launch is not installed next to this Python",
)


def _env() -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
    }


def run(out: Path, ranks: int, timeout: float = 120, **config) -> subprocess.CompletedProcess:
    """The script on ``ranks`` processes (1: plain ``python``); fails the test on a hang."""
    out.mkdir(parents=True, exist_ok=True)
    argument = json.dumps({"out": str(out), **config})
    if ranks == 1:
        command = [sys.executable, str(SCRIPT), argument]
    else:
        launcher = str(Path(sys.executable).parent / "mlx.launch")
        command = [
            launcher,
            "-n",
            str(ranks),
            "--backend",
            "ring",
            "--python",
            sys.executable,
            str(SCRIPT),
            argument,
        ]
    return subprocess.run(
        command, cwd=HERE, env=_env(), capture_output=True, text=True, timeout=timeout
    )


def finished(result: subprocess.CompletedProcess, out: Path, ranks: int) -> list[dict]:
    """What each rank reported (mlx.launch exits 0 even when a rank fails: read the files)."""
    seen = []
    for rank in range(ranks):
        path = out / f"seen-{rank}.json"
        assert path.exists(), (
            f"rank {rank} did not finish:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        )
        seen.append(json.loads(path.read_text()))
    return seen


def weights(out: Path) -> dict[str, np.ndarray]:
    return {k: np.array(v) for k, v in mx.load(str(out / "weights.safetensors")).items()}


def logged(out: Path) -> list[dict[str, str]]:
    rows: list[dict[str, str]] = []
    for version in sorted((out / "logs").iterdir()):
        rows.extend(csv.DictReader(open(version / "metrics.csv")))
    return rows


def assert_close_weights(a: Path, b: Path, tolerance: float = TOLERANCE) -> float:
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    error = max(float(np.abs(wa[k] - wb[k]).max()) for k in wa)
    assert error <= tolerance, f"weights differ by {error}"
    return error


def assert_close_logs(rows_a: list[dict], rows_b: list[dict]) -> float:
    assert len(rows_a) == len(rows_b) and rows_a, (len(rows_a), len(rows_b))
    error = 0.0
    for a, b in zip(rows_a, rows_b):
        assert {k for k, v in a.items() if v} == {k for k, v in b.items() if v}, (a, b)
        for key, value in a.items():
            if value:
                error = max(error, abs(float(value) - float(b[key])))
    assert error <= TOLERANCE, f"logged values differ by {error}"
    return error


@pytest.mark.parametrize(
    "config",
    [
        {"max_epochs": 3},
        {"max_epochs": 2, "accumulate": 3, "clip": 0.05, "workers": 2},
        {"max_epochs": 2, "hf_stream": 1},
        {"max_epochs": 2, "own_stream": True},
    ],
    ids=["plain", "accumulate-clip-workers", "hugging-face-stream", "own-iterable-dataset"],
)
def test_two_ranks_train_like_one_process_with_the_global_batch(tmp_path, config):
    run(tmp_path / "one", 1, global_batch=32, validate=True, **config).check_returncode()
    result = run(tmp_path / "two", 2, global_batch=32, validate=True, **config)
    seen = finished(result, tmp_path / "two", 2)
    assert_close_weights(tmp_path / "one", tmp_path / "two")
    assert_close_logs(logged(tmp_path / "one"), logged(tmp_path / "two"))
    # every rank decided on the same, reduced values
    assert seen[0]["callback_metrics"] == seen[1]["callback_metrics"]
    expected_batches = (
        float("inf") if config.get("hf_stream") or config.get("own_stream") else 8
    )  # a stream has no length
    assert seen[0]["num_training_batches"] == seen[1]["num_training_batches"] == expected_batches
    # Trainer.validate splits its loader too, and reduces: the 1-process metrics on both ranks
    alone = json.loads((tmp_path / "one" / "seen-0.json").read_text())["validated"][0]
    for rank in seen:
        assert rank["validate_batches"] == 2  # its half: 32 of the 64 samples at 16 per batch
        assert rank["validated"][0].keys() == alone.keys()
        assert all(abs(rank["validated"][0][k] - alone[k]) <= TOLERANCE for k in alone)


def test_only_rank_zero_writes_checkpoints_and_logs(tmp_path):
    """Every rank takes rank 0's checkpoint directory (ModelCheckpoint(dirpath=None) resolves it
    from each rank's own logger: here another root and another version on rank 1)."""
    result = run(
        tmp_path,
        2,
        global_batch=32,
        per_rank_roots=True,
        every_n_train_steps=4,
        logger_versions=[None, "elsewhere"],
    )
    seen = finished(result, tmp_path, 2)
    checkpoints = tmp_path / "rank0" / "logs" / "version_0" / "checkpoints"
    assert seen[0]["ckpt_dirpath"] == seen[1]["ckpt_dirpath"] == os.path.realpath(checkpoints)
    assert sorted(os.listdir(tmp_path / "rank0")) == ["logs"]
    assert len([p for p in os.listdir(checkpoints) if p.startswith("epoch=")]) == 6
    assert not (tmp_path / "rank1").exists(), list((tmp_path / "rank1").rglob("*"))
    assert (
        result.stdout.count("Trainer: finished") == 1
    )  # the summary and the progress too: rank 0 only


def test_resume_mid_epoch_and_mid_accumulation_under_two_ranks(tmp_path):
    """With dropout: each rank's key is saved and restored (NOTE [the run's key])."""
    config = {"global_batch": 32, "accumulate": 3, "every_n_train_steps": 1, "dropout": 0.2}
    finished(run(tmp_path / "whole", 2, max_epochs=3, **config), tmp_path / "whole", 2)
    cut = tmp_path / "cut"
    finished(run(cut, 2, max_steps=4, **config), cut, 2)
    state = json.loads(
        (cut / "logs" / "version_0" / "checkpoints" / "last" / "trainer_state.json").read_text()
    )
    assert len(state["mlx_key"]) == 2 and state["mlx_key"][0] != state["mlx_key"][1]
    for name in os.listdir(cut):
        if name.startswith("seen-"):
            os.remove(cut / name)
    seen = finished(run(cut, 2, max_epochs=3, ckpt_path="last", **config), cut, 2)
    assert seen[0]["global_step"] == seen[1]["global_step"] == 9
    # a new logger version: "last" is the newest of the earlier ones, on every rank
    first = os.path.realpath(cut / "logs" / "version_0" / "checkpoints")
    assert seen[0]["ckpt_path"] == seen[1]["ckpt_path"] == os.path.join(first, "last")
    assert seen[0]["ckpt_dirpath"] == seen[1]["ckpt_dirpath"] != first
    assert_close_weights(
        tmp_path / "whole", cut, tolerance=0.0
    )  # exact: the same sums in the same order
    whole = logged(tmp_path / "whole")
    resumed = [
        row for row in logged(cut) if not (row["step"] == "3" and row.get("largest_label_epoch"))
    ]
    assert_close_logs(whole, resumed)  # less the interrupted run's own epoch-end row


def test_resuming_mid_epoch_on_another_world_size_is_refused(tmp_path):
    config = {"global_batch": 32, "every_n_train_steps": 1}
    finished(run(tmp_path, 2, max_steps=3, **config), tmp_path, 2)
    result = run(tmp_path, 1, max_epochs=2, ckpt_path="last", **config)
    assert result.returncode != 0
    assert "written in the middle of an epoch by 2 process(es) and this run has 1" in result.stderr


def test_a_checkpoint_at_an_epochs_last_batch_resumes_on_any_world_size(tmp_path):
    """Saved after the update of the epoch's last batch (every_n_train_steps hits it), before
    the epoch's end hooks: it counts as an epoch's end, so one process resumes it."""
    config = {"global_batch": 32, "every_n_train_steps": 8}  # 8 batches per epoch on 2 ranks
    finished(run(tmp_path / "whole", 2, max_epochs=2, **config), tmp_path / "whole", 2)
    cut = tmp_path / "cut"
    finished(run(cut, 2, max_steps=8, **config), cut, 2)
    last = cut / "logs" / "version_0" / "checkpoints" / "last"
    assert os.path.realpath(last).endswith("epoch=0-step=8")
    os.remove(cut / "seen-0.json")
    result = run(cut, 1, max_epochs=2, ckpt_path="last", **config)
    assert finished(result, cut, 1)[0]["global_step"] == 16, result.stderr
    assert_close_weights(tmp_path / "whole", cut)  # as the 2-process run, within float rounding


@pytest.mark.parametrize(
    "message", ["failed on purpose", "lost its NCCL peer: Socket closed"], ids=["plain", "peer"]
)
def test_a_raising_rank_ends_every_rank_with_its_error(tmp_path, message):
    """The failing rank's own error stays as it is, even when it mentions a peer (relabelling is
    decided on the error's type and origin, distributed.explain_lost_peer); the other rank says
    that another rank stopped."""
    started = time.monotonic()
    result = run(
        tmp_path, 2, timeout=60, global_batch=32, fail_rank=1, fail_at=5, fail_message=message
    )
    elapsed = time.monotonic() - started
    text = result.stdout + result.stderr
    assert f"RuntimeError: rank 1 {message}" in text
    assert "rank 0 of 2: another rank stopped during training" in text
    assert "rank 1 of 2: another rank stopped" not in text
    assert not list(tmp_path.glob("seen-*.json"))  # neither rank went on
    assert elapsed < 60
    leftover = subprocess.run(
        ["pgrep", "-f", str(tmp_path)], capture_output=True, text=True
    ).stdout.split()
    assert not leftover, f"processes left behind: {leftover}"


@pytest.mark.parametrize("unsized", [False, True], ids=["sized", "unsized"])
def test_ranks_with_unequal_batch_counts_finish_together(tmp_path, unsized):
    result = run(tmp_path, 2, global_batch=32, unequal=[5, 3], unsized=unsized, max_epochs=2)
    seen = finished(result, tmp_path, 2)
    assert seen[0]["global_step"] == seen[1]["global_step"] == 6  # 3 batches per epoch on both
    assert "cannot split it across the 2 ranks" in result.stderr
    said = (  # not silent: the numbers, once (rank 0 knows them all when the loaders have lengths)
        "rank 0 of 2: its training loader still had batches when another rank's ended, after 3"
        if unsized
        else "the ranks' training loaders differ in length (5, 3 batches per epoch, rank 0 first)"
        ": every rank trains 3 per epoch"
    )
    assert result.stderr.count(said) == 1, result.stderr


def test_a_scheduler_style_launch_by_environment_variables(tmp_path):
    """What a SLURM script does without mlx.launch: MLX_RANK + MLX_HOSTFILE per process."""
    import socket

    ports = []
    for _ in range(2):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            ports.append(s.getsockname()[1])
    hostfile = tmp_path / "hosts.json"
    hostfile.write_text(json.dumps([[f"127.0.0.1:{port}"] for port in ports]))
    out = tmp_path / "two"
    out.mkdir()
    argument = json.dumps({"out": str(out), "global_batch": 32, "max_epochs": 2})
    procs = [
        subprocess.Popen(
            [sys.executable, str(SCRIPT), argument],
            cwd=HERE,
            text=True,
            env={**_env(), "MLX_RANK": str(rank), "MLX_HOSTFILE": str(hostfile)},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        for rank in range(2)
    ]
    outputs = [p.communicate(timeout=120)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    run(tmp_path / "one", 1, global_batch=32, max_epochs=2).check_returncode()
    assert_close_weights(tmp_path / "one", out)
