"""CSVLogger: metrics.csv + hparams.json under save_dir/name/version_N (no extra dependency)."""

from __future__ import annotations

import csv
import errno
import io
import json
import os
import tempfile
import time
import warnings
from collections.abc import Mapping
from typing import Any

from ._watched import file_identity
from .base import Logger, VersionedDir, dump_json, flatten_params, scalars
from .delivery import LoggerError, LoggerWarning, spool_name, write_spool

_RETRY_INTERVAL = 5.0  # seconds between attempts to rewrite the file after a write failed


class CSVLogger(VersionedDir, Logger):
    """One row per ``log_metrics`` call: ``step`` then every metric name seen so far.

    Each row is written and flushed immediately, so a crash loses nothing already logged.
    A new metric name rewrites the file once with the wider header (as Lightning does).
    Read it with ``pandas.read_csv(logger.log_dir + "/metrics.csv")``.

    When the disk refuses a write (full, read-only), the rows stay in memory, a
    :class:`~mlx_audio.loggers.LoggerWarning` says so once, and the whole file is rewritten
    (at most every 5 s, and at ``finalize``) once writing works again; if it never does,
    ``finalize`` saves the file to the system's temporary folder and :attr:`undelivered`
    says where. ``strict=True`` raises :class:`~mlx_audio.loggers.LoggerError` instead.

    If ``metrics.csv`` is removed during the run (its folder deleted), appends through the
    open file would vanish without an error; the logger checks the file (path and inode)
    before each write and at ``finalize`` (NOTE [removed log files] in _watched.py), stops
    writing there (one ``LoggerWarning``; ``strict=True``: ``LoggerError``), and ``finalize``
    saves the whole run's rows as a CSV file (and its hyperparameters as JSON) in
    ``spool_dir``, else the working directory, else the temporary folder, named by
    :attr:`undelivered`.
    """

    def __init__(
        self,
        save_dir: str | os.PathLike = "logs",
        name: str | None = "csv",
        version: int | str | None = None,
        *,
        strict: bool = False,
        spool_dir: str | os.PathLike | None = None,
    ) -> None:
        self._save_dir = os.fspath(save_dir)
        self._name = name or ""
        self._version = version
        self._strict = strict
        self._columns: list[str] = ["step"]
        self._rows: list[dict[str, Any]] = []
        self._hparams: dict[str, Any] | None = None
        self._file: Any = None
        self._writer: csv.DictWriter | None = None
        self._stale_since: float | None = None  # a write failed: the file lacks rows
        self._last_try = 0.0
        self._warned = False
        self._undelivered: str | None = None
        self._spool_dir = os.fspath(spool_dir) if spool_dir is not None else None
        self._path = ""  # metrics.csv, once written
        self._identity: tuple[int, int] | None = None  # its (device, inode)
        self._lost: str | None = None  # why metrics.csv no longer holds the run

    @property
    def metrics_file(self) -> str:
        return os.path.join(self.log_dir, "metrics.csv")

    def log_hyperparams(self, params: Mapping[str, Any] | Any) -> None:
        if self.is_writer:
            self._hparams = flatten_params(params)
            if not self._removed():
                self._guarded(self._write_hparams)

    def log_metrics(self, metrics: Mapping[str, Any], step: int) -> None:
        row = {"step": self._check_step(step), **scalars(metrics)}
        if not self.is_writer:
            return
        self._rows.append(row)
        new = [k for k in row if k not in self._columns]
        if new:
            self._columns.extend(new)
            self._columns.sort()  # Lightning's CSVLogger writes its columns sorted by name
        if self._removed():
            return
        if self._stale_since is not None:
            if time.monotonic() - self._last_try >= _RETRY_INTERVAL:
                self._guarded(self._rewrite)
        elif new or self._writer is None:
            self._guarded(self._rewrite)
        else:
            self._guarded(lambda: self._append(row))

    def _guarded(self, write: Any) -> None:
        """Run a write; on an OSError keep everything in memory and say so once."""
        self._last_try = time.monotonic()
        try:
            write()
        except OSError as error:
            self._close_file()
            self._stale_since = self._stale_since or time.monotonic()
            if self._strict:
                raise LoggerError(
                    f"CSVLogger: writing {self.log_dir} failed: {error!r} (strict=True stops the run)"
                ) from error
            if not self._warned:
                self._warned = True
                warnings.warn(
                    f"CSVLogger: writing {self.log_dir} failed: {error!r}. Training goes on; the rows are "
                    "kept in memory and the file is rewritten when writing works again.",
                    LoggerWarning,
                    stacklevel=4,
                )
            return
        if write != self._write_hparams:
            self._stale_since = None

    def _removed(self, report: bool = True) -> bool:
        """Whether ``metrics.csv`` was removed during the run (checked once per call; the first
        time, close it and, if ``report``, warn, or raise with ``strict=True``)."""
        if self._lost is not None:
            return True
        if self._identity is None or file_identity(self._path) == self._identity:
            return False
        self._lost = f"CSVLogger: {self.metrics_file} was removed during the run"
        self._close_file()
        if not report:  # finalize: `undelivered` says it
            return True
        message = f"{self._lost}; the rows logged so far are kept in memory"
        if self._strict:
            raise LoggerError(f"{message} (strict=True stops the run)") from self._lost_error()
        if not self._warned:
            self._warned = True
            warnings.warn(
                f"{message}. Training goes on; finalize() saves them to a spool file "
                "(`undelivered` says where).",
                LoggerWarning,
                stacklevel=4,
            )
        return True

    def _lost_error(self) -> FileNotFoundError:
        return FileNotFoundError(errno.ENOENT, self._lost)

    def _write_hparams(self) -> None:
        os.makedirs(self.log_dir, exist_ok=True)
        dump_json(os.path.join(self.log_dir, "hparams.json"), self._hparams)

    def _append(self, row: dict[str, Any]) -> None:
        assert self._writer is not None and self._file is not None
        self._writer.writerow(row)
        self._file.flush()

    def _rewrite(self) -> None:
        os.makedirs(self.log_dir, exist_ok=True)
        self._close_file()
        tmp = self.metrics_file + ".tmp"
        try:
            with open(tmp, "w", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=self._columns)
                writer.writeheader()
                writer.writerows(self._rows)
            os.replace(tmp, self.metrics_file)
            self._path = self.metrics_file
            self._identity = file_identity(self._path)
        except OSError:
            if os.path.exists(tmp):
                os.remove(tmp)
            raise
        if self._hparams is not None and not os.path.exists(
            os.path.join(self.log_dir, "hparams.json")
        ):
            self._write_hparams()
        self._file = open(self.metrics_file, "a", newline="")  # noqa: SIM115 (kept open for appends)
        self._writer = csv.DictWriter(self._file, fieldnames=self._columns)

    def _close_file(self) -> None:
        if self._file is not None:
            try:
                self._file.close()
            except OSError:
                pass  # the buffered bytes are lost; the next rewrite writes every row again
            self._file = None
            self._writer = None

    def save(self) -> None:
        if self._removed():
            return
        if self._stale_since is not None:
            self._guarded(self._rewrite)
        if self._file is not None:
            self._guarded(self._sync)

    def _sync(self) -> None:
        assert self._file is not None
        self._file.flush()
        os.fsync(self._file.fileno())

    def finalize(self, status: str = "success") -> None:
        self._check_status(status)
        if not self._removed(report=False):
            self.save()
        self._close_file()
        if self._lost is not None:
            self._undelivered = self._spool()
            if self._strict:
                raise LoggerError(self._undelivered) from self._lost_error()
            return
        if self._stale_since is None:
            return
        fallback = os.path.join(
            tempfile.gettempdir(), f"mlx_audio-{self.name}-{self.version}-{os.getpid()}-metrics.csv"
        )
        try:
            with open(fallback, "w", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=self._columns)
                writer.writeheader()
                writer.writerows(self._rows)
            where = f"saved to {fallback}"
        except OSError as error:
            where = f"and could not be saved to {fallback} either ({error!r})"
        self._undelivered = f"CSVLogger: {self.metrics_file} could not be written; its {len(self._rows)} rows were {where}"

    def _spool(self) -> str:
        """Save the whole run (its file is gone) where ``undelivered`` will say."""
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=self._columns)
        writer.writeheader()
        writer.writerows(self._rows)
        name = spool_name("CSVLogger", self.version, "csv")
        path = write_spool(name, [text.getvalue()], self._spool_dir)
        reason = repr(self._lost_error())
        steps = [row["step"] for row in self._rows]
        span = f", steps {min(steps)}-{max(steps)}" if steps else ""
        head = f"CSVLogger: {len(self._rows)} records not delivered ({reason}{span})"
        if path is None:
            return f"{head} and could not be saved anywhere"
        where = f"{head}; saved to {path} (the run's metrics.csv"
        if self._hparams is not None:
            hparams = json.dumps(self._hparams, indent=2, sort_keys=True, allow_nan=True)
            saved = write_spool(name[: -len("csv")] + "hparams.json", [hparams], self._spool_dir)
            where += f"; its hyperparameters in {saved}" if saved else ""
        return where + ")"
