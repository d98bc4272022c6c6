"""Local log files removed during a run: noticed, and their records spooled.

NOTE [removed log files]
A process that writes through an open handle into a file whose folder was deleted gets no
error: the bytes go to an unlinked inode and vanish when it is closed. So a logger that
appends to one local file (TensorBoard's event file, W&B's offline ``.wandb`` file, CSV's
``metrics.csv``) records the file's (device, inode) when it creates it and compares it with
what the path names now before each write and when the run ends: one ``os.stat`` per logging
call, never per metric. A :class:`WatchedFile` keeps the records it gave the file (at most
``max_pending``); when the file is gone they go back to the front of the logger's queue and
every later delivery fails, so they take the normal path of NOTE [logger delivery]: one
``LoggerWarning`` (``LoggerError`` with ``strict=True``), then the spool file that
``undelivered`` names. The folder is not created again behind whoever removed it.
"""

from __future__ import annotations

import errno
import os
from collections import deque
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .delivery import QueuedLogger, Record


def file_identity(path: str) -> tuple[int, int] | None:
    """``(device, inode)`` of the file at ``path``; ``None`` when there is none any more."""
    try:
        stat = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    return (stat.st_dev, stat.st_ino)


class WatchedFile:
    """The local file a logger's backend appends to, and the records it holds.

    ``what`` names the file in the error, e.g. ``"TensorBoard: the event file"``.
    """

    def __init__(self, logger: QueuedLogger, what: str) -> None:
        self._logger = logger
        self._what = what
        self._path: str | None = None
        self._identity: tuple[int, int] | None = None
        self._kept: deque[Record] = deque()
        self._dropped = 0
        self.lost: str | None = None

    def watch(self, path: str) -> None:
        """Start watching the file at ``path``, which the backend has just created."""
        self._path = path
        self._identity = file_identity(path)

    def keep(self, record: Record) -> None:
        """Remember a record the file now holds (beyond ``max_pending``, the oldest go)."""
        if self._identity is not None:
            if len(self._kept) >= self._logger._policy.max_pending:
                self._kept.popleft()
                self._dropped += 1
            self._kept.append(record)

    def check(self) -> None:
        """Raise ``FileNotFoundError`` if the file is gone; the first time, the records it
        held go back to the front of the logger's queue (call on the delivery thread)."""
        if self.lost is None and self._identity is not None:
            assert self._path is not None
            if file_identity(self._path) != self._identity:
                self.lost = f"{self._what} {self._path} was removed during the run"
                self._logger._requeue(list(self._kept), self.error(), self._dropped)
                self._kept.clear()
        if self.lost is not None:
            raise self.error()

    def release(self) -> None:
        """The run ended with its file in place: nothing needs keeping any more."""
        self._kept.clear()

    def error(self) -> FileNotFoundError:
        return FileNotFoundError(errno.ENOENT, self.lost)
