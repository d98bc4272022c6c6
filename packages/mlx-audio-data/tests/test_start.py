"""The start of a pass (issue 29): slots grown by the worker on first use, only the pages a
batch writes allocated (NOTE [slot pages]), the main process's MLX buffer warmed from the
worker's Sizing hint (NOTE [warm destination]), and the leak check every data test runs."""

import multiprocessing
import os
import threading
import time

import mlx.core as mx
import numpy as np
import pytest
from data_testing import LeakCheck, assert_same_batches, shm_segments

from mlx_audio.data import DataLoader, Dataset
from mlx_audio.data._loader.shm import HINT_BYTES, Arena, Slot, new_slot_paths, unlink_quietly
from mlx_audio.data._loader.warm import warmer


class Ragged(Dataset):
    """320 KB samples (batches of 4 over HINT_BYTES) whose width grows twice mid-pass: each slot
    grows within its headroom, then past it (a remap), while earlier batches are still held."""

    def __len__(self):
        return 48

    def __getitem__(self, i):
        width = 1001 if i < 16 else (1101 if i < 32 else 2001)
        x = np.full((1, 80, width), i, np.float32)
        x[0, 0, :4] = (i, i + 0.5, -i, width)
        return x, np.float64(i) / 3, i


@pytest.mark.parametrize("method", ["fork", "spawn", "forkserver"])
@pytest.mark.parametrize("persistent", [False, True])
def test_lazily_grown_slots_give_the_in_process_batches(method, persistent, no_leaks):
    dataset = Ragged()
    expected = list(DataLoader(dataset, batch_size=4, shuffle=False))
    loader = DataLoader(
        dataset,
        batch_size=4,
        num_workers=2,
        multiprocessing_context=method,
        persistent_workers=persistent,
    )
    iterator = iter(loader)
    first = next(iterator)
    assert shm_segments([os.getpid()]) == set()  # names gone once the first batch is in
    held = [first, *iterator]  # every batch kept alive while the slots grow under them
    assert_same_batches(held, expected)
    if persistent:  # a second pass on the grown slots
        reference = DataLoader(dataset, batch_size=4, shuffle=False)
        list(reference)
        assert_same_batches(list(loader), list(reference))
    loader.close()


def test_a_state_taken_after_the_first_batch_resumes_exactly():
    make = lambda: DataLoader(Ragged(), batch_size=4, num_workers=2)  # noqa: E731
    loader = make()
    iterator = iter(loader)
    taken = [next(iterator)]
    state = loader.state_dict()
    taken += list(iterator)
    resumed = make()
    resumed.load_state_dict(state)
    assert_same_batches(list(resumed), taken[1:])


