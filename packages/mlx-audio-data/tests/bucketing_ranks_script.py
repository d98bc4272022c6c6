"""One rank of ``test_bucketing_ranks.py`` (run under ``mlx.launch``): an epoch of duration
batches, split by ``shard_loader`` (rank and world size from ``mx.distributed``), each step an
``all_sum`` in lockstep (a rank with fewer batches would hang the others); writes the ids seen.

    python bucketing_ranks_script.py '{"out": DIR, "kind": "sampler" | "stream", "workers": 0}'
"""

from __future__ import annotations

import json
import os
import sys

import mlx.core as mx
import numpy as np

from mlx_audio.data import (
    DataLoader,
    Dataset,
    DynamicBucketingDataset,
    DynamicBucketingSampler,
    IterableDataset,
    PadCollate,
    get_worker_info,
    shard_loader,
)

DURATIONS = np.clip(0.5 + np.random.default_rng(0).lognormal(1.0, 0.9, 157), 0.5, 30.0)


class Clips(Dataset):
    def __len__(self):
        return len(DURATIONS)

    def __getitem__(self, i):
        return np.zeros(int(DURATIONS[i] * 10) + 1, np.float32), i


class Records(IterableDataset):  # the same stream on every rank, split by worker only
    def __iter__(self):
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info else (0, 1)
        for i in range(worker, len(DURATIONS), workers):
            yield {"id": i, "seconds": float(DURATIONS[i])}


def ids(batch):
    return [record["id"] for record in batch]


def main() -> None:
    config = json.loads(sys.argv[1])
    group = mx.distributed.init()
    workers = config.get("workers", 0)
    if config["kind"] == "sampler":
        sampler = DynamicBucketingSampler(DURATIONS, max_duration=40.0, shuffle=True, seed=3)
        loader = DataLoader(
            Clips(), batch_sampler=sampler, collate_fn=PadCollate(), num_workers=workers
        )
    else:
        stream = DynamicBucketingDataset(
            Records(), "seconds", max_duration=40.0, duration_bins=[2.0, 5.0], shuffle=True
        )
        loader = DataLoader(stream, batch_size=None, collate_fn=ids, num_workers=workers)
    share = shard_loader(loader)
    seen = []
    for batch in share:
        batch_ids = np.asarray(batch[1]).tolist() if config["kind"] == "sampler" else batch
        seen.append(batch_ids)
        mx.eval(mx.distributed.all_sum(mx.array([len(batch_ids)]), group=group))
    share.close()  # its workers and their shared memory, before the launcher reaps this rank
    with open(os.path.join(config["out"], f"rank{group.rank()}.json"), "w") as f:
        json.dump({"batches": seen, "size": group.size()}, f)


if __name__ == "__main__":
    main()
