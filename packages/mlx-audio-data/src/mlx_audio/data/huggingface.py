"""Former home of :mod:`mlx_audio.data.audio.huggingface`, kept as an alias: importing
``mlx_audio.data.huggingface`` gives that very module (same object, same names)."""

import sys

from .audio import huggingface

sys.modules[__name__] = huggingface
