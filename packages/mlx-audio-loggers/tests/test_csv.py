import csv
import json
import math

import mlx.core as mx

from mlx_audio.loggers import CSVLogger


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
