"""``python -m mlx_audio``: the ``mlx-audio`` command line."""

import sys

from mlx_audio.cli import main

sys.exit(main())
