"""Backend outages: logging never waits on the backend, failures warn once (or raise with
strict=True), records are retried in order, and what is undelivered at the end is spooled
and can be replayed (NOTE [logger delivery])."""

from __future__ import annotations

import socket
import threading
import time
import warnings

import pytest

from mlx_audio.loggers import LoggerError, LoggerWarning, MLflowLogger, QueuedLogger, Record


class FlakyBackend(QueuedLogger):
    """A backend in this process whose availability the test switches (the real backends'
    outages are tested below and in the train tests)."""

    def __init__(self, spool_dir, strict=False, flush_timeout=2.0, hang=None):
        self.up = threading.Event()
        self.up.set()
        self.hang = hang
        self.received: list[Record] = []
        self.closed_with: str | None = None
        self._init_delivery(strict, flush_timeout, spool_dir)

    name = "flaky"
    version = "v0"

    def _deliver(self, record):
        if self.hang is not None:
            self.hang.wait()
        if not self.up.is_set():
            raise ConnectionError("backend down")
        self.received.append(record)

    def _close(self, status):
        if not self.up.is_set():
            raise ConnectionError("backend down")
        self.closed_with = status


def steps(records):
    return [r.step for r in records if r.kind == "metrics"]


def test_outage_then_recovery_delivers_everything_in_order_with_one_warning(tmp_path):
    backend = FlakyBackend(tmp_path)
    backend.log_hyperparams({"lr": 0.1})
    backend.log_metrics({"loss": 1.0}, step=0)
    backend.save()
    backend.up.clear()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        started = time.monotonic()
        for step in range(1, 40):
            backend.log_metrics({"loss": 1.0 / step}, step=step)
            time.sleep(0.01)
        assert time.monotonic() - started < 2.0  # never waits on the backend
    notes = [w for w in caught if issubclass(w.category, LoggerWarning)]
    assert len(notes) == 1 and "ConnectionError('backend down')" in str(notes[0].message)
    backend.up.set()
    backend.finalize("success")
    assert backend.undelivered is None and backend.closed_with == "success"
    assert steps(backend.received) == list(range(40)) and backend.received[0].kind == "hparams"


def test_finalize_is_bounded_and_spools_what_is_left_which_replays(tmp_path):
    backend = FlakyBackend(tmp_path, flush_timeout=1.0)
    backend.up.clear()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LoggerWarning)
        for step in range(25):
            backend.log_metrics({"loss": float(step), "acc": 0.5}, step=step)
        started = time.monotonic()
        backend.finalize("failed")
    assert time.monotonic() - started < 2.5
    report = backend.undelivered
    assert report and "25 records not delivered" in report and "steps 0-24" in report
    assert "ConnectionError" in report
    (spool,) = tmp_path.glob("undelivered-FlakyBackend-*.jsonl")
    assert str(spool) in report
    again = FlakyBackend(tmp_path)
    assert again.replay(spool) == 25
    again.finalize("success")
    assert steps(again.received) == list(range(25))
    assert again.received[3].values == {"loss": 3.0, "acc": 0.5}


def test_strict_raises_at_the_next_call(tmp_path):
    backend = FlakyBackend(tmp_path, strict=True)
    backend.up.clear()
    backend.log_metrics({"loss": 1.0}, step=0)
    deadline = time.monotonic() + 5
    with pytest.raises(LoggerError, match="backend down"):
        while time.monotonic() < deadline:
            backend.log_metrics({"loss": 1.0}, step=1)
            time.sleep(0.01)
    with pytest.raises(LoggerError, match="not delivered"):
        backend.finalize("failed")


def test_a_call_that_never_returns_is_reported_and_bounded(tmp_path):
    hang = threading.Event()
    backend = FlakyBackend(tmp_path, flush_timeout=0.5, hang=hang)
    backend._policy = type(backend._policy)(flush_timeout=0.5, call_timeout=0.2)
    backend.log_metrics({"loss": 1.0}, step=0)
    time.sleep(0.4)
    with pytest.warns(LoggerWarning, match="has not returned after 0.2 s"):
        backend.log_metrics({"loss": 2.0}, step=1)
    started = time.monotonic()
    backend.finalize("success")
    assert time.monotonic() - started < 1.5
    assert "2 records not delivered" in backend.undelivered
    hang.set()


def test_queue_is_bounded_and_drops_are_counted(tmp_path):
    backend = FlakyBackend(tmp_path, flush_timeout=0.5)
    backend._policy = type(backend._policy)(flush_timeout=0.5, max_pending=10)
    backend.up.clear()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LoggerWarning)
        for step in range(30):
            backend.log_metrics({"loss": 1.0}, step=step)
        backend.finalize("success")
    assert "10 records not delivered" in backend.undelivered
    assert "20 older records were dropped" in backend.undelivered


def test_a_record_in_flight_when_the_queue_overflows_is_not_counted_as_dropped(tmp_path):
    """The queue's oldest record may be in the backend's hands when a new one overflows the
    queue: if that call succeeds, the record was delivered, and the report counts it so."""
    hang = threading.Event()
    backend = FlakyBackend(tmp_path, hang=hang)
    backend._policy = type(backend._policy)(flush_timeout=2.0, max_pending=3, call_timeout=30.0)
    backend.log_metrics({"loss": 0.0}, step=0)
    while backend._in_flight_since is None:  # step 0 is in the backend's hands
        time.sleep(0.001)
    for step in range(1, 6):  # overflows the queue of 3 three times, step 0 first
        backend.log_metrics({"loss": 1.0}, step=step)
    hang.set()
    backend.finalize("success")
    assert steps(backend.received) == [0, 3, 4, 5]
    assert backend.undelivered.startswith("FlakyBackend: 2 records not delivered")  # 1 and 2


def test_logging_after_finalize_is_refused(tmp_path):
    backend = FlakyBackend(tmp_path)
    backend.finalize("success")
    with pytest.raises(RuntimeError, match="was finalized"):
        backend.log_metrics({"loss": 1.0}, step=0)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_mlflow_never_stalls_and_nothing_is_lost(tmp_path, mlflow_server):
    """MLflow's default retries (minutes against a closed port) run on the delivery thread."""
    from mlflow.tracking import MlflowClient

    logger = MLflowLogger(
        tracking_uri=f"http://127.0.0.1:{closed_port()}", spool_dir=tmp_path, flush_timeout=2.0
    )
    started = time.monotonic()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LoggerWarning)
        logger.log_hyperparams({"lr": 0.5})
        for step in range(50):
            logger.log_metrics({"loss": 1.0 / (step + 1)}, step=step)
        logged = time.monotonic() - started
        logger.finalize("success")
    total = time.monotonic() - started
    assert logged < 1.0 and total < 5.0, (logged, total)
    assert "51 records not delivered" in logger.undelivered
    (spool,) = tmp_path.glob("undelivered-MLflowLogger-*.jsonl")
    later = MLflowLogger(experiment_name="replayed", tracking_uri=mlflow_server)
    assert later.replay(spool) == 51
    later.finalize("success")
    assert later.undelivered is None
    client = MlflowClient(tracking_uri=mlflow_server)
    history = client.get_metric_history(later.run_id, "loss")
    assert [(m.step, m.value) for m in history] == [(s, 1.0 / (s + 1)) for s in range(50)]
    assert client.get_run(later.run_id).data.params == {"lr": "0.5"}
