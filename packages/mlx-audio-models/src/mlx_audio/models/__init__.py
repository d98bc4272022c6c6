"""mlx_audio.models (placeholder: built out by its own issue)."""

__version__ = "0.0.1"

from mlx_audio.data import _blas  # noqa: E402  (OpenBLAS before mlx.core on Linux CPU)

_blas.ensure_fast_blas()
