"""The main process's handles on its workers (processes or threads); ``pools`` holds them.

Each handle owns a task queue, a result channel, and ``prefetch`` reusable result slots; the
iterator hands work out and reads results back strictly round-robin, which keeps the batch
order independent of worker timing.
"""

from __future__ import annotations

import os
import queue
import signal
import sys
import threading
from collections import deque
from collections.abc import Callable
from multiprocessing.connection import wait
from typing import Any

from .protocol import Batch, End, Failed, MapTask, NextTask, Ready, ResetTask, Sizing, WorkerSpec
from .shm import ArrayLayout, Slot, new_slot_paths, unlink_quietly, unpack
from .warm import Warm
from .worker import process_worker_loop, thread_worker_loop

_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)  # NOTE [signals across fork]


class WorkerDied(RuntimeError):
    pass


class LoaderTimeout(RuntimeError):
    pass


def _exit_description(code: int | None, worker_id: int) -> str:
    """torch's wording ("is killed by signal: Segmentation fault."), then ours."""
    if code is None:
        return f"is unresponsive (worker {worker_id})."
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        told = signal.strsignal(-code) or name
        return f"is killed by signal: {told}. (worker {worker_id} was killed by {name}, exit code {code})"
    return f"exited unexpectedly with exit code {code} (worker {worker_id})."


def _mlx_has_run() -> bool:
    """Whether MLX has allocated memory here (it then has most likely computed, and its threads
    would not survive a fork; one that was only imported works in a forked child)."""
    mlx_core = sys.modules.get("mlx.core")
    return mlx_core is not None and mlx_core.get_peak_memory() > 0


class _Worker:
    """Common bookkeeping: free result slots and the slots of tasks still in flight."""

    def __init__(self, worker_id: int, prefetch: int) -> None:
        self.worker_id = worker_id
        self.free = deque(range(prefetch))
        self.in_flight: deque[int] = deque()

    def _put(self, message: Any) -> None:
        raise NotImplementedError

    def _get(self, timeout: float | None) -> Any:
        raise NotImplementedError

    def has_room(self) -> bool:
        return bool(self.free)

    def ready(self) -> bool:
        """A result (or the news of a death) is waiting: ``take`` would not block."""
        raise NotImplementedError

    def submit(self, make_task: Callable[[int], MapTask | NextTask]) -> None:
        """Send the task ``make_task(slot)`` for the next free result slot."""
        slot = self.free.popleft()
        self.in_flight.append(slot)
        self._put(make_task(slot))

    def reset(self, epoch: int, state: dict[str, Any] | None) -> None:
        self._put(ResetTask(epoch, state))

    def take(self, timeout: float | None) -> tuple[Any, int]:
        """The next result message and the slot it used (the slot stays reserved)."""
        message = self._get(timeout)
        return message, self.in_flight.popleft()

    def release(self, slot: int) -> None:
        self.free.append(slot)

    def drain(self, timeout: float | None) -> None:
        while self.in_flight:
            _, slot = self.take(timeout)
            self.release(slot)


