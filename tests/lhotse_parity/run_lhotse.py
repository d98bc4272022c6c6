"""Reference side of the Lhotse suite (anchor venv): Lhotse's DynamicBucketingSampler on each
case of ``lhotse_cases.py``; writes ``{case: [rank 0 batches, rank 1 batches, ...]}`` (dataset indices).

    python run_lhotse.py OUT.json
"""

from __future__ import annotations

import json
import sys
import warnings

from lhotse import CutSet
from lhotse.dataset.sampling.dynamic_bucketing import DynamicBucketingSampler
from lhotse.testing.dummies import dummy_cut
from lhotse_cases import CASES, order


def run(case: dict) -> list[list[list[int]]]:
    values = case["durations"]
    feed = order(len(values), case["seed"], case["epoch"], case["shuffle"])
    cuts = CutSet.from_cuts(dummy_cut(i, duration=values[i]) for i in feed)
    index = {cut.id: i for cut, i in zip(cuts, feed)}
    out = []
    for rank in range(case["world_size"]):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            sampler = DynamicBucketingSampler(
                cuts,
                max_duration=case["max_duration"],
                max_cuts=case["max_cuts"],
                num_buckets=case["num_buckets"],
                duration_bins=case["duration_bins"],
                buffer_size=case["buffer_size"],
                quadratic_duration=case["quadratic_duration"],
                shuffle=case["shuffle"],
                drop_last=case["drop_last"],
                seed=case["seed"],
                sync_buckets=case["sync_buckets"],
                world_size=case["world_size"],
                rank=rank,
            )
            sampler.set_epoch(case["epoch"])
            out.append([[index[c.id.split("_dup")[0]] for c in batch] for batch in sampler])
    return out


def main(path: str) -> None:
    results = {name: run(case) for name, case in CASES.items()}
    with open(path, "w") as f:
        json.dump(results, f)


if __name__ == "__main__":
    main(sys.argv[1])
