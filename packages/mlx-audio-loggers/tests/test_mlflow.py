"""MLflow against a real `mlflow server` (and MLflow's default local store)."""

import math

import mlx.core as mx
import pytest

from mlx_audio.loggers import MLflowLogger


def histories(client, run_id, keys):
    return {k: [(m.step, m.value) for m in client.get_metric_history(run_id, k)] for k in keys}


def test_params_and_metric_histories_through_the_server(mlflow_server):
    from mlflow.tracking import MlflowClient

    logger = MLflowLogger(
        experiment_name="loggers-test",
        run_name="r1",
        tracking_uri=mlflow_server,
        tags={"team": "audio"},
    )
    logger.log_hyperparams({"optim": {"lr": 0.01}, "layers": [1, 2], "long": "x" * 7000})
    logger.log_metrics({"train_loss": mx.array(0.5), "lr": 1e-3}, step=1)
    logger.log_metrics({"train_loss": 0.25}, step=2)
    logger.log_metrics({"val_loss": 0.75, "epoch": 0}, step=2)
    logger.log_metrics({"train_loss": float("nan")}, step=3)
    logger.finalize("success")
    client = MlflowClient(tracking_uri=mlflow_server)
    run = client.get_run(logger.run_id)
    assert (
        run.info.status == "FINISHED"
        and run.info.run_name == "r1"
        and run.data.tags["team"] == "audio"
    )
    assert run.data.params["optim/lr"] == "0.01" and run.data.params["layers"] == "[1, 2]"
    assert len(run.data.params["long"]) == 6000
    got = histories(client, logger.run_id, ["train_loss", "val_loss", "epoch", "lr"])
    assert got["train_loss"][:2] == [(1, 0.5), (2, 0.25)] and math.isnan(got["train_loss"][2][1])
    assert (
        got["val_loss"] == [(2, 0.75)] and got["epoch"] == [(2, 0.0)] and got["lr"] == [(1, 1e-3)]
    )
    assert set(run.data.metrics) == {"train_loss", "val_loss", "epoch", "lr"}


@pytest.mark.parametrize("status, expected", [("failed", "FAILED"), ("interrupted", "KILLED")])
def test_failed_and_interrupted_runs(mlflow_server, status, expected):
    from mlflow.tracking import MlflowClient

    logger = MLflowLogger(experiment_name="loggers-test", tracking_uri=mlflow_server)
    logger.log_metrics({"loss": 1.0}, step=0)
    logger.finalize(status)
    client = MlflowClient(tracking_uri=mlflow_server)
    assert client.get_run(logger.run_id).info.status == expected
    assert histories(client, logger.run_id, ["loss"])["loss"] == [(0, 1.0)]


def test_resume_into_an_existing_run(mlflow_server):
    from mlflow.tracking import MlflowClient

    first = MLflowLogger(experiment_name="loggers-test", tracking_uri=mlflow_server)
    first.log_metrics({"loss": 1.0}, step=0)
    first.finalize("interrupted")
    again = MLflowLogger(tracking_uri=mlflow_server, run_id=first.run_id)
    again.log_metrics({"loss": 0.5}, step=1)
    again.finalize("success")
    assert histories(MlflowClient(tracking_uri=mlflow_server), first.run_id, ["loss"])["loss"] == [
        (0, 1.0),
        (1, 0.5),
    ]


def test_default_local_store(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    from mlflow.tracking import MlflowClient

    # the first use of a new local store creates it and runs MLflow's migrations: on a busy
    # 2-core machine that alone can take longer than the default flush_timeout
    logger = MLflowLogger(experiment_name="local", flush_timeout=120)
    logger.log_hyperparams({"a": 1})
    logger.log_metrics({"loss": 2.0}, step=3)
    logger.finalize("success")
    assert logger.undelivered is None
    client = MlflowClient()  # MLflow's default store, resolved the same way
    run = client.get_run(logger.run_id)
    assert run.data.params == {"a": "1"} and run.data.metrics == {"loss": 2.0}
    assert any(tmp_path.iterdir())  # the store lives under the working directory
