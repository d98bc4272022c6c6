"""Logger outages during a real fit: a disk that fills up under TensorBoard and CSV, an MLflow
server killed mid-run and started again. The run finishes without stalling, and every metric
is delivered or kept in the local record (NOTE [logger delivery] in mlx_audio.loggers)."""

from __future__ import annotations

import csv
import errno
import logging
import os
import subprocess
import time
import warnings

import pytest
from loggers_testing import tensorboard_scalars
from train_testing import TinyClassifier, blobs

from mlx_audio.data import DataLoader
from mlx_audio.loggers import CSVLogger, LoggerWarning, MLflowLogger, Record, TensorBoardLogger
from mlx_audio.train import Trainer
from mlx_audio.train.callbacks import Callback

STEPS = 160  # 2 epochs of 80 batches, logged at every step (each page of the disk holds ~90 rows)


@pytest.fixture
def tiny_disk(tmp_path):
    """A 1 MiB tmpfs of our own (root can mount one; CI runs as root)."""
    mount = tmp_path / "tiny"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=True)


def fill(folder) -> str:
    """Write a file until the disk refuses more."""
    path = os.path.join(folder, "filler")
    with open(path, "wb", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * 4096)
        except OSError as error:
            assert error.errno == errno.ENOSPC
    return path


class Timeline(Callback):
    """Runs ``actions[step]`` after that step and records each step's wall-clock time."""

    def __init__(self, actions, pause=0.0):
        self.actions = actions
        self.pause = pause
        self.step_times: list[float] = []
        self._last = None

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        now = time.monotonic()
        if self._last is not None:
            self.step_times.append(now - self._last - self.pause)
        action = self.actions.get(trainer.global_step)
        if action is not None:
            action(trainer)
        time.sleep(self.pause)
        self._last = time.monotonic()


class WideRows(Callback):
    """Logs eight more values at each step: a CSV row then takes ~150 bytes whatever the loss's
    digits, so the CSV logger's page of the full disk fills within ~30 steps (with only the
    loss and accuracy, a row can be short enough that a page outlasts the disk-full window)."""

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        for i in range(8):
            module.log(f"wide_{i}", 0.1234567890123 + i)


def fit(root, loggers, timeline, max_epochs=2, max_steps=-1, extra=()):
    trainer = Trainer(
        max_epochs=max_epochs,
        max_steps=max_steps,
        seed=0,
        default_root_dir=str(root),
        enable_progress_bar=False,
        enable_checkpointing=False,
        log_every_n_steps=1,
        logger=loggers,
        callbacks=[timeline, *extra],
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        started = time.monotonic()
        trainer.fit(
            TinyClassifier(total_steps=STEPS), DataLoader(blobs(640), batch_size=8, shuffle=True)
        )
        took = time.monotonic() - started
    return took, [w for w in caught if issubclass(w.category, LoggerWarning)]


def csv_losses(path) -> dict[int, float]:
    with open(path, newline="") as f:
        return {
            int(r["step"]): float(r["train_loss"]) for r in csv.DictReader(f) if r.get("train_loss")
        }


TRIALS = range(3)


@pytest.mark.parametrize("trial", TRIALS)
def test_disk_fills_mid_run_then_frees_and_nothing_is_lost(tiny_disk, tmp_path, caplog, trial):
    state = {}
    actions = {
        10: lambda t: state.update(filler=fill(tiny_disk)),
        130: lambda t: os.remove(state["filler"]),
    }
    timeline = Timeline(actions, pause=0.01)
    loggers = [
        CSVLogger(tiny_disk, name="csv"),
        TensorBoardLogger(tiny_disk, name="tb", spool_dir=tmp_path),
    ]
    took, notes = fit(tmp_path, loggers, timeline, extra=[WideRows()])
    assert {str(n.message).split(":")[0] for n in notes} == {
        "CSVLogger",
        "TensorBoardLogger",
    }  # once each
    assert max(timeline.step_times) < 1.0 and took < 30
    written = csv_losses(loggers[0].metrics_file)
    assert sorted(written) == list(range(STEPS))
    events = dict(tensorboard_scalars(loggers[1].log_dir)["train_loss"])
    assert sorted(events) == list(range(STEPS))
    assert all(abs(events[s] - written[s]) < 1e-6 for s in written)
    assert loggers[0].undelivered is None and loggers[1].undelivered is None
    assert "not delivered" not in caplog.text


@pytest.mark.parametrize("trial", TRIALS)
def test_disk_stays_full_and_every_metric_is_on_disk_or_spooled(tiny_disk, tmp_path, caplog, trial):
    timeline = Timeline({10: lambda t: fill(tiny_disk)})
    loggers = [
        CSVLogger(tiny_disk, name="csv"),
        TensorBoardLogger(tiny_disk, name="tb", spool_dir=tmp_path, flush_timeout=2),
    ]
    took, notes = fit(tmp_path, loggers, timeline, extra=[WideRows()])
    assert len(notes) == 2 and max(timeline.step_times) < 1.0 and took < 30
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(m.startswith("Trainer: CSVLogger:") for m in warned)
    assert any(m.startswith("Trainer: TensorBoardLogger:") for m in warned)
    fallback = loggers[0].undelivered.split("saved to ")[1]
    assert sorted(csv_losses(fallback)) == list(range(STEPS))
    os.remove(fallback)
    written = {s for s, _ in tensorboard_scalars(loggers[1].log_dir).get("train_loss", [])}
    (spool,) = tmp_path.glob("undelivered-TensorBoardLogger-*.jsonl")
    spooled = {
        r.step
        for r in map(Record.from_json, spool.read_text().splitlines())
        if "train_loss" in r.values
    }
    assert written | spooled == set(range(STEPS)) and 10 < len(spooled)


def test_mlflow_server_killed_mid_run_and_restarted(tmp_path, monkeypatch, mlflow_server_process):
    from mlflow.tracking import MlflowClient

    # Each attempt fails within about a second; our retries (1, 2, 4, ... s) take over.
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
    server = mlflow_server_process  # the session's server, killed and restarted on its port
    try:
        state = {"back": None}

        def kill_and_restart(trainer):
            server.stop(9)
            server.start()

        def watch(trainer):
            if state["back"] is None and server.healthy():
                state["back"] = trainer.global_step
            if state["back"] is not None and trainer.global_step >= state["back"] + 20:
                trainer.should_stop = True

        actions = {5: kill_and_restart} | {step: watch for step in range(6, 100_000)}
        # ~5 steps a second: the server's restart (20-30 s here) leaves ~100 records queued, all
        # delivered one call at a time after it (at 0.05 s a step: ~400, 25 s of delivering)
        timeline = Timeline(actions, pause=0.2)
        logger = MLflowLogger(experiment_name="outage", tracking_uri=server.url, spool_dir=tmp_path)
        local = CSVLogger(tmp_path, name="csv")
        took, notes = fit(tmp_path, [local, logger], timeline, max_epochs=None, max_steps=100_000)
        assert (
            state["back"] is not None
            and len(notes) == 1
            and "MLflowLogger" in str(notes[0].message)
        )
        assert max(timeline.step_times) < 1.0, max(timeline.step_times)
        assert logger.undelivered is None
        client = MlflowClient(tracking_uri=server.url)
        history = {m.step: m.value for m in client.get_metric_history(logger.run_id, "train_loss")}
        assert history == pytest.approx(csv_losses(local.metrics_file))
        assert client.get_run(logger.run_id).info.status == "FINISHED"
    finally:  # left running for the session's other tests
        if server.process is None or server.process.poll() is not None:
            server.stop()
            server.start()
        server.wait_healthy()
