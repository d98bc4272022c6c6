"""MLflowLogger: an MLflow run through ``MlflowClient`` (any tracking URI, or MLflow's default)."""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from typing import Any

from ._extras import require
from .delivery import QueuedLogger, Record

_STATUS = {"success": "FINISHED", "failed": "FAILED", "interrupted": "KILLED"}
_PARAM_LIMIT = 6000  # MLflow's oldest supported limit on a parameter value's length
_BATCH = 1000  # metrics per log_batch call (MLflow's limit)


def _has_full_mlflow() -> bool:
    from importlib.metadata import PackageNotFoundError, version

    try:
        version("mlflow")
    except PackageNotFoundError:
        return False
    return True


class MLflowLogger(QueuedLogger):
    """Params and metric histories in an MLflow run; browse with ``mlflow ui``.

    ``tracking_uri=None`` uses MLflow's own default store (``MLFLOW_TRACKING_URI`` or its
    local default). Pass ``run_id`` to keep logging into an existing run (resume).

    Calls to the server run on a background thread (NOTE [logger delivery] in delivery.py):
    an unreachable or dying server never stalls training; MLflow's own HTTP retries
    (``MLFLOW_HTTP_REQUEST_MAX_RETRIES``, default 7, with backoff; ``MLFLOW_HTTP_REQUEST_TIMEOUT``)
    happen on that thread, and lowering them detects an outage sooner.
    """

    def __init__(
        self,
        experiment_name: str = "mlx_audio",
        run_name: str | None = None,
        tracking_uri: str | None = None,
        tags: Mapping[str, Any] | None = None,
        run_id: str | None = None,
        artifact_location: str | None = None,
        *,
        strict: bool = False,
        flush_timeout: float = 10.0,
        spool_dir: str | os.PathLike | None = None,
    ) -> None:
        require("mlflow", "mlflow", "MLflowLogger")
        if (
            tracking_uri is None
            and not os.environ.get("MLFLOW_TRACKING_URI")
            and not _has_full_mlflow()
        ):
            raise ValueError(
                "MLflowLogger(tracking_uri=None) uses MLflow's local store, which needs the full "
                "mlflow package (pip install 'mlx-audio-loggers[mlflow]'); only mlflow-skinny is "
                "installed (what the [all] extras bring), which logs to a tracking server: pass "
                "tracking_uri='http://host:5000' or set MLFLOW_TRACKING_URI"
            )
        self._experiment_name = experiment_name
        self._run_name = run_name
        self._tracking_uri = tracking_uri
        self._tags = {str(k): str(v) for k, v in (tags or {}).items()}
        self._run_id = run_id
        self._artifact_location = artifact_location
        self._client = None
        self._experiment_id: str | None = None
        self._create = threading.Lock()
        self._init_delivery(strict, flush_timeout, spool_dir)

    @property
    def experiment(self):
        """The ``MlflowClient``; the experiment and run are created on first use."""
        with self._create:
            if self._client is None:
                tracking = require("mlflow.tracking", "mlflow", "MLflowLogger")
                client = tracking.MlflowClient(tracking_uri=self._tracking_uri)
                if self._run_id is None:
                    found = client.get_experiment_by_name(self._experiment_name)
                    if found is None:
                        self._experiment_id = client.create_experiment(
                            self._experiment_name, artifact_location=self._artifact_location
                        )
                    else:
                        self._experiment_id = found.experiment_id
                    run = client.create_run(
                        self._experiment_id, run_name=self._run_name, tags=self._tags
                    )
                    self._run_id = run.info.run_id
                else:
                    self._experiment_id = client.get_run(self._run_id).info.experiment_id
                self._client = client
            return self._client

    @property
    def run_id(self) -> str:
        _ = self.experiment  # creates the run on first use
        assert self._run_id is not None
        return self._run_id

    @property
    def experiment_id(self) -> str | None:
        return self._experiment_id

    @property
    def name(self) -> str:
        return self._experiment_name

    @property
    def version(self) -> str | None:
        return self._run_id

    @property
    def save_dir(self) -> str | None:
        return self._tracking_uri

    def _deliver(self, record: Record) -> None:
        from mlflow.entities import Metric, Param

        client = self.experiment
        if record.kind == "hparams":
            params = [Param(k, str(v)[:_PARAM_LIMIT]) for k, v in record.values.items()]
            for start in range(0, len(params), 100):
                client.log_batch(self.run_id, params=params[start : start + 100])
            return
        stamp = int(record.time * 1000)
        metrics = [Metric(k, float(v), stamp, record.step or 0) for k, v in record.values.items()]
        for start in range(0, len(metrics), _BATCH):
            client.log_batch(self.run_id, metrics=metrics[start : start + _BATCH])

    def _close(self, status: str) -> None:
        if self._client is not None and self._run_id is not None:
            self._client.set_terminated(self._run_id, status=_STATUS[status])


MLFlowLogger = MLflowLogger  # Lightning's name for it (lightning.pytorch.loggers.MLFlowLogger)
