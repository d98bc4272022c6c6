import csv
import json
import math
import os
import shutil
import warnings

import mlx.core as mx
import pytest

from mlx_audio.loggers import CSVLogger, LoggerError, LoggerWarning


def read_rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_rows_columns_versions_and_hparams(tmp_path):
    first = CSVLogger(tmp_path, name="exp")
    assert first.version == 0 and first.log_dir == str(tmp_path / "exp" / "version_0")
    first.log_hyperparams({"model": {"width": 32}, "lr": 0.1})
    first.log_metrics({"train_loss": mx.array(1.5)}, step=1)
    rows = read_rows(first.metrics_file)  # written at once: nothing lost if the process dies now
    assert rows == [{"step": "1", "train_loss": "1.5"}]
    first.log_metrics({"val_loss": 2.0, "epoch": 0}, step=1)
    first.log_metrics({"train_loss": float("nan")}, step=2)
    first.finalize("success")
    rows = read_rows(first.metrics_file)
    assert [r["step"] for r in rows] == ["1", "1", "2"]
    assert rows[1]["val_loss"] == "2.0" and rows[1]["epoch"] == "0" and rows[0]["val_loss"] == ""
    assert math.isnan(float(rows[2]["train_loss"]))
    assert json.loads((tmp_path / "exp" / "version_0" / "hparams.json").read_text()) == {
        "model/width": 32,
        "lr": 0.1,
    }
    second = CSVLogger(tmp_path, name="exp")
    second.log_metrics({"a": 1}, step=0)
    assert second.version == 1 and (tmp_path / "exp" / "version_1" / "metrics.csv").exists()
    named = CSVLogger(tmp_path, name="exp", version="final")
    assert named.log_dir.endswith("exp/final")


@pytest.mark.parametrize("when", ["mid-run", "before finalize", "replaced"])
def test_log_folder_removed_spools_the_whole_run(tmp_path, when):
    """Appends through the open handle into a deleted metrics.csv succeed and vanish: the
    logger notices (path and inode), stops writing there, and finalize saves every row of the
    run (new columns included) and the hyperparameters where `undelivered` says."""
    logger = CSVLogger(tmp_path / "out", name="csv", spool_dir=tmp_path / "spool")
    logger.log_hyperparams({"lr": 0.1})
    for step in range(3):
        logger.log_metrics({"loss": float(step)}, step=step)
    metrics = logger.metrics_file
    if when == "replaced":  # a copy at the same path does not get the later rows
        shutil.copy(metrics, tmp_path / "copy")
        os.replace(tmp_path / "copy", metrics)
    else:
        shutil.rmtree(tmp_path / "out")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if when != "before finalize":
            for step in range(3, 6):
                logger.log_metrics({"loss": float(step), "acc": 0.5}, step=step)
            logger.log_hyperparams({"lr": 0.2})
        logger.finalize("success")
    report = logger.undelivered
    rows = 3 if when == "before finalize" else 6
    assert report is not None and report.startswith(f"CSVLogger: {rows} records not delivered")
    assert f"{metrics} was removed during the run" in report and f"steps 0-{rows - 1}" in report
    assert [w.category for w in caught] == ([] if when == "before finalize" else [LoggerWarning])
    if when == "replaced":
        assert len(read_rows(metrics)) == 3  # nothing more went to the copy
    else:
        assert not (tmp_path / "out").exists()  # not created again behind whoever removed it
    (spool,) = (tmp_path / "spool").glob("undelivered-CSVLogger-*.csv")
    assert str(spool) in report
    saved = read_rows(spool)
    assert [float(r["loss"]) for r in saved] == [float(s) for s in range(rows)]
    assert [r["step"] for r in saved] == [str(s) for s in range(rows)]
    (hparams,) = (tmp_path / "spool").glob("undelivered-CSVLogger-*.hparams.json")
    assert str(hparams) in report
    assert json.loads(hparams.read_text()) == {"lr": 0.1 if when == "before finalize" else 0.2}


def test_log_folder_removed_with_strict_raises_and_still_spools(tmp_path):
    logger = CSVLogger(tmp_path / "out", name="csv", spool_dir=tmp_path / "spool", strict=True)
    logger.log_metrics({"loss": 1.0}, step=0)
    shutil.rmtree(tmp_path / "out")
    with pytest.raises(LoggerError, match="was removed during the run"):
        logger.log_metrics({"loss": 2.0}, step=1)
    with pytest.raises(LoggerError, match="2 records not delivered"):
        logger.finalize("failed")
    (spool,) = (tmp_path / "spool").glob("undelivered-CSVLogger-*.csv")
    assert [r["loss"] for r in read_rows(spool)] == ["1.0", "2.0"]
