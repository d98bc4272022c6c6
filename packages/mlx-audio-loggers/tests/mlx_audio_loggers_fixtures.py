"""Real backends for the logger tests: a live `mlflow server`, W&B offline in a clean home.

Shared with the train tests (imported by both conftest files)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class MLflowServer:
    """A real `mlflow server` on 127.0.0.1 (sqlite store under ``root``) that a test can
    kill and start again on the same port and store."""

    def __init__(self, root: Path, port: int | None = None) -> None:
        self.root = root
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None
        self._log = None

    def start(self) -> None:
        mlflow = Path(sys.executable).with_name("mlflow")
        command = [
            str(mlflow),
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--workers",
            "1",
            "--backend-store-uri",
            f"sqlite:///{self.root}/mlflow.db",
            "--default-artifact-root",
            str(self.root / "artifacts"),
        ]
        self._log = open(self.root / "server.log", "a")  # noqa: SIM115 (closed in stop)
        # no job runner: its huey consumers are processes the tests do not use, and mlflow
        # leaves their store (a mkdtemp under /dev/shm) behind when the server stops
        env = os.environ | {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
        self.process = subprocess.Popen(
            command, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True, env=env
        )

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/health", timeout=2) as response:
                return response.status == 200
        except OSError:
            return False

    def wait_healthy(self, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while not self.healthy():
            if (
                self.process is None
                or self.process.poll() is not None
                or time.monotonic() > deadline
            ):
                raise RuntimeError(
                    f"mlflow server did not start:\n{(self.root / 'server.log').read_text()[-3000:]}"
                )
            time.sleep(0.5)

    def stop(self, sig: int = 15) -> None:
        if self.process is None:
            return
        try:
            os.killpg(self.process.pid, sig)
        except ProcessLookupError:
            pass
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, 9)
            self.process.wait()
        self.process = None
        if self._log is not None:
            self._log.close()


# Both packages' conftest files import these fixtures, so pytest holds two definitions of each;
# the server is kept here so that a session that runs both starts it once.
_SHARED: dict[str, MLflowServer] = {}


@pytest.fixture(scope="session")
def mlflow_server_process(tmp_path_factory) -> Iterator[MLflowServer]:
    """One real `mlflow server` on 127.0.0.1 (sqlite store) for the whole session, stopped at
    its end. A test may kill and restart it (same port and store) if it leaves it healthy."""
    server = _SHARED.get("server")
    owner = server is None
    if server is None:
        server = MLflowServer(tmp_path_factory.mktemp("mlflow-server"))
        _SHARED["server"] = server
        server.start()
    try:
        server.wait_healthy()
        yield server
    finally:
        if owner:  # its store is thrown away: no graceful shutdown to wait for (up to 20 s)
            _SHARED.pop("server", None)
            server.stop(signal.SIGKILL)


@pytest.fixture(scope="session")
def mlflow_server(mlflow_server_process: MLflowServer) -> str:
    """The session's `mlflow server` (see ``mlflow_server_process``): its URL."""
    return mlflow_server_process.url


@pytest.fixture
def no_wandb_account(tmp_path, monkeypatch):
    """A home directory with no W&B credentials, no TTY and no WANDB_MODE."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(home / ".config" / "wandb"))
    monkeypatch.setenv("WANDB_CACHE_DIR", str(home / ".cache" / "wandb"))
    monkeypatch.setenv("WANDB_DATA_DIR", str(home / ".local" / "wandb"))
    for variable in (
        "WANDB_API_KEY",
        "WANDB_MODE",
        "WANDB_BASE_URL",
        "NETRC",
        "WANDB_IDENTITY_TOKEN_FILE",
    ):
        monkeypatch.delenv(variable, raising=False)
    return home
