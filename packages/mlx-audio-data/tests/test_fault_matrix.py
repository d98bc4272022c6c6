"""Every fault, with and without persistent workers, under fork and spawn: a clear error within
seconds naming the worker and the sample, no hang, nothing left behind (shared memory, worker
processes), and the loader usable afterwards. Resources stay flat over 30 epochs."""

from __future__ import annotations

import gc
import os
import time

import pytest
from data_testing import child_processes, shm_segments, wait_until
from test_failures import Faulty

from mlx_audio.data import DataLoader

MATRIX = [
    pytest.param(persistent, context, id=f"{'persistent' if persistent else 'fresh'}-{context}")
    for persistent in (False, True)
    for context in ("fork", "spawn")
]


def loader_for(how, persistent, context, bad=21):
    return DataLoader(
        Faulty(bad=bad, how=how, n=64),
        batch_size=4,
        num_workers=2,
        persistent_workers=persistent,
        multiprocessing_context=context,
        timeout=30,
    )


def settle(before_children, before_shm):
    gc.collect()
    assert wait_until(lambda: set(child_processes()) <= set(before_children), 10), "stray workers"
    assert not shm_segments([os.getpid()]) - before_shm, "leaked shared memory"


@pytest.mark.parametrize("persistent, context", MATRIX)
@pytest.mark.parametrize(
    "how, error, text",
    [
        ("raise", KeyError, "worker .* while fetching index 21"),
        (
            "exit",
            RuntimeError,
            r"worker \(pid \d+\) exited unexpectedly with exit code 3 \(worker \d\)",
        ),
        (
            "sigkill",
            RuntimeError,
            r"worker \(pid \d+\) is killed by signal: Killed. \(worker \d was killed by SIGKILL",
        ),
    ],
)
def test_fault_is_reported_fast_and_leaves_nothing(how, error, text, persistent, context):
    before_children = child_processes()
    before_shm = shm_segments([os.getpid()])
    loader = loader_for(how, persistent, context)
    start = time.monotonic()
    with pytest.raises(error, match=text):
        for _ in loader:
            pass
    assert time.monotonic() - start < 15
    if how == "raise":  # the pass went on past the bad batch? a fresh pass still works end to end
        assert sum(1 for _ in loader_for("none", persistent, context)) == 16
    loader.close()
    del loader
    settle(before_children, before_shm)


@pytest.mark.parametrize("persistent, context", MATRIX)
@pytest.mark.parametrize("exit_kind", ["break", "consumer_raises", "abandon"])
def test_leaving_a_loop_early_leaves_nothing(exit_kind, persistent, context):
    before_children = child_processes()
    before_shm = shm_segments([os.getpid()])
    loader = loader_for("none", persistent, context)
    try:
        for i, _ in enumerate(loader):
            if i == 2:
                if exit_kind == "break":
                    break
                if exit_kind == "consumer_raises":
                    raise RuntimeError("the training step failed")
                iterator = iter(loader)  # a second pass abandoned half-way
                next(iterator)
                del iterator
                break
    except RuntimeError as failure:
        assert "training step" in str(failure)
    assert sum(1 for _ in loader) == 16  # the next epoch is whole
    loader.close()
    del loader
    settle(before_children, before_shm)


@pytest.mark.parametrize("persistent", [False, True])
def test_file_descriptors_and_memory_stay_flat_over_30_epochs(persistent):
    loader = DataLoader(
        Faulty(bad=-1, n=256), batch_size=8, num_workers=2, persistent_workers=persistent
    )

    def fds():
        return len(os.listdir("/proc/self/fd"))

    def rss_mib():
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20

    for _ in range(3):  # warm up allocators and caches
        sum(1 for _ in loader)
    gc.collect()
    fds_before = fds()
    rss_before = rss_mib()
    for _ in range(30):
        assert sum(1 for _ in loader) == 32
    gc.collect()
    assert fds() <= fds_before + 2
    assert rss_mib() - rss_before < 30
    loader.close()


def test_workers_forked_under_a_sigterm_handler_still_stop_at_once():
    """A Trainer installs a SIGTERM handler before the loader forks its workers; the workers
    must not inherit it, or stopping them (SIGTERM) would wait for the 2 s kill timeout."""
    import signal

    previous = signal.signal(signal.SIGTERM, lambda *args: None)
    try:
        loader = DataLoader(Faulty(bad=6, how="hang", n=64), batch_size=4, num_workers=2)
        iterator = iter(loader)
        next(iterator)
        start = time.monotonic()
        iterator.close()  # worker 1 hangs in sample 6: it must die on SIGTERM
        assert time.monotonic() - start < 1.0
    finally:
        signal.signal(signal.SIGTERM, previous)
