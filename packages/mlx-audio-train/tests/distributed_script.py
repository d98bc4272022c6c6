"""A training run for the data-parallel tests: ``python distributed_script.py '<json config>'``,
alone or under ``mlx.launch -n N``. Writes the final weights and what each rank saw under
``config["out"]``."""

from __future__ import annotations

import json
import os
import sys

import mlx.core as mx
import numpy as np
from train_testing import TinyClassifier, blobs, flat

from mlx_audio.data import DataLoader, IterableDataset, get_shard_info
from mlx_audio.loggers import CSVLogger
from mlx_audio.train import Trainer
from mlx_audio.train.callbacks import Callback, ModelCheckpoint


class CountValidation(Callback):
    batches = 0

    def on_validation_batch_end(self, trainer, module, outputs, batch, batch_idx, dataloader_idx=0):
        self.batches += 1


class OwnStream(IterableDataset):
    """An IterableDataset that yields its own share of the rows (the documented hook)."""

    def __init__(self, rows) -> None:
        self.rows = rows

    def __iter__(self):
        info = get_shard_info()
        for i in range(info.index, len(self.rows[1]), info.count):
            yield self.rows[0][i], self.rows[1][i]


class Unsized:
    """An iterable of batches without a length (``count`` of them)."""

    def __init__(self, batches: list) -> None:
        self.batches = batches

    def __iter__(self):
        return iter(self.batches)


class Logging(TinyClassifier):
    """Also logs through self.log: a mean with sync_dist and a max (reduced by its reduce_fx)."""

    fail_at: int | None = None
    fail_message = "failed on purpose"

    def training_step(self, batch, batch_idx):
        loss, metrics = self.compute_loss(batch)
        self.log("loss_synced", loss, sync_dist=True)
        self.log(
            "largest_label", mx.max(batch[1]).astype(mx.float32), reduce_fx="max", on_epoch=True
        )
        return loss, metrics

    def on_train_batch_start(self, batch, batch_idx):
        if self.fail_at is not None and self.trainer.global_step == self.fail_at:
            raise RuntimeError(f"rank {self.trainer.global_rank} {self.fail_message}")

    def validation_step(self, batch, batch_idx):
        loss, metrics = self.compute_loss(batch)
        self.log("val_loss", loss)
        self.log("val_accuracy", metrics["accuracy"])


def main() -> None:
    config = json.loads(sys.argv[1])
    out = config["out"]
    world = mx.distributed.init()
    rank = world.rank()
    ranks = world.size()
    counter = CountValidation()
    trainer = Trainer(
        max_epochs=config.get("max_epochs", 3),
        max_steps=config.get("max_steps", -1),
        accumulate_grad_batches=config.get("accumulate", 1),
        gradient_clip_val=config.get("clip"),
        seed=config.get("seed", 7),
        logger=CSVLogger(
            os.path.join(out, f"rank{rank}" if config.get("per_rank_roots") else ""),
            name="logs",
            version=config["logger_versions"][rank] if "logger_versions" in config else None,
        ),
        enable_progress_bar=False,
        log_every_n_steps=1,
        num_sanity_val_steps=0,
        default_root_dir=os.path.join(out, f"rank{rank}") if config.get("per_rank_roots") else out,
        callbacks=[
            ModelCheckpoint(
                every_n_train_steps=config.get("every_n_train_steps", 0), save_top_k=-1
            ),
            counter,
        ],
    )
    mx.random.seed(
        100 + rank
    )  # different initial weights on every rank: the Trainer broadcasts rank 0's
    model = Logging(total_steps=40, dropout=config.get("dropout", 0.0))
    if config.get("fail_rank") == rank:
        model.fail_at = config["fail_at"]
        model.fail_message = config.get("fail_message", model.fail_message)
    batch = config["global_batch"] // ranks
    if config.get("unequal"):  # plain iterables, a different count on every rank
        data = blobs(256)
        count = config["unequal"][rank]
        batches = [
            tuple(mx.array(a) for a in data.__getitems__(np.arange(i * batch, (i + 1) * batch)))
            for i in range(count)
        ]
        train = Unsized(batches) if config.get("unsized") else batches
        val = None
    elif config.get("own_stream"):
        train = DataLoader(OwnStream(blobs(256).__getitems__(np.arange(256))), batch_size=batch)
        val = DataLoader(blobs(64, seed=1), batch_size=batch)
    elif config.get(
        "hf_stream"
    ):  # a Hugging Face stream, unshuffled: split by rank (and by worker)
        import datasets

        points = blobs(256).__getitems__(np.arange(256))
        table = datasets.Dataset.from_dict(
            {"x": points[0].tolist(), "y": points[1].tolist()}
        ).with_format("numpy")
        stream = table.to_iterable_dataset(num_shards=config["hf_stream"])
        train = DataLoader(
            stream,
            batch_size=batch,
            num_workers=config.get("workers", 0),
            collate_fn=lambda rows: (
                np.stack([r["x"] for r in rows]).astype(np.float32),
                np.array([r["y"] for r in rows], dtype=np.int32),
            ),
        )
        val = DataLoader(blobs(64, seed=1), batch_size=batch)
    else:
        train = DataLoader(
            blobs(256), batch_size=batch, shuffle=True, seed=3, num_workers=config.get("workers", 0)
        )
        val = DataLoader(blobs(64, seed=1), batch_size=batch)
    trainer.fit(model, train, val, ckpt_path=config.get("ckpt_path"))
    counter.batches = 0
    validated = (
        trainer.validate(model, DataLoader(blobs(64, seed=2), batch_size=batch))
        if config.get("validate")
        else None
    )
    seen = {
        "validated": validated,
        "validate_batches": counter.batches,
        "rank": rank,
        "world": ranks,
        "global_step": trainer.global_step,
        "callback_metrics": trainer.callback_metrics,
        "num_training_batches": trainer.num_training_batches,
        "ckpt_dirpath": trainer.checkpoint_callback.dirpath,
        "ckpt_path": trainer.ckpt_path,
    }
    with open(os.path.join(out, f"seen-{rank}.json"), "w") as f:
        json.dump(seen, f)
    if rank == 0:
        mx.save_safetensors(
            os.path.join(out, "weights.safetensors"),
            {k: mx.array(v) for k, v in flat(model.parameters()).items()},
        )


if __name__ == "__main__":
    main()
