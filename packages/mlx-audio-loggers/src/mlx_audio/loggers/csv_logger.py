"""CSVLogger: metrics.csv + hparams.json under save_dir/name/version_N (no extra dependency)."""

from __future__ import annotations

import csv
import os
from collections.abc import Mapping
from typing import Any

from .base import Logger, VersionedDir, dump_json, flatten_params, scalars


class CSVLogger(VersionedDir, Logger):
    """One row per ``log_metrics`` call: ``step`` then every metric name seen so far.

    Each row is written and flushed immediately, so a crash loses nothing already logged.
    A new metric name rewrites the file once with the wider header (as Lightning does).
    Read it with ``pandas.read_csv(logger.log_dir + "/metrics.csv")``.
    """

    def __init__(
        self, save_dir: str = "logs", name: str | None = "csv", version: int | str | None = None
    ) -> None:
        self._save_dir = os.fspath(save_dir)
        self._name = name or ""
        self._version = version
        self._columns: list[str] = ["step"]
        self._rows: list[dict[str, Any]] = []
        self._file = None
        self._writer: csv.DictWriter | None = None

    @property
    def metrics_file(self) -> str:
        return os.path.join(self.log_dir, "metrics.csv")

    def log_hyperparams(self, params: Mapping[str, Any] | Any) -> None:
        if self.is_writer:
            os.makedirs(self.log_dir, exist_ok=True)
            dump_json(os.path.join(self.log_dir, "hparams.json"), flatten_params(params))

    def log_metrics(self, metrics: Mapping[str, Any], step: int) -> None:
        row = {"step": self._check_step(step), **scalars(metrics)}
        if not self.is_writer:
            return
        self._rows.append(row)
        new = [k for k in row if k not in self._columns]
        if new or self._writer is None:
            self._columns.extend(new)
            self._columns.sort()  # Lightning's CSVLogger writes its columns sorted by name
            self._rewrite()
        else:
            self._writer.writerow(row)
            self._file.flush()

    def _rewrite(self) -> None:
        os.makedirs(self.log_dir, exist_ok=True)
        if self._file is not None:
            self._file.close()
        tmp = self.metrics_file + ".tmp"
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=self._columns)
            writer.writeheader()
            writer.writerows(self._rows)
        os.replace(tmp, self.metrics_file)
        self._file = open(self.metrics_file, "a", newline="")  # noqa: SIM115 (kept open for appends)
        self._writer = csv.DictWriter(self._file, fieldnames=self._columns)

    def save(self) -> None:
        if self._file is not None:
            self._file.flush()
            os.fsync(self._file.fileno())

    def finalize(self, status: str = "success") -> None:
        self._check_status(status)
        if self._file is not None:
            self.save()
            self._file.close()
            self._file, self._writer = None, None
