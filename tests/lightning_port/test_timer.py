"""Port of Lightning 2.6's ``callbacks/test_timer.py::test_timer_time_remaining``:
``Timer.start_time()``, ``time_elapsed()`` and ``time_remaining()`` on a mocked clock.

Same inputs and assertions. Changes: the patched module is ours
(``mlx_audio.train.callbacks.timer.time``); our hooks name the module argument ``module``
(Lightning's ``pl_module``).
"""

from __future__ import annotations

import time
from datetime import timedelta
from unittest.mock import Mock, patch

from mlx_audio.train.callbacks import Timer


@patch("mlx_audio.train.callbacks.timer.time")
def test_timer_time_remaining(time_mock):
    """Test that the timer tracks the elapsed and remaining time correctly."""
    start_time = time.monotonic()
    duration = timedelta(seconds=10)
    time_mock.monotonic.return_value = start_time
    timer = Timer(duration=duration)
    assert timer.time_remaining() == duration.total_seconds()
    assert timer.time_elapsed() == 0

    # timer not started yet
    time_mock.monotonic.return_value = start_time + 60
    assert timer.start_time() is None
    assert timer.time_remaining() == 10
    assert timer.time_elapsed() == 0

    # start timer
    time_mock.monotonic.return_value = start_time
    timer.on_train_start(trainer=Mock(), module=Mock())
    assert timer.start_time() == start_time

    # pretend time has elapsed
    elapsed = 3
    time_mock.monotonic.return_value = start_time + elapsed
    assert timer.start_time() == start_time
    assert round(timer.time_remaining()) == 7
    assert round(timer.time_elapsed()) == 3
