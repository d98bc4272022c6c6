"""DynamicBucketingSampler against Lhotse's (lhotse.dataset.sampling.DynamicBucketingSampler):
the same index batches, for every rank, on every case of ``lhotse_cases.py``. Lhotse's side
runs live in the anchor venv where it has Lhotse, else comes from golden/lhotse.json
(tests/golden.py)."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import pytest

sys.path.append(str(Path(__file__).resolve().parents[1]))  # tests/golden.py
sys.path.append(str(Path(__file__).resolve().parent))
from golden import check_golden, reference  # noqa: E402
from lhotse_cases import CASES  # noqa: E402

from mlx_audio.data import DynamicBucketingSampler  # noqa: E402


def ours(case: dict) -> list[list[list[int]]]:
    out = []
    for rank in range(case["world_size"]):
        sampler = DynamicBucketingSampler(
            case["durations"],
            max_duration=case["max_duration"],
            max_batch_size=case["max_cuts"],
            num_buckets=case["num_buckets"],
            duration_bins=case["duration_bins"],
            buffer_size=case["buffer_size"],
            quadratic_duration=case["quadratic_duration"],
            shuffle=case["shuffle"],
            drop_last=case["drop_last"],
            seed=case["seed"],
            sync_buckets=case["sync_buckets"],
            num_replicas=case["world_size"],
            rank=rank,
        )
        sampler.set_epoch(case["epoch"])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the long_sample case's "exceeded" warning
            out.append([list(batch) for batch in sampler])
    return out


SYNCED = [name for name, case in CASES.items() if case["sync_buckets"]]
UNSYNCED = [name for name, case in CASES.items() if not case["sync_buckets"]]


@pytest.mark.parametrize("name", SYNCED)
def test_same_batches_as_lhotse(name):
    assert ours(CASES[name]) == reference("lhotse")[name]


@pytest.mark.parametrize("name", UNSYNCED)
def test_sync_buckets_false_keeps_the_samples_lhotse_drops(name):
    """Lhotse's selection without ``sync_buckets`` draws among "non-empty" buckets with
    ``if b`` on a ``queue.Queue`` (always true): at the end of an epoch it can draw an empty
    bucket, which ends the epoch with samples left. Ours draws among the non-empty ones: its
    batches are Lhotse's, then the ones Lhotse lost."""
    case = CASES[name]
    mine, theirs = ours(case)[0], reference("lhotse")[name][0]
    assert mine[: len(theirs)] == theirs
    assert sorted(i for batch in mine for i in batch) == list(range(len(case["durations"])))
    assert sum(map(len, theirs)) < len(case["durations"])  # Lhotse's loss, still there


def test_golden_file_is_what_lhotse_gives():
    check_golden("lhotse")
