"""The watchdog thread of a data-parallel ``fit``: a wait on the other ranks that outlasts
``Trainer(collective_timeout=...)``, a SIGTERM or Ctrl-C while the main thread is stuck in such a
wait, and a launcher that is gone.

NOTE [watchdog]: MLX's collectives block in C++ (NOTE [collective waits] in distributed.py): a
rank whose peer is stopped (SIGSTOP, a debugger, a hung device) waits forever, and Python runs
no signal handler meanwhile, so SIGTERM and Ctrl-C would do nothing. Nothing can interrupt the
main thread there, so this thread watches it and, when a wait must end, logs why -- the step, the
wait and the rank it waited for -- and ends the process with ``os._exit`` (no checkpoint: the
ranks cannot agree on one without the stuck peer; the last one written stays):

- a wait longer than ``collective_timeout``: status 1;
- a SIGTERM (or a first Ctrl-C) and then no return from the wait within a grace of twice the
  longest wait of the run so far plus 5 s (a live peer answers within about one step): status
  143 (130); once every rank has agreed to stop (the save of a stop), only the timeout applies;
- a second Ctrl-C and no return within 1 s: status 130 at once.

It sees the signals through ``signal.set_wakeup_fd`` (the C-level handler writes each signal's
number to a pipe even while the main thread is blocked); the Python handlers still run when the
main thread returns. It also checks the parent process: when it changes (``mlx.launch`` killed:
the rank is an orphan, its stdout a broken pipe) the rank sends itself SIGTERM, so it saves and
exits like a preempted one. It runs only with several processes, in ``fit``, ``validate`` and
``test`` (one process needs none, and a ``nohup`` run outlives its shell on purpose).
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import threading
import time
from typing import TYPE_CHECKING, Any

from . import distributed
from ._status import warning

if TYPE_CHECKING:
    from .trainer import Trainer

_TICK = 0.25  # seconds between checks


class Watchdog:
    def __init__(self, trainer: Trainer) -> None:
        self.trainer = trainer
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._fds: tuple[int, int] | None = None
        self._previous_fd = -1
        self.parent = 0
        self.signalled: float | None = None  # when the first SIGTERM / Ctrl-C came
        self.urgent: float | None = None  # when the second Ctrl-C came
        self.code = 0
        self.interrupts = 0

    def __enter__(self) -> Watchdog:
        if (
            distributed.world_size() == 1
            or threading.current_thread() is not threading.main_thread()
        ):
            return self
        read, write = os.pipe()
        os.set_blocking(read, False)
        os.set_blocking(write, False)
        self._fds = (read, write)
        self._previous_fd = signal.set_wakeup_fd(write, warn_on_full_buffer=False)
        self.parent = os.getppid()
        self.signalled = self.urgent = None
        self.code = self.interrupts = 0
        distributed.wait.longest = 0.0
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="mlx-audio-watchdog", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._thread is None or self._fds is None:
            return
        self._stop.set()
        with contextlib.suppress(BlockingIOError):
            os.write(self._fds[1], b"\0")  # wakes the thread (0 is no signal)
        self._thread.join()
        self._thread = None
        signal.set_wakeup_fd(self._previous_fd)
        for fd in self._fds:
            os.close(fd)
        self._fds = None

    def _run(self) -> None:
        assert self._fds is not None
        while not self._stop.is_set():
            ready, _, _ = select.select([self._fds[0]], [], [], _TICK)
            if ready:
                with contextlib.suppress(BlockingIOError):
                    for signum in os.read(self._fds[0], 64):
                        self._signal(signum)
            self._check_parent()
            self._check_wait()

    def _signal(self, signum: int) -> None:
        if signum in (signal.SIGTERM, signal.SIGHUP):
            self.code = 143
        elif signum == signal.SIGINT:
            self.interrupts += 1
            self.code = self.code or 130
        else:
            return
        now = time.monotonic()
        self.signalled = self.signalled or now
        if self.interrupts >= 2:  # "press again to stop at once": 1 s to leave the wait
            self.urgent = self.urgent or now

    def _check_parent(self) -> None:
        if self.parent > 1 and os.getppid() != self.parent:
            warning(
                f"Trainer: rank {distributed.global_rank()}: its launcher (pid {self.parent}) is "
                "gone; taking that as SIGTERM: saving a checkpoint, then exiting."
            )
            self.parent = 0
            os.kill(os.getpid(), signal.SIGTERM)

    def _grace(self) -> float:
        return 2 * distributed.wait.longest + 5.0

    def _check_wait(self) -> None:
        current = distributed.wait.current
        if current is None:
            return
        what, since = current
        now = time.monotonic()
        timeout = self.trainer.collective_timeout
        if now - since > timeout:
            self._end(what, now - since, f"longer than Trainer(collective_timeout={timeout:g})", 1)
        if self.urgent is not None and now - max(since, self.urgent) > 1.0:
            self._end(what, now - since, "and Ctrl-C came twice", 130)
        signalled = self.signalled
        if signalled is None or self.trainer._interrupt.agreed:
            return
        if now - max(since, signalled) > min(self._grace(), timeout):
            name = "SIGTERM" if self.code == 143 else "Ctrl-C"
            self._end(what, now - since, f"and {name} came: no stop can be agreed on", self.code)

    def _end(self, what: str, waited: float, why: str, code: int) -> None:
        trainer = self.trainer
        rank, world = distributed.global_rank(), distributed.world_size()
        others = [r for r in range(world) if r != rank]
        peer = (
            f"rank {others[0]}"
            if len(others) == 1
            else f"ranks {', '.join(map(str, others))} (the one stuck does not report this)"
        )
        warning(
            f"Trainer: rank {rank} of {world} waited {waited:.0f} s for {peer} in {what} at step "
            f"{trainer.global_step} (epoch {trainer.current_epoch}, batch "
            f"{trainer.progress.batch_in_epoch}), {why}; {peer} is stuck or stopped (SIGSTOP, a "
            f"debugger, a hung device). Ending this rank with status {code}, without a "
            "checkpoint (the last one written stays)."
        )
        os._exit(code)
