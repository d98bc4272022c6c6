"""Tutorial import path: ``from mlx_audio.data.data.dataset import Dataset``."""
