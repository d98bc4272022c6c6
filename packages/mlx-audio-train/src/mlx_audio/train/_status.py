"""Status text through ``logging``, as Lightning's ``rank_zero_info`` and its ``lightning.pytorch``
logger: the Trainer's summary, ModelSummary's table and the status lines ("Ctrl-C received", "no
checkpoint ... yet", EarlyStopping's reason, ...) are records of the ``mlx_audio.train`` logger,
emitted on rank 0 only in a data-parallel run.

NOTE [console logging]: importing ``mlx_audio.train`` installs no handler and sets no level (no
behaviour change at import time). The first time the Trainer emits a status line, and only then:

- if neither ``mlx_audio.train`` nor ``mlx_audio`` has a level, ``mlx_audio.train`` gets INFO
  (Lightning sets INFO on its logger), so the lines reach whatever handlers are configured;
- if no handler would see its records (none on it, its parents or the root:
  ``Logger.hasHandlers``), it gets one console handler, :class:`Console`, and stops propagating
  (Lightning's rule: a root handler configured later does not print each line twice).

:class:`Console` writes the bare message, as ``print`` did: INFO to the current ``sys.stdout``,
WARNING and above to the current ``sys.stderr`` (where Python's last-resort handler writes
them), each looked up per record (so ``contextlib.redirect_stdout`` and pytest's capture see
them). A line it cannot write -- a closed or broken stdout, e.g. in the SIGTERM handler of a job
whose terminal is gone -- is dropped: no exception, and no "--- Logging error ---" traceback
whatever ``logging.raiseExceptions`` says.

The user's configuration wins, before or after the first line: ``logging.getLogger(
"mlx_audio.train").setLevel(logging.WARNING)`` silences the status lines (the warnings stay),
``logging.disable(logging.INFO)`` silences them too, and a handler on the root (``basicConfig``)
or on the logger, configured before the first line, receives them instead of the console.
"""

from __future__ import annotations

import logging
import sys
import threading
from typing import TYPE_CHECKING, Any, TextIO

from . import distributed

LOGGER = "mlx_audio.train"
log = logging.getLogger(LOGGER)  # a name only: no handler, no level (NOTE [console logging])
_lock = threading.Lock()
_ready = False


if TYPE_CHECKING:  # generic in typeshed; subscriptable at run time only from Python 3.11
    _StreamHandler = logging.StreamHandler[TextIO]
else:
    _StreamHandler = logging.StreamHandler


class Console(_StreamHandler):
    """The bare message to the current ``sys.stdout`` (below WARNING) or ``sys.stderr``."""

    def __init__(self) -> None:
        logging.Handler.__init__(self)  # no stream bound: it is looked up per record

    @property
    def stream(self) -> Any:
        return sys.stderr if self._level >= logging.WARNING else sys.stdout

    @stream.setter
    def stream(self, value: Any) -> None:  # StreamHandler.setStream; nothing to keep
        pass

    def emit(self, record: logging.LogRecord) -> None:
        self._level = record.levelno  # under the handler's lock (Handler.handle)
        super().emit(record)

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 (logging's name)
        if isinstance(sys.exc_info()[1], (OSError, ValueError)):
            return  # a closed or broken stream: the line is dropped (NOTE [console logging])
        super().handleError(record)

    _level = logging.INFO


def _configured_level(logger: logging.Logger) -> bool:
    node: Any = logger
    while node is not None and node is not logging.root:
        if node.level != logging.NOTSET:
            return True
        node = node.parent
    return False


def ensure_console() -> None:
    """Once per process, the first time a status line is emitted (NOTE [console logging])."""
    global _ready
    if _ready:
        return
    with _lock:
        if _ready:
            return
        if not _configured_level(log):
            log.setLevel(logging.INFO)
        if not log.hasHandlers():
            log.addHandler(Console())
            log.propagate = False
        _ready = True


def _emit(level: int, message: str) -> None:
    ensure_console()
    log.log(level, message)


def rank_zero_info(message: str) -> None:
    """A status line at INFO from rank 0 (Lightning's ``rank_zero_info``)."""
    if distributed.global_rank() == 0:
        _emit(logging.INFO, message)


def rank_zero_warning(message: str) -> None:
    """Something that went wrong but does not stop the run, at WARNING from rank 0."""
    if distributed.global_rank() == 0:
        _emit(logging.WARNING, message)


def warning(message: str) -> None:
    """At WARNING from whichever rank it happened on."""
    _emit(logging.WARNING, message)
