"""W&B in offline mode, read back from the run's own .wandb file."""

import math
import warnings

import mlx.core as mx
import pytest
from loggers_testing import wait_for_wandb_exit, wandb_config, wandb_history

from mlx_audio.loggers import WandbLogger


def test_no_account_no_tty_goes_offline_with_one_warning(no_wandb_account, tmp_path):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        logger = WandbLogger(
            project="clap-finetune", name="experiment-1", save_dir=tmp_path / "out"
        )
        logger.log_metrics({"train_loss": 1.0}, step=1)
    notes = [str(w.message) for w in caught if "W&B" in str(w.message)]
    assert len(notes) == 1 and "offline" in notes[0] and "wandb sync" in notes[0]
    run_dir = logger.log_dir
    assert "offline-run-" in run_dir
    logger.finalize("success")
    assert wait_for_wandb_exit(run_dir) == 0
    assert wandb_history(run_dir)[0]["train_loss"] == 1.0


def test_history_steps_values_and_no_dropped_metrics(no_wandb_account, tmp_path):
    """Validation logged at an earlier step than the last training row is kept (define_metric)."""
    logger = WandbLogger(project="p", save_dir=tmp_path, offline=True, config={"batch": 8})
    logger.log_hyperparams({"optim": {"lr": 0.1}, "obj": object})
    # gradient accumulation: several logs at one optimizer step, then mid-epoch validation
    logger.log_metrics({"train_loss": mx.array(0.5), "lr": 0.1}, step=4)  # exact in float32
    logger.log_metrics({"train_loss": 0.8, "lr": 0.1}, step=4)
    logger.log_metrics({"train_loss": 0.7, "lr": 0.2}, step=6)
    logger.log_metrics({"val_loss": 0.5, "epoch": 0}, step=5)
    logger.log_metrics({"train_loss": float("nan")}, step=7)
    run_dir = logger.log_dir
    logger.finalize("success")
    assert wait_for_wandb_exit(run_dir) == 0
    rows = wandb_history(run_dir)
    got = [
        (r["trainer/global_step"], k, r[k])
        for r in rows
        for k in ("train_loss", "val_loss", "lr", "epoch")
        if k in r
    ]
    assert got[:7] == [
        (4, "train_loss", 0.5),
        (4, "lr", 0.1),
        (4, "train_loss", 0.8),
        (4, "lr", 0.1),
        (6, "train_loss", 0.7),
        (6, "lr", 0.2),
        (5, "val_loss", 0.5),
    ]
    assert (5, "epoch", 0) in got
    assert math.isnan(rows[-1]["train_loss"])
    config = wandb_config(run_dir)
    assert config["batch"] == 8 and config["optim/lr"] == 0.1 and config["obj"] == str(object)


@pytest.mark.parametrize("status, code", [("failed", 1), ("interrupted", 255)])
def test_finalize_status_becomes_the_exit_code(no_wandb_account, tmp_path, status, code):
    logger = WandbLogger(save_dir=tmp_path, offline=True)
    logger.log_metrics({"loss": 1.0}, step=0)
    run_dir = logger.log_dir
    logger.finalize(status)
    assert wait_for_wandb_exit(run_dir) == code
    assert wandb_history(run_dir)[0]["loss"] == 1.0  # nothing logged is lost


@pytest.mark.parametrize("when", ["mid-run", "before finalize"])
def test_run_folder_removed_spools_the_whole_run_which_replays(no_wandb_account, tmp_path, when):
    """W&B's service keeps writing into the deleted .wandb file and reports nothing: the
    logger notices, spools every record of the run (named like any backend failure), and the
    spool replays into a new run."""
    import shutil

    from mlx_audio.loggers import LoggerWarning

    logger = WandbLogger(save_dir=tmp_path / "out", offline=True, spool_dir=tmp_path / "spool")
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
    assert report is not None and report.startswith("WandbLogger: 7 records not delivered")
    assert "was removed during the run" in report and "steps 0-5" in report
    assert [w.category for w in caught] == ([LoggerWarning] if when == "mid-run" else [])
    (spool,) = (tmp_path / "spool").glob("undelivered-WandbLogger-*.jsonl")
    assert str(spool) in report

    again = WandbLogger(save_dir=tmp_path / "again", offline=True)
    assert again.replay(spool) == 7
    run_dir = again.log_dir
    again.finalize("success")
    assert again.undelivered is None
    assert wait_for_wandb_exit(run_dir) == 0
    assert [r["loss"] for r in wandb_history(run_dir)] == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
    assert wandb_config(run_dir)["lr"] == 0.1


def test_run_folder_removed_with_strict_raises_and_still_spools(no_wandb_account, tmp_path):
    import shutil

    from mlx_audio.loggers import LoggerError

    logger = WandbLogger(
        save_dir=tmp_path / "out", offline=True, spool_dir=tmp_path / "spool", strict=True
    )
    logger.log_metrics({"loss": 1.0}, step=0)
    logger.save()
    shutil.rmtree(tmp_path / "out")
    with pytest.raises(LoggerError, match="was removed during the run"):
        logger.log_metrics({"loss": 2.0}, step=1)
        logger.save()
    with pytest.raises(LoggerError, match="2 records not delivered"):
        logger.finalize("failed")
    assert len(list((tmp_path / "spool").glob("undelivered-WandbLogger-*.jsonl"))) == 1
