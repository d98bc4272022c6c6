"""Run by test_toolkit_distributed.py alone or under ``mlx.launch -n 2``: metrics updated with
each rank's share of one dataset (unequal shares) and a fit with EMAWeightAveraging on a
sharded loader; rank 0 writes what it computed to ``out/result.json``."""

from __future__ import annotations

import json
import sys

import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim
import numpy as np

import mlx_audio.train  # noqa: F401  (first: OpenBLAS before mlx.core on Linux)
from mlx_audio.data import ArrayDataset, DataLoader
from mlx_audio.train import Trainer, TrainModule, distributed
from mlx_audio.train.callbacks import EMAWeightAveraging
from mlx_audio.train.metrics import AUROC, Accuracy, AveragePrecision, ConfusionMatrix


class Linear(TrainModule):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 3)

    def compute_loss(self, batch):
        x, y = batch
        return mx.mean(nn.losses.cross_entropy(self.fc(x), y)), {}

    def configure_optimizers(self):
        return optim.SGD(learning_rate=0.1)


def main() -> None:
    config = json.loads(sys.argv[1])
    group = mx.distributed.init()
    rank, world = group.rank(), group.size()
    rng = np.random.default_rng(0)
    scores = rng.standard_normal((17, 4)).astype(np.float32)
    tags = rng.integers(0, 2, (17, 4))
    classes = rng.integers(0, 4, 17)
    share = slice(0, 17) if world == 1 else (slice(0, 10) if rank == 0 else slice(10, 17))
    metrics = {
        "map": AveragePrecision("multilabel", num_labels=4),
        "auroc": AUROC("multilabel", num_labels=4),
        "accuracy": Accuracy("multiclass", num_classes=4, average="macro"),
        "confusion": ConfusionMatrix("multiclass", num_classes=4),
    }
    for name, metric in metrics.items():
        if name in ("map", "auroc"):
            metric.update(mx.array(scores[share]), mx.array(tags[share]))
        else:
            metric.update(mx.array(scores[share]), mx.array(classes[share]))
    lonely = AveragePrecision("multiclass", num_classes=4)  # rank 1 sees no batch at all
    if rank == 0:
        lonely.update(mx.array(scores), mx.array(classes))
    metrics["lonely"] = lonely
    result = {name: np.array(m.compute()).tolist() for name, m in metrics.items()}

    x = rng.standard_normal((32, 4)).astype(np.float32)
    y = rng.integers(0, 3, 32).astype(np.int32)
    batch = config.get("batch", 8)  # per rank: 2 ranks x 4 = one process's 8
    ema = EMAWeightAveraging(decay=0.8)
    trainer = Trainer(
        max_epochs=2,
        seed=1,
        callbacks=[ema],
        logger=False,
        enable_progress_bar=False,
        enable_checkpointing=False,
        enable_model_summary=False,
    )
    mx.random.seed(0)
    model = Linear()
    trainer.fit(model, DataLoader(ArrayDataset(x, y), batch_size=batch))
    result["ema"] = {k: np.array(v).tolist() for k, v in ema.average_weights.items()}
    result["n_averaged"] = ema.n_averaged
    if distributed.global_rank() == 0:
        with open(f"{config['out']}/result.json", "w") as f:
            json.dump(result, f)


if __name__ == "__main__":
    main()
