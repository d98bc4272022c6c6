"""mlx_audio.loggers (placeholder: built out by its own issue)."""

__version__ = "0.0.1"

try:  # loggers need no MLX, but importing any mlx_audio package first should speed MLX up
    from mlx_audio.data import _blas  # noqa: E402

    _blas.ensure_fast_blas()
except ImportError:
    pass
