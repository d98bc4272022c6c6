"""The same logging calls reach every backend under the same names, steps and values."""

from loggers_testing import tensorboard_scalars, wait_for_wandb_exit, wandb_history

from mlx_audio.loggers import CSVLogger, MLflowLogger, TensorBoardLogger, WandbLogger

CALLS = [
    ({"train_loss": 1.0, "lr": 0.5}, 1),
    ({"train_loss": 0.5, "lr": 0.25}, 2),
    ({"val_loss": 0.75, "val_accuracy": 0.5, "epoch": 0}, 2),
    ({"train_loss": 0.25, "lr": 0.125}, 3),
]


def test_tag_sets_and_values_agree(tmp_path, mlflow_server, no_wandb_account):
    import csv

    from mlflow.tracking import MlflowClient

    loggers = [
        CSVLogger(tmp_path, name="csv"),
        TensorBoardLogger(tmp_path, name="tb"),
        WandbLogger(save_dir=tmp_path, offline=True),
        MLflowLogger(experiment_name="agree", tracking_uri=mlflow_server),
    ]
    for logger in loggers:
        logger.log_hyperparams({"lr": 0.5, "model": {"width": 8}})
        for metrics, step in CALLS:
            logger.log_metrics(metrics, step)
    wandb_dir = loggers[2].log_dir
    for logger in loggers:
        logger.finalize("success")
    expected = {}
    for metrics, step in CALLS:
        for key, value in metrics.items():
            expected.setdefault(key, []).append((step, float(value)))

    with open(loggers[0].metrics_file, newline="") as f:
        csv_rows = list(csv.DictReader(f))
    from_csv = {}
    for row in csv_rows:
        for key, value in row.items():
            if key != "step" and value != "":
                from_csv.setdefault(key, []).append((int(row["step"]), float(value)))

    from_tb = tensorboard_scalars(loggers[1].log_dir)

    assert wait_for_wandb_exit(wandb_dir) == 0
    from_wandb = {}
    for row in wandb_history(wandb_dir):
        for key, value in row.items():
            if not key.startswith("_") and key != "trainer/global_step":
                from_wandb.setdefault(key, []).append((row["trainer/global_step"], float(value)))

    client = MlflowClient(tracking_uri=mlflow_server)
    run_id = loggers[3].run_id
    from_mlflow = {
        k: [(m.step, m.value) for m in client.get_metric_history(run_id, k)]
        for k in client.get_run(run_id).data.metrics
    }

    for name, got in [
        ("csv", from_csv),
        ("tensorboard", from_tb),
        ("wandb", from_wandb),
        ("mlflow", from_mlflow),
    ]:
        assert got == expected, name
