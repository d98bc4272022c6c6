"""Backend calls off the training loop: what a logger does when its backend fails.

NOTE [logger delivery]
``log_metrics``/``log_hyperparams`` of a :class:`QueuedLogger` only convert the values and
append a :class:`Record` to an in-memory queue; one background thread per logger delivers
the records to the backend in order. The training loop therefore never waits on a backend:

* a failing call (an exception, MLflow's own HTTP retries included) marks the backend *down*;
  the record stays first in the queue and is retried after ``retry_interval`` seconds, the
  wait doubling up to ``max_retry_interval``; when a retry succeeds, everything queued
  is delivered in order. A call that has not returned after ``call_timeout`` seconds counts
  as an outage too (it cannot be interrupted; the records behind it wait);
* the first outage is reported once with the backend's error (a :class:`LoggerWarning`);
  with ``strict=True`` it raises :class:`LoggerError` from the next logging call instead;
* the queue keeps at most ``max_pending`` records; beyond that the oldest metrics are
  dropped and counted (about 1 KB each, so 100,000 records bound the memory at ~100 MB);
* ``finalize`` waits for the queue and the backend's own close while records get through,
  but stops when the backend failed its last try or nothing got through for
  ``flush_timeout`` seconds (default 10); whatever is still undelivered is written to a JSON-lines *spool* file (in
  ``spool_dir``, else the current directory, else the system's temporary directory) and
  :attr:`QueuedLogger.undelivered` says how many records, why and where. Replay a spool
  into the backend with :meth:`QueuedLogger.replay` once it is reachable again.

Delivery is at least once: a call that failed after the backend stored its data is repeated.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
import time
import warnings
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .base import Logger, flatten_params, scalars


class LoggerWarning(UserWarning):
    """A logging backend failed; training goes on and the records are kept."""


class LoggerError(RuntimeError):
    """A logging backend failed and the logger was created with ``strict=True``."""


@dataclass(frozen=True)
class Record:
    """One logging call: ``kind`` is ``"metrics"`` (with ``step``) or ``"hparams"``."""

    kind: str
    values: dict[str, Any]
    step: int | None = None
    time: float = field(default_factory=time.time)

    def to_json(self) -> str:
        return json.dumps(
            {"kind": self.kind, "step": self.step, "time": self.time, "values": self.values}
        )

    @classmethod
    def from_json(cls, line: str) -> Record:
        data = json.loads(line)
        return cls(data["kind"], data["values"], data.get("step"), data.get("time", time.time()))


@dataclass(frozen=True)
class DeliveryPolicy:
    """How long and how often a logger tries its backend (see NOTE [logger delivery])."""

    strict: bool = False
    flush_timeout: float = 10.0
    call_timeout: float = 30.0
    retry_interval: float = 1.0
    max_retry_interval: float = 30.0
    max_pending: int = 100_000

    def __post_init__(self) -> None:
        for name in ("flush_timeout", "call_timeout", "retry_interval", "max_retry_interval"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0 seconds, got {getattr(self, name)!r}")
        if self.max_pending < 1:
            raise ValueError(f"max_pending must be >= 1, got {self.max_pending!r}")


class QueuedLogger(Logger):
    """A :class:`Logger` whose backend calls run on a background thread.

    Subclasses implement ``_deliver(record)`` (one call to the backend; raise on failure) and
    ``_close(status)`` (end the backend's run), both run on that thread, and call
    ``_init_delivery(...)`` from ``__init__``.
    """

    _policy: DeliveryPolicy
    _spool_dir: str | None

    def _init_delivery(
        self, strict: bool, flush_timeout: float, spool_dir: str | os.PathLike | None
    ) -> None:
        self._policy = DeliveryPolicy(strict=strict, flush_timeout=flush_timeout)
        self._spool_dir = os.fspath(spool_dir) if spool_dir is not None else None
        self._pending: deque[Record] = deque()
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None
        self._closing: str | None = None
        self._abandoned = False
        self._closed = threading.Event()
        self._retry_now = threading.Event()  # finalize() cuts the wait before a retry short
        self._close_error: BaseException | None = None
        self._error: BaseException | None = None  # the current outage, None while delivering
        self._first_error: BaseException | None = None
        self._in_flight_since: float | None = None
        self._warned = False
        self._dropped = 0
        self._flight: Record | None = None  # the record the backend has now (delivery thread)
        self._flight_dropped = False  # ... and it was dropped from a full queue meanwhile
        self._delivered = 0
        self._failures = 0
        self._undelivered: str | None = None

    # -- hooks for subclasses -------------------------------------------------------------------
    def _deliver(self, record: Record) -> None:
        raise NotImplementedError

    def _close(self, status: str) -> None:
        raise NotImplementedError

    def _before_first_record(self) -> None:
        """Runs on the caller's thread before the first record is queued (e.g. to warn)."""

    # -- the Logger protocol -------------------------------------------------------------------
    def log_hyperparams(self, params: Mapping[str, Any] | Any) -> None:
        if self.is_writer:
            self._submit(Record("hparams", flatten_params(params)))

    def log_metrics(self, metrics: Mapping[str, Any], step: int) -> None:
        step = self._check_step(step)
        values = scalars(metrics)
        if self.is_writer:
            self._submit(Record("metrics", values, step))

    def save(self) -> None:
        """Wait (at most ``flush_timeout`` seconds) until everything queued is delivered."""
        deadline = time.monotonic() + self._policy.flush_timeout
        with self._wake:
            while self._pending and time.monotonic() < deadline and self._error is None:
                self._wake.wait(0.05)
        self._check_health()

    def finalize(self, status: str = "success") -> None:
        """Deliver what is queued and end the backend's run, waiting at most ``flush_timeout``
        seconds; what is left goes to a spool file named by :attr:`undelivered`."""
        self._check_status(status)
        with self._wake:
            if self._closing is not None:
                return
            self._closing = status
            self._wake.notify_all()
        self._retry_now.set()
        self._start()
        self._wait_for_delivery()
        with self._wake:
            self._abandoned = not self._closed.is_set()
            left = list(self._pending)
            self._pending.clear()
        if left or self._dropped:
            self._undelivered = self._spool(left)
        elif self._close_error is not None:
            self._undelivered = f"{type(self).__name__}: every record was delivered, but ending the run failed: {self._close_error!r}"
        if self._policy.strict and self._undelivered:
            raise LoggerError(self._undelivered)

    def _wait_for_delivery(self) -> None:
        """Until everything is delivered, the backend failed its last try, or no record got
        through for ``flush_timeout`` seconds (a slow but working backend is waited for)."""
        failures = self._failures
        delivered = self._delivered
        deadline = time.monotonic() + self._policy.flush_timeout
        while not self._closed.wait(0.02) and time.monotonic() < deadline:
            if self._error is not None and (self._policy.strict or self._failures > failures):
                return
            if self._delivered != delivered:
                delivered = self._delivered
                deadline = time.monotonic() + self._policy.flush_timeout

    def replay(self, path: str | os.PathLike) -> int:
        """Log the records of a spool file (written by an earlier run's ``finalize``) again;
        returns how many. Call :meth:`finalize` afterwards as usual."""
        count = 0
        with open(path) as f:
            for line in f:
                if line.strip():
                    self._submit(Record.from_json(line))
                    count += 1
        return count

    # -- the caller's side -----------------------------------------------------------------------
    def _submit(self, record: Record) -> None:
        self._check_health()
        with self._wake:
            if self._closing is not None:
                raise RuntimeError(
                    f"{type(self).__name__} was finalized; create a new logger to log again"
                )
            if self._thread is None:
                self._before_first_record()
            if len(self._pending) >= self._policy.max_pending:
                if self._pending.popleft() is self._flight:
                    self._flight_dropped = True  # counted back if its call succeeds
                self._dropped += 1
            self._pending.append(record)
            self._wake.notify_all()
        self._start()

    def _check_health(self) -> None:
        error = self._error
        stuck = self._in_flight_since
        if (
            error is None
            and stuck is not None
            and time.monotonic() - stuck > self._policy.call_timeout
        ):
            error = TimeoutError(
                f"a call to the backend has not returned after {self._policy.call_timeout:g} s"
            )
        if error is None:
            return
        message = f"{type(self).__name__}: the backend failed: {error!r}"
        if self._policy.strict:
            raise LoggerError(f"{message} (strict=True stops the run)") from error
        if not self._warned:
            self._warned = True
            warnings.warn(
                f"{message}. Training goes on: records are queued and retried in the background "
                f"(up to {self._policy.max_pending} kept); what is still undelivered at the end is "
                "saved to a spool file. Pass strict=True to stop the run on a logger failure.",
                LoggerWarning,
                stacklevel=4,
            )

    def _start(self) -> None:
        with self._wake:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._delivery_loop, name=f"{type(self).__name__}-delivery", daemon=True
                )
                self._thread.start()

    # -- the delivery thread ---------------------------------------------------------------------
    def _delivery_loop(self) -> None:
        wait = self._policy.retry_interval
        while True:
            with self._wake:
                while not self._pending and self._closing is None:
                    self._wake.wait()
                if self._abandoned:
                    return
                if not self._pending:
                    break
                record = self._pending[0]
                self._in_flight_since = time.monotonic()
                self._flight, self._flight_dropped = record, False
            try:
                self._deliver(record)
            except Exception as error:  # the backend's failure, whatever its type
                with self._wake:
                    self._in_flight_since = None
                    self._error = error
                    self._failures += 1
                    self._first_error = self._first_error or error
                    if self._policy.strict:
                        return
                if self._retry_now.wait(wait):  # finalize() asks for one last try at once
                    self._retry_now.clear()
                wait = min(wait * 2, self._policy.max_retry_interval)
                continue
            with self._wake:
                self._in_flight_since = None
                if self._pending and self._pending[0] is record:
                    self._pending.popleft()
                if self._flight_dropped:  # dropped while in flight, and delivered after all
                    self._dropped -= 1
                self._flight, self._flight_dropped = None, False
                self._delivered += 1
                self._error = None
                self._wake.notify_all()
            wait = self._policy.retry_interval
        try:
            self._close(self._closing or "success")
        except Exception as error:
            self._close_error = error
        self._closed.set()

    def _requeue(self, records: list[Record], error: BaseException, dropped: int = 0) -> None:
        """Put records the backend took but then lost back at the front of the queue (the
        delivery thread's side): they are retried, and spooled by ``finalize`` if never taken;
        ``dropped`` older ones were lost for good."""
        with self._wake:
            self._dropped += dropped
            self._pending.extendleft(reversed(records))
            while len(self._pending) > self._policy.max_pending:
                self._pending.popleft()
                self._dropped += 1
            self._error = error
            self._first_error = self._first_error or error
            self._wake.notify_all()

    def _spool(self, records: list[Record]) -> str:
        name = type(self).__name__
        reason = repr(
            self._error
            or self._first_error
            or TimeoutError(f"not delivered within flush_timeout={self._policy.flush_timeout:g} s")
        )
        lost = (
            f"; {self._dropped} older records were dropped (more than max_pending={self._policy.max_pending} queued)"
            if self._dropped
            else ""
        )
        if not records:
            return f"{name}: {self._dropped} records not delivered ({reason}){lost}"
        path = write_spool(
            spool_name(name, self.version, "jsonl"),
            [record.to_json() + "\n" for record in records],
            self._spool_dir,
        )
        if path is None:
            return f"{name}: {len(records)} records not delivered ({reason}) and could not be saved anywhere{lost}"
        steps = [r.step for r in records if r.step is not None]
        span = f", steps {min(steps)}-{max(steps)}" if steps else ""
        return (
            f"{name}: {len(records)} records not delivered ({reason}{span}){lost}; saved to {path} "
            f"(send them later with {name}(...).replay({path!r}))"
        )


def spool_name(logger: str, version: object, extension: str) -> str:
    """``undelivered-<Logger>-<version>-<pid>-<time>.<extension>``."""
    version = "run" if version is None else version
    return f"undelivered-{logger}-{version}-{os.getpid()}-{int(time.time())}.{extension}"


def write_spool(filename: str, lines: list[str], spool_dir: str | None) -> str | None:
    """Write ``lines`` to ``filename`` in ``spool_dir``, else the working directory, else the
    system's temporary directory (the first that works, synced); its path, or ``None``."""
    for folder in (spool_dir or os.getcwd(), tempfile.gettempdir()):
        path = os.path.join(folder, filename)
        try:
            os.makedirs(folder, exist_ok=True)
            with open(path, "w", newline="") as f:
                f.writelines(lines)
                f.flush()
                os.fsync(f.fileno())
        except OSError:
            continue
        return path
    return None
