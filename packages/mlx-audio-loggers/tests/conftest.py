from mlx_audio_loggers_fixtures import (  # noqa: F401
    mlflow_server,
    mlflow_server_process,
    no_wandb_account,
)
