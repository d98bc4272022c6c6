"""Former home of :mod:`mlx_audio.data.audio.features_mlx`, kept as an alias: importing
``mlx_audio.data.features_mlx`` gives that very module (same object, same names)."""

import sys

from .audio import features_mlx

sys.modules[__name__] = features_mlx