def test_a_slot_allocates_only_the_bytes_a_batch_writes(tmp_path):
    (path,) = new_slot_paths(1)
    try:
        slot = Slot(path)
        nbytes = 32 * 64 * 1001 * 4
        slot.reserve(nbytes)
        stat = os.fstat(slot.fd)
        assert stat.st_size >= nbytes + nbytes // 8  # headroom for ragged batches: sparse
        assert nbytes <= stat.st_blocks * 512 < nbytes + 2 * mmap_page()
        buffer = slot.buffer
        slot.reserve(nbytes + nbytes // 16)  # within the headroom: no remap, more pages
        assert slot.buffer is buffer and os.fstat(slot.fd).st_blocks * 512 >= nbytes * 17 // 16
        slot.reserve(2 * nbytes)  # past it: a larger file, contents kept
        slot.buffer[:4] = 7
        reader = Slot(path)
        reader.refresh()
        assert reader.size == slot.size and reader.buffer[:4].tolist() == [7] * 4
        reader.close()
        slot.close()
    finally:
        unlink_quietly([path])


def mmap_page():
    import mmap

    return mmap.PAGESIZE


def test_a_worker_announces_only_large_arrays_in_pages_it_has_not_used():
    (path,) = new_slot_paths(1)
    heard = []
    try:
        slot = Slot(path)
        big = (HINT_BYTES // 4 + 1,)
        for _ in range(2):  # the slot's second batch reuses its pages: no hint
            arena = Arena(slot, lambda shape, dtype: heard.append((shape, dtype)))
            arena.empty(big, np.float32)
            arena.empty((10,), np.int64)  # small: never announced
        assert heard == [(big, "<f4")]
        Arena(slot, lambda shape, dtype: heard.append((shape, dtype))).empty((2, *big), np.float32)
        assert heard[1:] == [((2, *big), "<f4")]  # a slot's growth is announced again
        slot.close()
    finally:
        unlink_quietly([path])


def test_a_hint_leaves_a_buffer_of_the_copys_size_in_mlxs_cache():
    warm = warmer(mx.array)
    assert warm is not None and warmer(np.array) is None
    mx.clear_cache()
    warm((256, 1024), "<f8")  # mx.array makes float32 of float64: the copy asks 1 MiB
    assert mx.get_cache_memory() >= 256 * 1024 * 4
    mx.clear_cache()
    warm((4,), "<U3")  # a dtype MLX does not take: ignored (the copy itself reports it)


def test_the_leak_check_names_each_kind_of_leftover():
    check = LeakCheck()
    reader, writer = os.pipe()
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait, name="mlx_audio-left-running")
    thread.start()
    library = threading.Thread(target=stop.wait, name="tqdm_monitor")  # not a loader's
    library.start()
    child = multiprocessing.get_context("fork").Process(target=stop.wait, args=(30,))
    child.start()
    (segment,) = new_slot_paths(1)
    try:
        left = check.leaks()
        assert set(left) == {"shared memory", "child processes", "threads", "file descriptors"}
        assert left["threads"] == ["mlx_audio-left-running"]
        assert child.pid in left["child processes"]
        assert os.path.basename(segment) in left["shared memory"]
        assert {reader, writer} <= set(left["file descriptors"])
        with pytest.raises(AssertionError, match="left behind"):
            check.check(seconds=0.2)
    finally:
        os.close(reader)
        os.close(writer)
        stop.set()
        thread.join()
        library.join()
        child.terminate()
        child.join()
        child.close()
        unlink_quietly([segment])
    assert check.leaks() == {}


def test_hints_come_with_a_slots_first_pages_only(monkeypatch):
    from mlx_audio.data._loader import worker_passes

    heard = []
    real = worker_passes.warmer

    def counting(convert):
        warm = real(convert)
        assert warm is not None  # mx.array on the CPU: hints are acted on
        return lambda shape, dtype: (heard.append((shape, dtype)), warm(shape, dtype))

    monkeypatch.setattr(worker_passes, "warmer", counting)
    loader = DataLoader(Ragged(), batch_size=4, num_workers=2, persistent_workers=True)
    list(loader)
    assert ((4, 1, 80, 1001), "<f4") in heard and len(heard) <= 12  # 4 slots, each grown <= 3x
    heard.clear()
    list(loader)  # the same workers: their slots have every page they need
    assert heard == []
    loader.close()


class BrokenSampler:
    def __len__(self):
        return 4

    def __iter__(self):
        raise ValueError("no indices today")
        yield 0


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_a_pass_failing_before_its_workers_start_leaves_nothing_behind(method):
    """A forked worker starts only once the pass has its first tasks (NOTE [fast start]): a
    sampler that raises first stops a pool whose processes never started (the autouse
    no_leaks fixture checks its slots, queues and descriptors are gone)."""
    loader = DataLoader(
        Ragged(),
        batch_size=4,
        sampler=BrokenSampler(),
        num_workers=2,
        multiprocessing_context=method,
    )
    with pytest.raises(ValueError, match="no indices today"):
        next(iter(loader))
    assert loader.worker_pids == []


def test_a_forked_child_finalizing_a_loader_leaves_the_parents_workers_alone():
    """NOTE [finalizers after fork]: a child forked from this process (another loader's worker
    collecting garbage in multiprocessing's after-fork hooks, a user's os.fork) that closes a
    loader it inherited must not touch the parent's workers or their queues, whose locks may
    have been held by a feeder thread at the fork (simulated: the child holds them): it hung."""
    loader = DataLoader(Ragged(), batch_size=4, num_workers=2, persistent_workers=True)
    first = list(loader)
    pids = loader.worker_pids
    queues = [worker.tasks for worker in loader._pools.persistent.workers]
    child = os.fork()
    if child == 0:  # pragma: no cover - the child's exit code is the check
        code = 1
        try:
            for tasks in queues:
                tasks._notempty.acquire()  # as a feeder thread caught mid-put by the fork
            loader.close()
            code = 0
        finally:
            os._exit(code)
    deadline = time.monotonic() + 10
    while (done := os.waitpid(child, os.WNOHANG))[0] == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    if done[0] == 0:
        os.kill(child, 9)
        os.waitpid(child, 0)
        pytest.fail("the child hung closing the parent's loader")
    assert os.waitstatus_to_exitcode(done[1]) == 0
    assert loader.worker_pids == pids  # the same workers, still alive ...
    assert_same_batches(list(loader), first)  # ... and serving the next pass
    loader.close()


def _signalled_at_once(*args, **kwargs):
    """A worker's entry point that a Ctrl-C / SIGTERM reaches before the worker loop has set its
    own handlers (the window between the fork and ``process_worker_loop``'s first lines)."""
    import signal

    from mlx_audio.data._loader import worker

    os.kill(os.getpid(), signal.SIGINT)
    os.kill(os.getpid(), signal.SIGTERM)
    return worker.process_worker_loop(*args, **kwargs)


def test_a_stop_signal_in_a_forked_workers_first_moments_never_runs_the_parents_handler(
    monkeypatch, tmp_path
):
    """NOTE [signals across fork]: a Trainer's SIGINT/SIGTERM handlers are installed when its
    loader forks workers; a signal reaching a worker before the worker loop replaces them ran
    the parent's handler in the worker ("Ctrl-C received" printed twice; a SIGTERM'd worker
    that kept running). The signals stay blocked across the fork until the worker's own
    handlers are set: a Ctrl-C is then ignored there and a SIGTERM ends the worker."""
    import signal

    from mlx_audio.data._loader import pool

    marks = tmp_path / "handled"
    marks.mkdir()

    def parents_handler(signum, frame):
        (marks / f"{os.getpid()}-{signum}").touch()

    monkeypatch.setattr(pool, "process_worker_loop", _signalled_at_once)
    previous = {s: signal.signal(s, parents_handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        loader = DataLoader(Ragged(), batch_size=4, num_workers=2, multiprocessing_context="fork")
        with pytest.raises(RuntimeError, match="exited unexpectedly|killed by signal"):
            list(loader)  # each worker's SIGTERM ends it (default action), as a real one would
        assert (
            signal.pthread_sigmask(signal.SIG_BLOCK, []) & {signal.SIGINT, signal.SIGTERM} == set()
        )
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    assert sorted(p.name for p in marks.iterdir()) == []  # the parent's handler never ran
