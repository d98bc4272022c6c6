"""Former home of :mod:`mlx_audio.data.audio.datasets`, kept as an alias: importing
``mlx_audio.data.audio_datasets`` gives that very module (same object, same names)."""

import sys

from .audio import datasets

sys.modules[__name__] = datasets
