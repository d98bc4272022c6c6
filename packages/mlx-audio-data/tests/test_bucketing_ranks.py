"""Duration batching under real ``mlx.launch --backend ring`` ranks: the Trainer's
``shard_loader`` splits a DynamicBucketingSampler and a DynamicBucketingDataset so that every
rank gets the same number of batches (each step is a collective: unequal counts would hang)
and the ranks together see the whole epoch."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).parent
SCRIPT = HERE / "bucketing_ranks_script.py"
LAUNCHER = Path(sys.executable).parent / "mlx.launch"

pytestmark = pytest.mark.skipif(
    shutil.which("mlx.launch", path=str(LAUNCHER.parent)) is None,
    reason="mlx.launch is not installed next to this Python",
)


@pytest.mark.parametrize(("kind", "workers"), [("sampler", 2), ("stream", 2)])
def test_ranks_get_equal_batch_counts_under_mlx_launch(tmp_path, kind, workers):
    config = json.dumps({"out": str(tmp_path), "kind": kind, "workers": workers})
    command = [str(LAUNCHER), "-n", "2", "--backend", "ring", "--python", sys.executable]
    result = subprocess.run(
        [*command, str(SCRIPT), config], capture_output=True, text=True, timeout=180, cwd=HERE
    )
    ranks = [tmp_path / f"rank{r}.json" for r in range(2)]
    assert all(p.exists() for p in ranks), result.stdout + result.stderr
    seen = [json.loads(p.read_text()) for p in ranks]
    assert [s["size"] for s in seen] == [2, 2]
    assert len(seen[0]["batches"]) == len(seen[1]["batches"]) > 0
    ids = [i for s in seen for batch in s["batches"] for i in batch]
    assert set(ids) == set(range(157)) and len(ids) <= 158
