"""TensorBoardLogger: TensorBoard event files under save_dir/name/version_N."""

from __future__ import annotations

import os
import socket
import struct
import time
from typing import Any

from ._extras import require
from ._watched import WatchedFile
from .base import VersionedDir
from .delivery import QueuedLogger, Record


class EventFile:
    """An append-only TensorBoard event file that survives a full disk.

    Each write is whole records, flushed; when the disk refuses part of one, the file is cut
    back to its last complete record, so readers never meet a torn record and the same
    records can be written again later (NOTE [logger delivery] in delivery.py).
    """

    def __init__(self, folder: str, suffix: str = "") -> None:
        stamp = f"{time.time():.6f}"
        self.path = os.path.join(
            folder, f"events.out.tfevents.{stamp[:10]}.{socket.gethostname()}{suffix}"
        )
        self._good = 0  # bytes of complete records on disk
        self._fd: int | None = None
        self.created = False  # True once, right after the write that created the file

    def write(self, events: list[Any]) -> None:
        from tensorboardX.proto import event_pb2
        from tensorboardX.record_writer import masked_crc32c

        if self._good == 0:
            events = [event_pb2.Event(wall_time=time.time(), file_version="brain.Event:2"), *events]
        chunks = []
        for event in events:
            record = event.SerializeToString()
            header = struct.pack("<Q", len(record))
            chunks += [
                header,
                struct.pack("<I", masked_crc32c(header)),
                record,
                struct.pack("<I", masked_crc32c(record)),
            ]
        data = b"".join(chunks)
        payload = memoryview(data)
        try:
            if self._fd is None:
                os.makedirs(os.path.dirname(self.path), exist_ok=True)
                self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            while payload:
                payload = payload[os.write(self._fd, payload) :]
        except OSError:
            self._cut_back()
            raise
        self.created = self._good == 0
        self._good += len(data)

    def _cut_back(self) -> None:
        if self._fd is not None:
            try:
                os.ftruncate(self._fd, self._good)
            finally:
                os.close(self._fd)
                self._fd = None

    def close(self) -> None:
        if self._fd is not None:
            os.fsync(self._fd)
            os.close(self._fd)
            self._fd = None

    def abandon(self) -> None:
        """Close the file without syncing (it was deleted: nothing there to keep)."""
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)


class TensorBoardLogger(VersionedDir, QueuedLogger):
    """Scalars as TensorBoard summaries at the trainer's step; view with
    ``tensorboard --logdir <save_dir>``.

    Hyperparameters go to the HParams dashboard of the *same* run, without the extra
    ``hp_metric`` scalar or ``add_hparams`` sub-run that other integrations create, so the
    scalar tags match what the other loggers record. Events are written by a background
    thread; a full disk delays them instead of stopping training (NOTE [logger delivery]).
    ``experiment`` is a ``tensorboardX.SummaryWriter`` on the same folder for images, audio
    and histograms (``writer_kwargs`` go to it).

    If the event file is removed during the run (its folder deleted), the logger notices
    before its next write or at ``finalize`` and spools every scalar record of the run (at
    most ``max_pending``) like any backend failure; replay the spool into a new logger
    (NOTE [removed log files] in _watched.py).
    """

    def __init__(
        self,
        save_dir: str | os.PathLike = "logs",
        name: str | None = "tensorboard",
        version: int | str | None = None,
        *,
        strict: bool = False,
        flush_timeout: float = 10.0,
        spool_dir: str | os.PathLike | None = None,
        **writer_kwargs: Any,
    ) -> None:
        require("tensorboardX", "tensorboard", "TensorBoardLogger")
        self._save_dir = os.fspath(save_dir)
        self._name = name or ""
        self._version = version
        self._writer_kwargs = writer_kwargs
        self._writer = None
        self._events: EventFile | None = None
        self._init_delivery(strict, flush_timeout, spool_dir)
        self._watched = WatchedFile(self, "TensorBoard: the event file")

    @property
    def experiment(self):
        """A ``tensorboardX.SummaryWriter`` on the log folder (created on first use)."""
        if self._writer is None:
            tensorboardX = require("tensorboardX", "tensorboard", "TensorBoardLogger")
            os.makedirs(self.log_dir, exist_ok=True)
            self._writer = tensorboardX.SummaryWriter(logdir=self.log_dir, **self._writer_kwargs)
        return self._writer

    def _deliver(self, record: Record) -> None:
        from tensorboardX.proto import event_pb2, summary_pb2
        from tensorboardX.summary import hparams

        if record.kind == "hparams":
            flat = {
                k: (v if isinstance(v, (bool, int, float, str)) else str(v))
                for k, v in record.values.items()
            }
            events = [
                event_pb2.Event(summary=s, wall_time=record.time)
                for s in hparams(flat, metric_dict={})
            ]
        else:
            values = [
                summary_pb2.Summary.Value(tag=k, simple_value=float(v))
                for k, v in record.values.items()
            ]
            events = [
                event_pb2.Event(
                    summary=summary_pb2.Summary(value=values),
                    step=record.step,
                    wall_time=record.time,
                )
            ]
        self._watched.check()
        if self._events is None:
            self._events = EventFile(self.log_dir, self._writer_kwargs.get("filename_suffix", ""))
        self._events.write(events)
        if self._watched.lost is None and self._events.created:
            self._watched.watch(self._events.path)
        self._watched.keep(record)

    def _close(self, status: str) -> None:
        if self._events is not None:
            self._events.close()
            self._watched.check()  # removed before the end: the records go to the spool
            self._watched.release()

    def finalize(self, status: str = "success") -> None:
        try:
            super().finalize(status)
        finally:
            if self._watched.lost is not None and self._events is not None:
                self._events.abandon()  # the delivery thread gave up on the deleted file
        if self._writer is not None:
            self._writer.flush()
            self._writer.close()
            self._writer = None
