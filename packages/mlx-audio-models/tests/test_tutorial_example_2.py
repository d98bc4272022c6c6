"""The tutorial's Example 2 (CLAP fine-tuning) runs verbatim from docs/tutorials/training.md.

Only three numbers change, for CPU time: the datasets hold 16 training and 8 validation
pairs (instead of 500 and 100) and the Trainer runs max_epochs=1 (instead of 10). Everything
else — CLAP at its default size, freeze_text=True and the trainable-parameter print,
GradientClipper, ModelCheckpoint on val_loss, EarlyStopping, WandbLogger — is as written.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

TUTORIAL = Path(__file__).resolve().parents[3] / "docs" / "tutorials" / "training.md"


def test_example_2_runs(tmp_path):
    text = TUTORIAL.read_text()
    part = text[text.index("## Example 2") : text.index("## Tips and Best Practices")]
    code = "\n\n".join(re.findall(r"```python\n(.*?)```", part, flags=re.S))
    for old, new in [
        ("AudioTextDataset(size=500, train=True)", "AudioTextDataset(size=16, train=True)"),
        ("AudioTextDataset(size=100, train=False)", "AudioTextDataset(size=8, train=False)"),
        (
            "max_epochs=10,\n    callbacks=callbacks,\n    logger=logger",
            "max_epochs=1,\n    callbacks=callbacks,\n    logger=logger",
        ),
    ]:
        assert code.count(old) == 1, old
        code = code.replace(old, new)
    script = tmp_path / "example_2.py"
    script.write_text(code)
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    env.update(HOME=str(home), WANDB_CONFIG_DIR=str(home / ".wandb"))
    result = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=1200,
        env=env,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    line = next(line for line in result.stdout.splitlines() if line.startswith("Total:"))
    total, trainable = (int(x.replace(",", "")) for x in re.findall(r"[\d,]+", line)[:2])
    assert total > 150_000_000 and 20_000_000 < trainable < total  # the text encoder is frozen
    assert "offline" in result.stderr and "wandb sync" in result.stderr  # no account, no prompt
    assert (tmp_path / "checkpoints" / "clap" / "last").is_symlink()
    assert "Trainer: finished" in result.stdout
