"""What clusters do to data-parallel runs, on real ``mlx.launch --backend ring -n 2`` processes
(CPU): SIGTERM to one rank, to both with a skew, to the process group; a broken stdout; a
launcher that is gone; a stopped rank. Each run is ``faults_script.py``; every test kills its
process group at the end and checks that no process of it is left.

Preempted runs must leave a ``preempted-...`` checkpoint that resumes, on 2 ranks, to exactly the
weights of the uninterrupted run (one launch resumes every trial's checkpoint).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import mlx.core as mx
import numpy as np
import pytest

HERE = Path(__file__).parent
SCRIPT = HERE / "faults_script.py"
CKPT_DIR = Path(
    "logs", "version_0", "checkpoints"
)  # ModelCheckpoint(dirpath=None) under the CSV logger
LAUNCHER = Path(sys.executable).parent / "mlx.launch"
STEPS = 40  # per run; a paced run takes >= STEPS x 0.1 s, signals land within its first 2 s

pytestmark = pytest.mark.skipif(
    shutil.which("mlx.launch", path=str(LAUNCHER.parent)) is None,
    reason="mlx.launch is not installed next to this Python",
)


def _env() -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
    }


def _free_port() -> int:
    """A port p with p + 1 free too (the ring backend listens on one port per rank)."""
    for _ in range(50):
        with socket.socket() as a, socket.socket() as b:
            a.bind(("127.0.0.1", 0))
            port = a.getsockname()[1]
            try:
                b.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
            return port
    raise RuntimeError("no two adjacent free ports")


class Job:
    """One ``mlx.launch -n 2`` of the script in its own session (process group)."""

    def __init__(self, out: Path, stdout=None, **config) -> None:
        out.mkdir(parents=True, exist_ok=True)
        self.out = out
        self.log = out / "launcher.log"
        command = [
            str(LAUNCHER),
            "-n",
            "2",
            "--backend",
            "ring",
            "--starting-port",
            str(_free_port()),
            "--python",
            sys.executable,
            str(SCRIPT),
            json.dumps({"out": str(out), "max_steps": STEPS, **config}),
        ]
        with open(self.log, "w") as log:
            self.proc = subprocess.Popen(
                command,
                cwd=HERE,
                env=_env(),
                stdout=log if stdout is None else stdout,
                stderr=log,
                start_new_session=True,
            )
        self.pgid = self.proc.pid

    def ready(self, timeout: float = 90) -> list[int]:
        """The ranks' pids once both trained ``ready_at`` steps."""
        deadline = time.monotonic() + timeout
        paths = [self.out / f"ready-{rank}" for rank in range(2)]
        while not all(p.exists() for p in paths):
            assert self.proc.poll() is None, f"the job ended early:\n{self.text()}"
            assert time.monotonic() < deadline, f"the ranks never got going:\n{self.text()}"
            time.sleep(0.02)
        return [int(p.read_text()) for p in paths]

    def wait(self, timeout: float = 60) -> None:
        """The launcher and both ranks gone within ``timeout`` (else: killed, and the test fails)."""
        deadline = time.monotonic() + timeout
        while self.alive():
            if time.monotonic() > deadline:
                self.kill()
                pytest.fail(f"the job did not end within {timeout} s:\n{self.text()}")
            time.sleep(0.05)
        self.proc.wait()

    def alive(self) -> list[int]:
        """Processes of the job's group still running (zombies excepted)."""
        found = subprocess.run(["pgrep", "-g", str(self.pgid)], capture_output=True, text=True)
        pids = [int(p) for p in found.stdout.split()]
        return [p for p in pids if _state(p) not in ("Z", "")]

    def kill(self) -> None:
        try:
            os.killpg(self.pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        if self.proc.poll() is None:
            self.proc.wait(10)

    def text(self) -> str:
        return self.log.read_text(errors="replace")[-6000:] if self.log.exists() else ""

    def exits(self) -> list[str]:
        return [
            (self.out / f"exit-{r}").read_text() if (self.out / f"exit-{r}").exists() else "none"
            for r in range(2)
        ]

    def preempted(self) -> list[Path]:
        root = self.out / CKPT_DIR
        return sorted(root.glob("preempted-*")) if root.exists() else []


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return ""


@pytest.fixture
def jobs():
    """Makes Jobs; at the end every one's process group is killed, and none may be left."""
    made: list[Job] = []

    def make(out: Path, **config) -> Job:
        made.append(Job(out, **config))
        return made[-1]

    yield make
    left = {job.out.name: job.alive() for job in made}
    for job in made:
        job.kill()
    assert not any(left.values()), f"processes left behind: {left}"


def _kill(pid: int, signum: int) -> bool:
    try:
        os.kill(pid, signum)
        return True
    except ProcessLookupError:
        return False


def weights(out: Path) -> dict[str, np.ndarray]:
    return {k: np.array(v) for k, v in mx.load(str(out / "weights.safetensors")).items()}


def resume_all(jobs, out: Path, checkpoints: dict[str, Path]) -> dict[str, float]:
    """Resume every checkpoint on 2 ranks (one launch, after a run from scratch, the reference);
    the largest weight difference of each from the reference."""
    plan = [[None, str(out / "reference")]]
    plan += [[str(c), str(out / f"resumed-{i}")] for i, c in enumerate(checkpoints.values())]
    job = jobs(out, resume=plan)
    job.wait(240)
    reference = weights(out / "reference")
    differences = {}
    for i, name in enumerate(checkpoints):
        path = out / f"resumed-{i}"
        assert (path / "weights.safetensors").exists(), f"{name} did not resume:\n{job.text()}"
        resumed = weights(path)
        differences[name] = max(float(np.abs(resumed[k] - reference[k]).max()) for k in reference)
    return differences


# -- 1. SIGTERM on any rank, in any order, saves the preemption checkpoint --------------------------
TRIALS: dict[str, list[tuple[int | str, float]]] = {
    "rank 0 alone": [(0, 0.0)],
    "rank 1 alone": [(1, 0.0)],
    "process group": [("group", 0.0)],
}
for _first in (0, 1):
    for _skew in (0, 20, 200, 1000):
        TRIALS[f"rank {_first}, rank {1 - _first} {_skew} ms later"] = [
            (_first, 0.0),
            (1 - _first, _skew / 1000),
        ]


@pytest.mark.timeout(600)
def test_sigterm_to_any_rank_saves_a_checkpoint_that_resumes_exactly(tmp_path, jobs):
    outcomes: dict[str, dict] = {}
    checkpoints: dict[str, Path] = {}
    for n, (name, signals) in enumerate(TRIALS.items()):
        job = jobs(tmp_path / f"trial-{n}", sleep=0.1)
        pids = job.ready()
        for target, delay in signals:
            time.sleep(delay)
            if target == "group":
                os.killpg(job.pgid, signal.SIGTERM)
            else:
                _kill(pids[target], signal.SIGTERM)
        job.wait(60)
        saved = job.preempted()
        last = job.out / CKPT_DIR / "last"
        outcomes[name] = {
            "exits": job.exits(),
            "preempted": [p.name for p in saved],
            "last": os.path.realpath(last) if last.exists() else None,
        }
        if len(saved) == 1:
            checkpoints[name] = saved[0]
    differences = resume_all(jobs, tmp_path / "resume", checkpoints)
    for name, outcome in outcomes.items():
        outcome["resumed"] = differences.get(name)
    table = "\n".join(f"{name}: {outcome}" for name, outcome in outcomes.items())
    print(table)
    for name, outcome in outcomes.items():
        assert len(outcome["preempted"]) == 1, table
        assert outcome["last"] == os.path.realpath(checkpoints[name]), table
        assert outcome["exits"] == ["143", "143"], table
        assert outcome["resumed"] == 0.0, table


def wait_for(path: Path, job: Job, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert job.proc.poll() is None and time.monotonic() < deadline, (
            f"{path.name} never appeared:\n{job.text()}"
        )
        time.sleep(0.02)


def gone(pid: int, timeout: float) -> float | None:
    """Seconds until ``pid`` ended (None: still running after ``timeout``)."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if _state(pid) in ("", "Z"):
            return time.monotonic() - started
        time.sleep(0.05)
    return None


def logged_steps(out: Path) -> list[int]:
    import csv

    rows = csv.DictReader(open(out / "logs" / "version_0" / "metrics.csv"))
    return [int(row["step"]) for row in rows if row.get("train_loss")]


# -- 2. the save runs under the handler: a second SIGTERM is noted, the files get written ---------
@pytest.mark.timeout(180)
def test_a_second_sigterm_while_rank_0_saves_is_noted_and_the_save_completes(tmp_path, jobs):
    job = jobs(tmp_path, sleep=0.1, slow_save=2.0)
    pids = job.ready()
    _kill(pids[1], signal.SIGTERM)  # the stop; rank 0 then takes 2 s to write the checkpoint
    wait_for(tmp_path / "saving-0", job)
    _kill(pids[0], signal.SIGTERM)  # as mlx.launch or a scheduler's second round would
    _kill(pids[1], signal.SIGTERM)
    job.wait(60)
    saved = job.preempted()
    assert len(saved) == 1, job.text()
    assert job.exits() == ["143", "143"], job.text()
    assert "SIGTERM received again; still stopping" in job.text()
    step = int(saved[0].name.rsplit("=", 1)[1])
    assert logged_steps(tmp_path)[-1] == step - 1  # the CSV logger's rows up to the stop (0-based)


# -- 3. a broken stdout never kills the save -----------------------------------------------------
@pytest.mark.timeout(180)
def test_a_sigterm_with_stdout_gone_still_saves(tmp_path):
    """Two ranks started as a scheduler does (MLX_RANK + MLX_HOSTFILE, no launcher), each with
    its stdout a pipe whose reader is gone when the SIGTERM comes: status lines are dropped,
    the checkpoint is written, both exit 143 (Python's own flush at exit does not turn it
    into 120)."""
    port = _free_port()
    hostfile = tmp_path / "hosts.json"
    hostfile.write_text(json.dumps([[f"127.0.0.1:{port}"], [f"127.0.0.1:{port + 1}"]]))
    argument = json.dumps({"out": str(tmp_path), "max_steps": STEPS, "sleep": 0.1})
    procs: list[subprocess.Popen] = []
    try:  # every rank started is killed at the end, whatever fails
        for rank in range(2):
            procs.append(
                subprocess.Popen(
                    [sys.executable, str(SCRIPT), argument],
                    cwd=HERE,
                    env={**_env(), "MLX_RANK": str(rank), "MLX_HOSTFILE": str(hostfile)},
                    stdout=subprocess.PIPE,
                    stderr=open(tmp_path / f"stderr-{rank}", "w"),
                    start_new_session=True,
                )
            )
        deadline = time.monotonic() + 90
        while not all((tmp_path / f"ready-{r}").exists() for r in range(2)):
            assert time.monotonic() < deadline and all(p.poll() is None for p in procs)
            time.sleep(0.02)
        for proc in procs:
            proc.stdout.close()  # the reader is gone: every write to stdout is a broken pipe
        procs[1].send_signal(signal.SIGTERM)  # rank 0 learns of it in the step, and says so
        codes = [proc.wait(60) for proc in procs]
    finally:
        for proc in procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
    errors = [(tmp_path / f"stderr-{r}").read_text() for r in range(2)]
    assert codes == [143, 143], errors
    assert len(list((tmp_path / CKPT_DIR).glob("preempted-*"))) == 1
    assert not any("Traceback" in e or "BrokenPipe" in e for e in errors), errors


# -- 4. a launcher that is gone: its ranks save and exit -------------------------------------------
@pytest.mark.timeout(180)
def test_ranks_whose_launcher_is_gone_save_and_exit(tmp_path, jobs):
    job = jobs(tmp_path, sleep=0.1)
    job.ready()
    os.kill(job.proc.pid, signal.SIGTERM)  # mlx.launch alone: orphans with a broken stdout
    job.wait(60)
    assert len(job.preempted()) == 1, job.text()
    assert job.exits() == ["143", "143"], job.text()


# -- 5. a stopped peer ends the job, and SIGTERM / Ctrl-C are honoured while waiting for it -------
@pytest.mark.timeout(180)
def test_a_stopped_rank_ends_the_other_after_collective_timeout(tmp_path, jobs):
    job = jobs(tmp_path, sleep=0.1, trainer={"collective_timeout": 5})
    pids = job.ready()
    os.kill(pids[1], signal.SIGSTOP)
    took = gone(pids[0], 40)
    os.kill(pids[1], signal.SIGCONT)  # mlx.launch waits for a stopped rank forever
    job.wait(30)
    assert took is not None and took < 20, job.text()
    assert re.search(
        r"rank 0 of 2 waited \d+ s for rank 1 in the train step at step \d+ ", job.text()
    )
    assert "longer than Trainer(collective_timeout=5)" in job.text()
    assert "Node with rank 0 exited with code 1" in job.text()


@pytest.mark.timeout(180)
@pytest.mark.parametrize(
    "signals, code, said",
    [([signal.SIGTERM], 143, "SIGTERM came"), ([signal.SIGINT] * 2, 130, "Ctrl-C came twice")],
    ids=["sigterm", "ctrl-c-twice"],
)
def test_sigterm_and_ctrl_c_end_a_rank_waiting_for_a_stopped_peer(
    tmp_path, jobs, signals, code, said
):
    job = jobs(tmp_path, sleep=0.1)  # the default collective_timeout: 30 minutes
    pids = job.ready()
    os.kill(pids[1], signal.SIGSTOP)
    time.sleep(1.0)  # rank 0 waits in its next step
    for signum in signals:
        os.kill(pids[0], signum)
        time.sleep(0.2)
    took = gone(pids[0], 40)  # a grace of twice the longest wait so far + 5 s: seconds here
    os.kill(pids[1], signal.SIGCONT)
    job.wait(30)
    assert took is not None and took < 30, job.text()
    assert said in job.text() and "for rank 1 in the train step" in job.text(), job.text()
    assert f"Node with rank 0 exited with code {code}" in job.text()


# -- 7. each rank draws its own random numbers (dropout) -------------------------------------------
@pytest.mark.timeout(180)
def test_each_rank_draws_its_own_dropout_masks(tmp_path, jobs):
    job = jobs(tmp_path, masks=True, max_steps=5)
    job.wait(120)
    masks = [json.loads((tmp_path / f"masks-{r}.json").read_text()) for r in range(2)]
    assert len(masks[0]) == len(masks[1]) == 5, job.text()
    assert all(a != b for a, b in zip(*masks))  # every step: rank 0's mask is not rank 1's
