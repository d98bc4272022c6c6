import json
import math
import os
import shutil
import warnings

import mlx.core as mx
import numpy as np
import pytest
from loggers_testing import tensorboard_plugins, tensorboard_scalars

from mlx_audio.loggers import LoggerError, LoggerWarning, TensorBoardLogger


def test_scalars_read_back_with_tensorboards_reader(tmp_path):
    logger = TensorBoardLogger(tmp_path, name="tb")
    logger.log_hyperparams({"optim": {"lr": 0.01}, "layers": [1, 2]})
    logger.log_metrics({"train_loss": mx.array(0.5), "lr": 1e-3}, step=1)
    logger.log_metrics({"train_loss": np.float32(0.25), "lr": 2e-3}, step=2)
    logger.log_metrics({"val_loss": 0.75, "epoch": 0}, step=2)
    logger.log_metrics({"train_loss": float("inf")}, step=3)
    logger.finalize("success")
    scalars = tensorboard_scalars(logger.log_dir)
    assert set(scalars) == {"train_loss", "lr", "val_loss", "epoch"}  # no hp_metric
    assert scalars["train_loss"][:2] == [(1, 0.5), (2, 0.25)] and math.isinf(
        scalars["train_loss"][2][1]
    )
    assert [s for s, _ in scalars["lr"]] == [1, 2]
    assert scalars["val_loss"] == [(2, 0.75)] and scalars["epoch"] == [(2, 0.0)]


def test_hparams_land_in_the_same_run_without_a_sub_run(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    logger = TensorBoardLogger(tmp_path, name="tb")
    logger.log_hyperparams({"lr": 0.01, "name": "x"})
    logger.log_metrics({"loss": 1.0}, step=0)
    logger.finalize("success")
    run_dirs = {p.parent for p in (tmp_path / "tb").rglob("events.out.tfevents.*")}
    assert run_dirs == {tmp_path / "tb" / "version_0"}
    accumulator = EventAccumulator(logger.log_dir)
    accumulator.Reload()
    assert accumulator.PluginTagToContent("hparams")


@pytest.mark.parametrize("when", ["mid-run", "before finalize"])
def test_log_folder_removed_spools_the_whole_run_which_replays(tmp_path, when):
    """Writes into an event file whose folder was deleted succeed and vanish: the logger
    notices (path and inode), spools every record of the run, and the spool replays into a
    new run that tensorboard's reader reads back."""
    logger = TensorBoardLogger(tmp_path / "out", name="tb", spool_dir=tmp_path / "spool")
    logger.log_hyperparams({"lr": 0.1})
    for step in range(3):
        logger.log_metrics({"loss": float(step)}, step=step)
    logger.save()
    shutil.rmtree(tmp_path / "out")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for step in range(3, 6):
            logger.log_metrics({"loss": float(step)}, step=step)
            if when == "mid-run":
                logger.save()  # delivered (and found lost) before the next call
        logger.finalize("success")
    report = logger.undelivered
    assert report is not None and report.startswith("TensorBoardLogger: 7 records not delivered")
    assert "TensorBoard: the event file" in report and "was removed during the run" in report
    assert "steps 0-5" in report
    assert [w.category for w in caught] == ([LoggerWarning] if when == "mid-run" else [])
    assert not (tmp_path / "out").exists()  # not created again behind whoever removed it
    (spool,) = (tmp_path / "spool").glob("undelivered-TensorBoardLogger-*.jsonl")
    assert str(spool) in report

    again = TensorBoardLogger(tmp_path / "again", name="tb")
    assert again.replay(spool) == 7
    again.finalize("success")
    assert again.undelivered is None
    assert tensorboard_scalars(again.log_dir) == {"loss": [(s, float(s)) for s in range(6)]}
    assert tensorboard_plugins(again.log_dir) == {"hparams"}


def test_event_file_replaced_counts_as_removed_and_strict_raises(tmp_path):
    """A file at the same path that is not the one being written (a cleanup job's copy)
    does not hold what is written later: with strict=True the next call raises."""
    logger = TensorBoardLogger(
        tmp_path / "out", name="tb", spool_dir=tmp_path / "spool", strict=True
    )
    logger.log_metrics({"loss": 1.0}, step=0)
    logger.save()
    (event_file,) = (tmp_path / "out").rglob("events.out.tfevents.*")
    shutil.copy(event_file, tmp_path / "copy")
    os.replace(tmp_path / "copy", event_file)
    with pytest.raises(LoggerError, match="was removed during the run"):
        logger.log_metrics({"loss": 2.0}, step=1)
        logger.save()
    with pytest.raises(LoggerError, match="2 records not delivered"):
        logger.finalize("failed")
    assert len(list((tmp_path / "spool").glob("undelivered-TensorBoardLogger-*.jsonl"))) == 1


def test_log_folder_left_alone_keeps_nothing_back(tmp_path):
    logger = TensorBoardLogger(tmp_path, name="tb", spool_dir=tmp_path / "spool")
    for step in range(3):
        logger.log_metrics({"loss": float(step)}, step=step)
    logger.finalize("success")
    assert logger.undelivered is None and not (tmp_path / "spool").exists()
    assert tensorboard_scalars(logger.log_dir) == {"loss": [(s, float(s)) for s in range(3)]}


def test_log_folder_removed_keeps_at_most_max_pending_records(tmp_path):
    """What the logger keeps for a file that may vanish is bounded like its queue: the
    oldest records beyond max_pending are dropped and counted in the report."""
    logger = TensorBoardLogger(tmp_path / "out", name="tb", spool_dir=tmp_path / "spool")
    logger._policy = type(logger._policy)(max_pending=4)
    for step in range(10):
        logger.log_metrics({"loss": float(step)}, step=step)
    logger.save()
    shutil.rmtree(tmp_path / "out")
    logger.log_metrics({"loss": 10.0}, step=10)
    logger.finalize("success")
    report = logger.undelivered
    assert report is not None and report.startswith("TensorBoardLogger: 4 records not delivered")
    assert "steps 7-10" in report and "7 older records were dropped" in report
    (spool,) = (tmp_path / "spool").glob("undelivered-TensorBoardLogger-*.jsonl")
    assert [json.loads(line)["step"] for line in spool.read_text().splitlines()] == [7, 8, 9, 10]
