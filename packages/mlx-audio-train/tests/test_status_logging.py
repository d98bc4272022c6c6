"""NOTE [console logging]: the Trainer's status text goes through the ``mlx_audio.train`` logger,
shows on the console as print did when nobody configured logging, is silenced by the usual
logging configuration, comes from rank 0 only, and never raises on a closed stdout."""

import contextlib
import io
import logging
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from mlx_audio.train import _status, distributed
from mlx_audio.train._lifecycle import interrupt_handler

HERE = Path(__file__).resolve().parent


@contextlib.contextmanager
def unconfigured():
    """This process as if nobody had configured logging, inside a test's body (pytest puts its
    handlers on the root at the start of each phase)."""
    root = logging.getLogger()
    log = logging.getLogger("mlx_audio.train")
    saved = (root.handlers[:], log.level, log.handlers[:], log.propagate, _status._ready)
    raising = logging.raiseExceptions
    root.handlers, log.handlers, log.propagate, _status._ready = [], [], True, False
    log.setLevel(logging.NOTSET)
    logging.raiseExceptions = True  # the default, which prints "--- Logging error ---"
    try:
        yield log
    finally:
        root.handlers, log.handlers, log.propagate, _status._ready = (
            saved[0],
            saved[2],
            saved[3],
            saved[4],
        )
        log.setLevel(saved[1])
        logging.raiseExceptions = raising


def fit_script(setup: str) -> subprocess.CompletedProcess:
    """A one-step fit in a fresh interpreter, after ``setup`` (the user's logging configuration)."""
    code = textwrap.dedent(
        """
        import logging
        {setup}
        from mlx_audio.train import Trainer
        from train_testing import TinyClassifier, blobs
        from mlx_audio.data import DataLoader
        trainer = Trainer(max_steps=1, logger=False, enable_checkpointing=False,
                          enable_progress_bar=False)
        trainer.fit(TinyClassifier(), DataLoader(blobs(16), batch_size=8))
        """
    ).format(setup=setup)
    return subprocess.run(
        [sys.executable, "-c", code], cwd=HERE, capture_output=True, text=True, timeout=300
    )


def test_import_installs_no_handler_and_no_level():
    code = (
        "import logging, mlx_audio.train, mlx_audio.train.trainer, mlx_audio.train.callbacks\n"
        "for name in ('mlx_audio.train', 'mlx_audio', ''):\n"
        "    log = logging.getLogger(name)\n"
        "    print(name, log.level, log.handlers, log.propagate)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.splitlines() == [
        "mlx_audio.train 0 [] True",
        "mlx_audio 0 [] True",
        " 30 [] True",  # the root as Python leaves it: WARNING, no handler
    ], result.stderr


def test_unconfigured_the_lines_show_on_stdout_as_print_did():
    result = fit_script("")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "195 trainable params" in out and "  | Name" in out  # ModelSummary's table
    last = out.splitlines()[-1]
    assert last.startswith("Trainer: finished at epoch ") and ", step 1 (" in last
    assert "trainable params" not in result.stderr and "Trainer:" not in result.stderr
    assert "INFO" not in out  # the bare message, no logging prefix


@pytest.mark.parametrize(
    "setup",
    [
        "logging.getLogger('mlx_audio.train').setLevel(logging.WARNING)",
        "logging.getLogger('mlx_audio').setLevel(logging.WARNING)",
        "logging.disable(logging.INFO)",
    ],
)
def test_the_usual_logging_configuration_silences_them(setup):
    result = fit_script(setup)
    assert result.returncode == 0, result.stderr
    assert "trainable params" not in result.stdout + result.stderr
    assert "Trainer: finished" not in result.stdout + result.stderr


def test_a_configured_root_receives_them_instead_of_the_console():
    result = fit_script("logging.basicConfig(format='LOG %(name)s %(message)s')")
    assert result.returncode == 0, result.stderr
    assert "trainable params" not in result.stdout
    assert "LOG mlx_audio.train Trainer: finished at epoch " in result.stderr


def test_console_writes_the_bare_text_info_to_stdout_warnings_to_stderr(capsys):
    with unconfigured() as log:
        _status.rank_zero_info("line one\nline two")
        _status.rank_zero_warning("Trainer: something was not delivered")
        (handler,) = log.handlers
        assert isinstance(handler, _status.Console) and not log.propagate
        assert log.level == logging.INFO
    captured = capsys.readouterr()
    assert captured.out == "line one\nline two\n"
    assert captured.err == "Trainer: something was not delivered\n"


class Broken(io.TextIOBase):
    def write(self, text):
        raise BrokenPipeError(32, "Broken pipe")


@pytest.mark.parametrize("kind", ["closed", "broken pipe"])
def test_signal_handler_lines_never_raise_on_a_dead_stdout(capsys, kind):
    dead = io.StringIO() if kind == "closed" else Broken()
    if kind == "closed":
        dead.close()
    ctrl_c, sigterm = interrupt_handler(), interrupt_handler()
    real, sys.stdout = sys.stdout, dead
    try:
        with unconfigured():
            ctrl_c._handle(signal.SIGINT, None)  # no exception ...
            sigterm._handle(signal.SIGTERM, None)
    finally:
        sys.stdout = real
    assert ctrl_c.requested and sigterm.terminated
    assert capsys.readouterr().err == ""  # ... and no "--- Logging error ---" traceback


def test_console_still_reports_errors_that_are_not_the_stream(capsys):
    with unconfigured() as log:
        _status.ensure_console()
        log.info("%d", "not a number")  # a bug in a message, not a dead stream
    assert "--- Logging error ---" in capsys.readouterr().err


def test_only_rank_zero_emits_status_lines(caplog, monkeypatch):
    caplog.set_level(logging.INFO, "mlx_audio.train")
    monkeypatch.setattr(distributed, "global_rank", lambda: 1)
    _status.rank_zero_info("from rank 1")
    _status.rank_zero_warning("from rank 1 too")
    _status.warning("a failure on rank 1")
    assert caplog.messages == ["a failure on rank 1"]
