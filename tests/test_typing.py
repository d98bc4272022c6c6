"""The Trainer's contract is typed: what callbacks and modules read from a Trainer is checked by
mypy (``make test`` runs it on the packages). A typo in an argument's name, or a value of the
wrong type, fails type checking instead of reaching run time."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SNIPPET = """
from mlx_audio.train import Trainer, TrainModule
from mlx_audio.train.callbacks import Callback


class Reader(Callback):
    def on_train_epoch_end(self, trainer: Trainer, module: TrainModule) -> None:
        epochs: int | None = trainer.max_epochs
        steps: int | None = trainer.max_steps
        step: int = trainer.global_step
        name: str = trainer.precision
        trainer.max_epoch_typo  # E1
        trainer.precision + 1  # E2
        module.trainer.not_an_attribute  # E3
"""


def test_mypy_checks_the_trainer_contract(tmp_path):
    path = tmp_path / "reader.py"
    path.write_text(textwrap.dedent(SNIPPET))
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", str(ROOT / "pyproject.toml"), str(path)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
    )
    errors = [line for line in result.stdout.splitlines() if ": error:" in line]
    lines = SNIPPET.splitlines()
    flagged = {lines[int(e.split(":")[1]) - 1].split("# ")[-1] for e in errors}
    assert flagged == {"E1", "E2", "E3"}, result.stdout
    assert '"Trainer" has no attribute "max_epoch_typo"' in result.stdout
