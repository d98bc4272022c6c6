"""Every data test checks that it left nothing behind: no shared memory, child processes,
threads or file descriptors (:class:`data_testing.LeakCheck`)."""

from __future__ import annotations

import pytest
from data_testing import ImageDataset, LeakCheck


@pytest.fixture(autouse=True)
def no_leaks():
    """Yields the test's :class:`LeakCheck` (``no_leaks.own(pid)`` counts the shared memory of
    a process the test runs, e.g. a script's); checked after the test."""
    check = LeakCheck()
    yield check
    check.check()


@pytest.fixture
def images() -> ImageDataset:
    return ImageDataset()
