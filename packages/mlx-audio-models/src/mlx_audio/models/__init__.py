"""mlx_audio.models: audio models for MLX — CNN classifiers and CLAP.

Extras: ``mlx-audio-models[hub]`` (huggingface_hub, for repo ids) and ``[text]`` (tokenizers).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mlx_audio.data.support import ensure_fast_blas, lazy_exports  # before mlx.core

ensure_fast_blas()  # OpenBLAS on Linux CPU

__version__ = "0.1.0"

_EXPORTS = {
    "CNNClassifier": "cnn",
    "AudioCNN": "cnn",
    "CLAP": "clap",
    "ClapAudioClassifier": "clap",
    "ClapConfig": "clap",
    "zero_shot_classify": "clap",
}
__all__ = list(_EXPORTS)


if TYPE_CHECKING:  # what the lazy exports resolve to, for type checkers
    from .clap import CLAP as CLAP
    from .clap import ClapAudioClassifier as ClapAudioClassifier
    from .clap import ClapConfig as ClapConfig
    from .clap import zero_shot_classify as zero_shot_classify
    from .cnn import AudioCNN as AudioCNN
    from .cnn import CNNClassifier as CNNClassifier

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
