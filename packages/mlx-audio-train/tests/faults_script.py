"""A data-parallel run for the fault tests (test_distributed_faults.py):
``python faults_script.py '<json config>'`` under ``mlx.launch -n 2``.

Train mode (the default): ``max_steps`` steps of AdamW with dropout, each batch ``sleep`` seconds
longer, into ``out``; at step ``ready_at`` each rank writes ``ready-<rank>`` holding its pid (the
test signals it then). ``exit-<rank>`` records the status the rank leaves ``main`` with.

Resume mode (``{"resume": [[checkpoint, out], ...]}``): in one process per rank, each checkpoint
is resumed to ``max_steps`` (``null``: a run from scratch, the reference) and its final weights
are written to ``out/weights.safetensors`` -- one launch for every trial.
"""

from __future__ import annotations

import json
import os
import sys
import time

import mlx.core as mx
from train_testing import TinyClassifier, blobs, flat

from mlx_audio.data import DataLoader
from mlx_audio.loggers import CSVLogger
from mlx_audio.train import Trainer
from mlx_audio.train.callbacks import Callback, ModelCheckpoint


class Pace(Callback):
    """Slows each batch down and says (in a file) when training is under way."""

    def __init__(self, out: str, sleep: float, ready_at: int, rank: int) -> None:
        self.out, self.sleep, self.ready_at, self.rank = out, sleep, ready_at, rank

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        if trainer.global_step == self.ready_at and trainer.update_pending:
            path = os.path.join(self.out, f"ready-{self.rank}")
            with open(path + ".tmp", "w") as f:
                f.write(str(os.getpid()))
            os.replace(path + ".tmp", path)
        time.sleep(self.sleep)


class SlowSave(Callback):
    """Rank 0 says (``saving-0``) that it is writing a checkpoint, and takes ``seconds`` more."""

    def __init__(self, out: str, seconds: float) -> None:
        self.out, self.seconds = out, seconds

    def on_save_checkpoint(self, trainer, module, checkpoint):
        if trainer.global_rank == 0:
            open(os.path.join(self.out, "saving-0"), "w").close()
            time.sleep(self.seconds)


class Masks(TinyClassifier):
    """Records the dropout mask each step draws (eager steps only: ``compile=False``)."""

    masks: list = []

    def training_step(self, batch, batch_idx):
        self.masks.append(self.drop(mx.ones((4, 16))).tolist())
        return super().training_step(batch, batch_idx)


def fit(config: dict, out: str, rank: int, ckpt_path: str | None) -> Trainer:
    steps = config.get("max_steps", 40)
    callbacks = [ModelCheckpoint(save_top_k=-1, every_n_train_steps=config.get("every_n", 0))]
    if config.get("sleep") is not None:
        callbacks.append(Pace(out, config["sleep"], config.get("ready_at", 2), rank))
    if config.get("slow_save"):
        callbacks.append(SlowSave(out, config["slow_save"]))
    trainer = Trainer(
        max_steps=steps,
        seed=7,
        logger=CSVLogger(out, name="logs"),
        enable_progress_bar=False,
        log_every_n_steps=1,
        default_root_dir=out,
        callbacks=callbacks,
        compile=not config.get("masks"),
        **config.get("trainer", {}),
    )
    model = (Masks if config.get("masks") else TinyClassifier)(total_steps=steps, dropout=0.1)
    if "samples" in config:  # plain lists of batches, of one length per rank: not split
        loader = DataLoader(blobs(config["samples"][rank]), batch_size=16)
        train: object = [tuple(mx.array(a) for a in batch) for batch in loader]
    else:
        train = DataLoader(blobs(256), batch_size=16, shuffle=True, seed=3)
    trainer.fit(model, train, ckpt_path=ckpt_path)
    if config.get("masks"):
        with open(os.path.join(out, f"masks-{rank}.json"), "w") as f:
            json.dump(Masks.masks, f)
    if rank == 0:
        mx.save_safetensors(
            os.path.join(out, "weights.safetensors"),
            {k: mx.array(v) for k, v in flat(model.parameters()).items()},
        )
    return trainer


def main() -> None:
    config = json.loads(sys.argv[1])
    rank = mx.distributed.init().rank()
    if "resume" in config:
        for ckpt_path, out in config["resume"]:
            os.makedirs(out, exist_ok=True)
            fit(config, out, rank, ckpt_path)
        return
    out = config["out"]
    code: object = 0
    try:
        trainer = fit(config, out, rank, config.get("ckpt_path"))
        with open(os.path.join(out, f"done-{rank}.json"), "w") as f:
            json.dump({"global_step": trainer.global_step}, f)
    except SystemExit as error:
        code = error.code
        raise
    except BaseException as error:
        code = repr(error)
        raise
    finally:
        with open(os.path.join(out, f"exit-{rank}"), "w") as f:
            f.write(str(code))


if __name__ == "__main__":
    main()
