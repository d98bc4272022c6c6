"""Every data test checks that it left no shared memory and no child processes."""

from __future__ import annotations

import gc

import pytest
from data_testing import ImageDataset, child_processes, shm_segments, wait_until


@pytest.fixture(autouse=True)
def no_leaks():
    segments, children = shm_segments(), set(child_processes())
    yield
    gc.collect()
    assert wait_until(lambda: not (shm_segments() - segments)), (
        f"leaked shared memory: {shm_segments() - segments}"
    )
    assert wait_until(lambda: not (set(child_processes()) - children)), (
        f"leftover child processes: {child_processes()}"
    )


@pytest.fixture
def images() -> ImageDataset:
    return ImageDataset()
