from mlx_audio_loggers_fixtures import mlflow_server, no_wandb_account  # noqa: F401
