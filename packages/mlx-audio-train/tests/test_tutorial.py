"""The tutorial's Example 1 runs verbatim (from docs/tutorials/training.md), then resumes."""

import os
import re
import subprocess
import sys
from pathlib import Path

TUTORIAL = Path(__file__).resolve().parents[3] / "docs" / "tutorials" / "training.md"


def example_1_blocks() -> list[str]:
    text = TUTORIAL.read_text()
    part = text[text.index("## Example 1") : text.index("## Example 2")]
    return re.findall(r"```python\n(.*?)```", part, flags=re.S)


def run(script: Path, cwd: Path) -> subprocess.CompletedProcess:
    env = {
        k: v for k, v in os.environ.items() if k != "LD_PRELOAD"
    }  # plain python, as a user runs it
    return subprocess.run(
        [sys.executable, str(script)], cwd=cwd, capture_output=True, text=True, timeout=900, env=env
    )


def test_example_1_verbatim_then_resume_in_a_new_process(tmp_path):
    blocks = example_1_blocks()
    assert len(blocks) == 6, "Example 1 has steps 1-5 plus the resume block"
    train = tmp_path / "example_1.py"
    train.write_text("\n\n".join(blocks[:5]))
    first = run(train, tmp_path)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    assert "Parameters: 421,642" in first.stdout
    assert "Trainer: finished" in first.stdout and "reference BLAS" not in first.stderr
    last = tmp_path / "checkpoints" / "last"
    assert last.is_symlink() and not os.path.isabs(os.readlink(last))
    assert (last / "model.safetensors").exists() and (last / "trainer_state.json").exists()
    assert (tmp_path / "logs" / "version_0" / "metrics.csv").exists()

    resume = tmp_path / "resume.py"
    resume.write_text("\n\n".join(blocks[:4] + [blocks[5]]))
    second = run(resume, tmp_path)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    epoch, step = (
        int(n) for n in re.findall(r"finished at epoch (\d+), step (\d+)", first.stdout)[0]
    )
    if epoch >= 10:  # max_epochs reached: nothing left to do
        assert "already finished" in second.stdout
    else:  # EarlyStopping stopped it: as in Lightning, it trains on until it stops it again
        resumed = re.findall(r"finished at epoch (\d+), step (\d+)", second.stdout)[0]
        assert int(resumed[0]) > epoch and int(resumed[1]) > step
