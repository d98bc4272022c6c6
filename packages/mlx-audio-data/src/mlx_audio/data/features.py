"""Former home of :mod:`mlx_audio.data.audio.features`, kept as an alias: importing
``mlx_audio.data.features`` gives that very module (same object, same names)."""

import sys

from .audio import features

sys.modules[__name__] = features
