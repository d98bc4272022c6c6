"""Ctrl-C and crashes during fit: step boundary, checkpoint, loggers finalized, nothing lost.
And one fit with all four loggers at once."""

import csv
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
from train_testing import TinyClassifier, blobs

from mlx_audio.data import DataLoader
from mlx_audio.train import Trainer

CTRL_C = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from train_testing import TinyClassifier, blobs
    from mlx_audio.data import DataLoader
    from mlx_audio.loggers import CSVLogger
    from mlx_audio.train import Trainer
    from mlx_audio.train.callbacks import Callback, ModelCheckpoint

    class Slow(Callback):
        def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
            if trainer.global_step == 3:
                print("PIDS", *trainer._train_loader.worker_pids, flush=True)
            time.sleep(0.05)

    if __name__ == "__main__":
        root = Path(sys.argv[1])
        logger = CSVLogger(str(root), name="logs")
        trainer = Trainer(max_epochs=1000, accumulate_grad_batches=2, seed=0, default_root_dir=str(root), enable_progress_bar=False,
                          logger=logger, log_every_n_steps=1,
                          callbacks=[Slow(), ModelCheckpoint(dirpath=str(root / "ckpt"), save_on_exception=True)])
        try:
            trainer.fit(TinyClassifier(), DataLoader(blobs(64), batch_size=8, shuffle=True, num_workers=2))
        except KeyboardInterrupt:
            print("STOPPED", trainer.global_step, trainer.optimizer.state["step"].item(), flush=True)
            raise
    """
)


def test_ctrl_c_stops_at_a_step_boundary_and_saves(tmp_path):
    script = tmp_path / "ctrl_c.py"
    script.write_text(CTRL_C)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(
            [os.path.dirname(__file__), os.environ.get("PYTHONPATH", "")]
        ),
    }
    proc = subprocess.Popen(
        [sys.executable, str(script), str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,
    )
    line = proc.stdout.readline()
    while line and not line.startswith("PIDS"):  # the model summary comes first
        line = proc.stdout.readline()
    assert line.startswith("PIDS"), line + proc.stderr.read()
    workers = [int(p) for p in line.split()[1:]]
    os.killpg(proc.pid, signal.SIGINT)  # the terminal's Ctrl-C reaches workers too
    out, err = proc.communicate(timeout=60)
    assert proc.returncode != 0 and "KeyboardInterrupt" in err
    stopped = out.split("STOPPED")[1].split()
    assert stopped[0] == stopped[1]  # global_step == optimizer updates: no half-accumulated step
    interrupted = [p for p in (tmp_path / "ckpt").iterdir() if p.name.startswith("interrupted-")]
    assert len(interrupted) == 1 and os.path.realpath(tmp_path / "ckpt" / "last") == str(
        interrupted[0]
    )
    assert f"step={stopped[0]}" in interrupted[0].name
    rows = list(csv.DictReader(open(tmp_path / "logs" / "version_0" / "metrics.csv")))
    assert int(rows[-1]["step"]) >= 2  # everything logged before Ctrl-C is on disk (0-based steps)
    time.sleep(0.2)
    assert not any(os.path.exists(f"/proc/{pid}") for pid in workers)
    assert not [f for f in os.listdir("/dev/shm") if f.startswith("mlx_audio_")]


class Crash(TinyClassifier):
    def on_train_epoch_end(self):
        raise RuntimeError("disk full")


def test_all_four_loggers_in_one_fit_and_a_crash_finalizes_them(
    tmp_path, mlflow_server, no_wandb_account
):
    from loggers_testing import tensorboard_scalars, wait_for_wandb_exit, wandb_history
    from mlflow.tracking import MlflowClient

    from mlx_audio.loggers import CSVLogger, MLflowLogger, TensorBoardLogger, WandbLogger

    def loggers():
        return [
            CSVLogger(tmp_path, name="csv"),
            TensorBoardLogger(tmp_path, name="tb"),
            WandbLogger(project="e2e", save_dir=tmp_path, offline=True),
            MLflowLogger(experiment_name="e2e", tracking_uri=mlflow_server),
        ]

    from mlx_audio.train.callbacks import LearningRateMonitor

    used = loggers()
    loader, val = (
        DataLoader(blobs(64), batch_size=8, shuffle=True),
        DataLoader(blobs(32, seed=1), batch_size=8),
    )
    trainer = Trainer(
        max_epochs=2,
        accumulate_grad_batches=2,
        val_check_interval=4,
        seed=0,
        default_root_dir=str(tmp_path),
        enable_progress_bar=False,
        log_every_n_steps=1,
        logger=used,
        callbacks=[LearningRateMonitor("step")],
    )
    trainer.fit(TinyClassifier(total_steps=8), loader, val)
    wandb_dir = used[2].log_dir
    tb = tensorboard_scalars(used[1].log_dir)
    names = set(tb)
    assert {
        "train_loss",
        "train_accuracy",
        "val_loss",
        "val_accuracy",
        "lr-AdamW",
        "epoch",
    } <= names
    # Lightning's logging steps: 0-based, the lr at each batch's start (twice per update here)
    assert sorted({step for step, _ in tb["lr-AdamW"]}) == list(range(8))
    assert [s for s, _ in tb["val_loss"]] == [1, 3, 5, 7]  # mid-epoch validations
    assert wait_for_wandb_exit(wandb_dir) == 0
    wandb_names = {
        k
        for row in wandb_history(wandb_dir)
        for k in row
        if not k.startswith("_") and k != "trainer/global_step"
    }
    assert wandb_names == names
    client = MlflowClient(tracking_uri=mlflow_server)
    assert set(client.get_run(used[3].run_id).data.metrics) == names
    assert client.get_run(used[3].run_id).info.status == "FINISHED"
    with open(used[0].metrics_file) as f:
        assert set(csv.DictReader(f).fieldnames) - {"step"} == names

    crashed = loggers()
    trainer = Trainer(
        max_epochs=2,
        seed=0,
        default_root_dir=str(tmp_path / "crash"),
        enable_progress_bar=False,
        log_every_n_steps=1,
        logger=crashed,
    )
    with pytest.raises(RuntimeError, match="disk full"):
        trainer.fit(Crash(), loader)
    assert client.get_run(crashed[3].run_id).info.status == "FAILED"
    assert wait_for_wandb_exit(crashed[2].log_dir) == 1
    assert len(wandb_history(crashed[2].log_dir)) >= 4  # nothing logged before the crash is lost
    assert (
        len(tensorboard_scalars(crashed[1].log_dir)["train_loss"]) == 8
    )  # every step of the crashed epoch
    with open(crashed[0].metrics_file) as f:
        assert len(list(csv.DictReader(f))) >= 4
