"""WandbLogger: Weights & Biases runs, never blocking on a machine without an account."""

from __future__ import annotations

import netrc
import os
import threading
import warnings
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlparse

from ._extras import require
from ._watched import WatchedFile
from .delivery import QueuedLogger, Record

_EXIT_CODES = {"success": 0, "failed": 1, "interrupted": 255}


def has_wandb_credentials() -> bool:
    """True when W&B could authenticate without prompting (env, netrc or settings file)."""
    if os.environ.get("WANDB_API_KEY") or os.environ.get("WANDB_IDENTITY_TOKEN_FILE"):
        return True
    host = (
        urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")).hostname
        or "api.wandb.ai"
    )
    candidates = [
        os.environ.get("NETRC"),
        os.path.expanduser("~/.netrc"),
        os.path.expanduser("~/_netrc"),
    ]
    for path in filter(None, candidates):
        try:
            if os.path.exists(path) and netrc.netrc(path).authenticators(host):
                return True
        except (netrc.NetrcParseError, OSError):
            continue
    config_dir = os.environ.get("WANDB_CONFIG_DIR", os.path.expanduser("~/.config/wandb"))
    try:
        with open(os.path.join(config_dir, "settings")) as f:
            return any(line.strip().startswith("api_key") for line in f)
    except OSError:
        return False


class WandbLogger(QueuedLogger):
    """Logs to a W&B run; every metric is plotted against the trainer's step.

    The run's step axis is ``trainer/global_step`` (``define_metric``), so W&B's rule that
    ``wandb.log`` steps must increase can never drop a metric, whatever the order of training
    and validation logging. With no API key and no ``WANDB_MODE``, the logger runs offline
    (one warning says how to upload later: ``wandb sync <run dir>``) instead of prompting.
    Calls into ``wandb`` run on a background thread (NOTE [logger delivery] in delivery.py).

    An offline run lives in one file, ``<run dir>/run-<id>.wandb``, written by W&B's own
    service process. If that file is removed during the run (its folder deleted, a cleanup
    job), what it held is gone, and W&B does not notice; this logger does: it keeps what it
    gave an offline run (at most ``max_pending`` records) until the run is closed, and when
    the file is gone, the whole run's records go to the spool file named by
    :attr:`undelivered`, like any backend failure, with one :class:`LoggerWarning` at the
    time (``strict=True``: :class:`LoggerError`). Replay the spool into a new run.
    """

    STEP_METRIC = "trainer/global_step"

    def __init__(
        self,
        project: str | None = None,
        name: str | None = None,
        save_dir: str = ".",
        offline: bool = False,
        config: Mapping[str, Any] | None = None,
        id: str | None = None,
        tags: list[str] | None = None,
        group: str | None = None,
        *,
        strict: bool = False,
        flush_timeout: float = 10.0,
        spool_dir: str | os.PathLike | None = None,
        **init_kwargs: Any,
    ) -> None:
        require("wandb", "wandb", "WandbLogger")
        self._project = project
        self._name = name
        self._save_dir = os.fspath(save_dir)
        self._offline = offline
        self._config = dict(config) if config else None
        self._id = id
        self._tags = tags
        self._group = group
        self._init_kwargs = init_kwargs
        self._run: Any = None
        self._run_dir: str | None = None
        self._mode_chosen: str | None = None
        self._started = threading.Event()
        self._create = threading.Lock()
        self._init_delivery(strict, flush_timeout, spool_dir)
        # NOTE [removed log files]: an offline run's records are lost with its file
        self._run_file = WatchedFile(self, "W&B: the offline run's file")

    def _before_first_record(self) -> None:
        self._mode_chosen = self._mode()  # on the caller's thread, so its warning points there

    def _mode(self) -> str | None:
        if self._offline:
            return "offline"
        if os.environ.get("WANDB_MODE") or self._init_kwargs.get("mode"):
            return self._init_kwargs.pop("mode", None) or None
        if not has_wandb_credentials():
            target = os.path.join(os.path.abspath(self._save_dir), "wandb")
            warnings.warn(
                f"W&B: no API key found (WANDB_API_KEY, ~/.netrc or `wandb login`), so this run "
                f"is logged offline under {target}. Upload it later with `wandb sync {target}/offline-run-*`.",
                UserWarning,
                stacklevel=4,
            )
            return "offline"
        return None

    @property
    def experiment(self):
        """The ``wandb`` run (started on first use)."""
        with self._create:
            return self._start_run()

    def _start_run(self):
        if self._run is None:
            wandb = require("wandb", "wandb", "WandbLogger")
            os.makedirs(self._save_dir, exist_ok=True)
            settings = self._init_kwargs.pop("settings", None) or wandb.Settings(
                console="off", silent=True
            )
            self._run = wandb.init(
                project=self._project,
                name=self._name,
                dir=self._save_dir,
                config=self._config,
                id=self._id,
                tags=self._tags,
                group=self._group,
                mode=self._mode_chosen if self._thread is not None else self._mode(),
                resume="allow" if self._id else None,
                settings=settings,
                **self._init_kwargs,
            )
            self._run_dir = os.path.dirname(self._run.dir)
            self._id = self._run.id
            if self._run.offline:
                self._run_file.watch(self._run.settings.sync_file)
            self._run.define_metric(self.STEP_METRIC)
            self._run.define_metric("*", step_metric=self.STEP_METRIC, step_sync=True)
            self._started.set()
        return self._run

    @property
    def name(self) -> str | None:
        return self._run.name if self._run is not None else self._name

    @property
    def version(self) -> str | None:
        return self._run.id if self._run is not None else self._id

    @property
    def save_dir(self) -> str:
        return self._save_dir

    @property
    def log_dir(self) -> str | None:
        """The run's folder (``.../wandb/offline-run-*`` or ``run-*``): waits at most
        ``flush_timeout`` seconds for a run that is being started; ``None`` if there is none."""
        if self._thread is not None:
            self._started.wait(self._policy.flush_timeout)
        return self._run_dir

    def _deliver(self, record: Record) -> None:
        run = self.experiment
        self._run_file.check()
        if record.kind == "hparams":
            run.config.update(record.values, allow_val_change=True)
        else:
            run.log({**record.values, self.STEP_METRIC: record.step})
        self._run_file.keep(record)

    def _close(self, status: str) -> None:
        if self._run is not None:
            run, self._run = self._run, None
            run.finish(exit_code=_EXIT_CODES[status])
            self._run_file.check()  # removed before the end: the records go to the spool
            self._run_file.release()

    def finalize(self, status: str = "success") -> None:
        try:
            super().finalize(status)
        finally:
            run, self._run = self._run, None
            if (
                run is not None and self._run_file.lost is not None
            ):  # the delivery thread gave up on it
                try:
                    run.finish(exit_code=_EXIT_CODES[status])
                except Exception:
                    pass  # its file is gone: nothing left to close properly