class ProcessWorker(_Worker):
    def __init__(self, ctx: Any, spec: WorkerSpec, prefetch: int) -> None:
        super().__init__(spec.worker_id, prefetch)
        self.slot_paths = new_slot_paths(prefetch)
        self.linked = True
        self._early: Any = None  # a message ready() has read, for the next _get
        self.warm: Warm | None = None  # what to do with a Sizing hint (set by the pass)
        self.start_method = ctx.get_start_method()
        self.owner = os.getpid()
        self.tasks = ctx.Queue()
        # tasks are disposable: never let interpreter exit wait for the queue's feeder thread
        # (with a worker gone it can block forever on a full pipe: a hang at exit)
        self.tasks.cancel_join_thread()
        self.initial: list[Any] | None = []  # tasks handed to the process at its start
        reader, writer = ctx.Pipe(duplex=False)
        self.process = ctx.Process(
            target=process_worker_loop,
            args=(
                spec,
                self.tasks,
                writer,
                self.slot_paths,
                self.owner,
                ctx.get_start_method(),
                _mlx_has_run(),
                self.initial,
            ),
            name=f"mlx_audio-DataLoader-worker-{spec.worker_id}",
            daemon=True,
        )
        self.slots: list[Slot] = []
        self._writer = writer
        self.conn = reader
        try:
            self.slots.extend(Slot(path) for path in self.slot_paths)
            if self.start_method != "fork":  # a pickling error is explained at the start
                self.launch()
        except BaseException:
            self._abandon()
            raise

    def launch(self) -> None:
        """Start the process with the tasks sent so far (NOTE [fast start])."""
        if self.initial is None:
            return
        # NOTE [signals across fork]: a child forked while a Trainer's SIGINT/SIGTERM handlers
        # are installed runs them until the worker loop sets its own (a Ctrl-C to the process
        # group in that window printed "Ctrl-C received" twice): the two signals stay blocked
        # from before the fork until the worker has set its handlers (process_worker_loop
        # unblocks them); in this process they are unblocked at once, pending ones delivered.
        # (spawn and forkserver children start a fresh interpreter, without the handlers; a
        # forkserver started here must not inherit the block.)
        fork = self.start_method == "fork"
        masked = signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS if fork else ())
        try:
            self.process.start()
        except BaseException:  # (a dataset spawn cannot pickle): no descriptor left open
            self._abandon()
            raise
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, masked)
            self.initial = None
            self._writer.close()

    def _abandon(self) -> None:
        for slot in self.slots:
            slot.close()
        self.unlink()

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process.is_alive() else None

    def unlink(self) -> None:
        if self.linked:
            unlink_quietly(self.slot_paths)
            self.linked = False

    def _put(self, task: Any) -> None:
        if self.initial is not None:  # not started yet: the task goes with the start
            self.initial.append(task)
        else:
            self.tasks.put(task)

    def _get(self, timeout: float | None, until_ready: bool = False) -> Any:
        self.launch()
        if self._early is not None:  # read by ready() or wait_ready()
            message, self._early = self._early, None
            return message
        while True:
            ready = wait([self.conn, self.process.sentinel], timeout)
            if self.conn in ready:
                try:
                    message = self.conn.recv()
                except EOFError:
                    message = None
                if message is None:
                    raise self._death()
                if self._consumed(message):
                    if until_ready and isinstance(message, Ready):
                        return None
                    continue
                return message
            if ready:
                raise self._death()
            raise LoaderTimeout(
                f"DataLoader timed out after {timeout:g} seconds waiting for worker {self.worker_id}"
            )

    def _consumed(self, message: Any) -> bool:
        """Messages that are not results: ``Ready`` (the worker has opened its slots: their names
        can go now) and ``Sizing`` hints (NOTE [warm destination])."""
        if isinstance(message, Ready):
            self.unlink()
        elif isinstance(message, Sizing):
            if self.warm is not None:
                self.warm(message.shape, message.dtype)
        else:
            return False
        return True

    def wait_ready(self) -> None:
        """Block until the worker has opened its slots (its first message), then unlink their
        names; a result read meanwhile is kept for the next ``take``."""
        while self.linked and self._early is None:
            self._early = self._get(None, until_ready=True)

    def _death(self) -> WorkerDied:
        self.process.join(1.0)
        error = WorkerDied(self._died_message(self.linked))
        self.unlink()  # its slots' names are of no use any more
        return error

    def _died_message(self, starting: bool = False) -> str:
        code = self.process.exitcode
        if starting and code is not None and code > 0 and self.start_method != "fork":
            return (  # the child failed while importing the main script (spawn/forkserver)
                f"DataLoader worker (pid {self.process.pid}) exited with code {code} while starting "
                f"(worker {self.worker_id}). With the '{self.start_method}' start method each worker re-imports "
                "your main script, so the code that creates and iterates the DataLoader must be under "
                '`if __name__ == "__main__":`; the worker\'s own error is printed above. (Or use '
                "worker_type='thread'.)"
            )
        return (
            f"DataLoader worker (pid {self.process.pid}) "
            f"{_exit_description(self.process.exitcode, self.worker_id)} A segfault or the out-of-memory "
            "killer are the usual causes; run with num_workers=0 to see the error in-process."
        )

    def unpack(self, payload: tuple[Any, list[ArrayLayout]], slot: int, convert: Any) -> Any:
        skeleton, layout = payload
        return unpack(skeleton, layout, self.slots[slot], convert)

    def ready(self) -> bool:
        """A result is waiting (a worker's first message, ``Ready``, is not one)."""
        while self._early is None and self.conn.poll():
            try:
                message = self.conn.recv()
            except EOFError:
                return True  # take() reports the death
            if not self._consumed(message):
                self._early = message
        return self._early is not None or not self.process.is_alive()

    def healthy(self) -> bool:
        """Alive and still connected (a pool finalized by the garbage collector is not)."""
        return not self.conn.closed and self.process.is_alive()

    def _end_process(self) -> None:
        try:
            self.tasks.put(None)
        except (OSError, ValueError):
            pass
        if self.in_flight and self.process.is_alive():
            self.process.terminate()
        self.process.join(2.0)
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(2.0)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()

    def stop(self) -> None:
        """Ask the worker to exit, then make sure it did; never leaves a zombie. A worker with
        tasks still queued or running is terminated at once (its results are not wanted, and
        waiting for them would stall: ~2 s per worker)."""
        if os.getpid() != self.owner:  # NOTE [finalizers after fork] (_loader/pools.py)
            return
        if self.initial is not None:  # never started (the pass failed before launching it)
            self.initial = None
            self._writer.close()
        else:
            self._end_process()
        try:
            self.conn.close()
        except OSError:  # already closed by a garbage-collector finalizer
            pass
        self.tasks.close()
        # NOTE [queue teardown]: close() only asks the queue's feeder thread to close the pipe; a
        # queue garbage-collected meanwhile closes the same descriptor from this thread too (EBADF
        # in the feeder, or worse, a reused descriptor closed). Wait for the feeder -- bounded: it
        # can block on a full pipe when the worker is gone (the reason for cancel_join_thread).
        feeder = getattr(self.tasks, "_thread", None)
        if feeder is not None:
            feeder.join(timeout=1.0)
        for slot in self.slots:
            slot.close()
        self.unlink()


class ThreadWorker(_Worker):
    def __init__(self, spec: WorkerSpec, prefetch: int) -> None:
        super().__init__(spec.worker_id, prefetch)
        self.tasks: queue.Queue[MapTask | NextTask | ResetTask | None] = queue.Queue()
        self.results: queue.Queue[Batch | End | Failed] = queue.Queue()
        self.stopping = threading.Event()
        self.thread = threading.Thread(
            target=thread_worker_loop,
            args=(spec, self.tasks, self.results, self.stopping),
            name=f"mlx_audio-DataLoader-thread-{spec.worker_id}",
            daemon=True,
        )
        self.thread.start()

    pid = None

    def ready(self) -> bool:
        return not self.results.empty()

    def _put(self, task: Any) -> None:
        self.tasks.put(task)

    def _get(self, timeout: float | None) -> Any:
        try:
            return self.results.get(timeout=timeout)
        except queue.Empty:
            raise LoaderTimeout(
                f"DataLoader timed out after {timeout:g} seconds waiting for worker {self.worker_id}"
            ) from None

    def unpack(self, payload: Any, slot: int, convert: Any) -> Any:
        return payload

    def stop(self) -> None:
        self.stopping.set()
        self.tasks.put(None)
        self.thread.join(5.0)
