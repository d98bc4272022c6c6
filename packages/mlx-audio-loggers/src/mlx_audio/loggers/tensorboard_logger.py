"""TensorBoardLogger: tensorboardX event files under save_dir/name/version_N."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from ._extras import require
from .base import Logger, VersionedDir, flatten_params, scalars


class TensorBoardLogger(VersionedDir, Logger):
    """Scalars as TensorBoard summaries at the trainer's step; view with
    ``tensorboard --logdir <save_dir>``.

    Hyperparameters go to the HParams dashboard of the *same* run, without the extra
    ``hp_metric`` scalar or ``add_hparams`` sub-run that other integrations create, so the
    scalar tags match what the other loggers record.
    """

    def __init__(
        self,
        save_dir: str = "logs",
        name: str | None = "tensorboard",
        version: int | str | None = None,
        **writer_kwargs: Any,
    ) -> None:
        require("tensorboardX", "tensorboard", "TensorBoardLogger")
        self._save_dir = os.fspath(save_dir)
        self._name = name or ""
        self._version = version
        self._writer_kwargs = writer_kwargs
        self._writer = None

    @property
    def experiment(self):
        """The ``tensorboardX.SummaryWriter`` (created on first use)."""
        if self._writer is None:
            tensorboardX = require("tensorboardX", "tensorboard", "TensorBoardLogger")
            os.makedirs(self.log_dir, exist_ok=True)
            self._writer = tensorboardX.SummaryWriter(logdir=self.log_dir, **self._writer_kwargs)
        return self._writer

    def log_hyperparams(self, params: Mapping[str, Any] | Any) -> None:
        if not self.is_writer:
            return
        from tensorboardX.summary import hparams

        flat = {
            k: (v if isinstance(v, (bool, int, float, str)) else str(v))
            for k, v in flatten_params(params).items()
        }
        writer = self.experiment.file_writer
        for summary in hparams(flat, metric_dict={}):
            writer.add_summary(summary)

    def log_metrics(self, metrics: Mapping[str, Any], step: int) -> None:
        step = self._check_step(step)
        values = scalars(metrics)
        if not self.is_writer:
            return
        for key, value in values.items():
            self.experiment.add_scalar(key, value, global_step=step)

    def save(self) -> None:
        if self._writer is not None:
            self._writer.flush()

    def finalize(self, status: str = "success") -> None:
        self._check_status(status)
        if self._writer is not None:
            self._writer.flush()
            self._writer.close()
            self._writer = None
