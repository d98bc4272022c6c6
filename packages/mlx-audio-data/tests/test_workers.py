"""Worker processes: the tutorial's collate under fork and spawn, batched fetch, lifecycle."""

import multiprocessing
import os
import subprocess
import sys
import textwrap
import time

import mlx.core as mx
import numpy as np
import pytest
from data_testing import ImageDataset, assert_same_batches, child_processes, shm_segments

from mlx_audio.data import ArrayDataset, DataLoader, Dataset, IterableDataset


def to_mlx_batch(batch):
    images = np.stack([item[0] for item in batch])
    labels = np.array([item[1] for item in batch])
    return mx.array(images), mx.array(labels)


@pytest.mark.parametrize("num_workers", [0, 2])
def test_tutorial_lambda_collate_with_fork(images, num_workers):
    loader = DataLoader(
        images,
        batch_size=64,
        shuffle=True,
        collate_fn=lambda x: x,
        mlx_transforms=to_mlx_batch,
        num_workers=num_workers,
        seed=0,
    )
    batches = list(loader)
    assert len(batches) == 4
    x, y = batches[0]
    assert x.shape == (64, 28, 28) and x.dtype == mx.float32 and y.dtype == mx.int64
    assert_same_batches(
        batches,
        list(
            DataLoader(
                images,
                batch_size=64,
                shuffle=True,
                seed=0,
                collate_fn=lambda x: x,
                mlx_transforms=to_mlx_batch,
            )
        ),
    )


SPAWN_SCRIPT = textwrap.dedent(
    """
    import warnings
    import numpy as np
    import mlx.core as mx
    from mlx_audio.data import DataLoader
    from data_testing import ImageDataset

    def to_mlx_batch(batch):
        return mx.array(np.stack([b[0] for b in batch])), mx.array(np.array([b[1] for b in batch]))

    if __name__ == "__main__":
        ds = ImageDataset(size=100)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            loader = DataLoader(ds, batch_size=10, shuffle=True, seed=3, num_workers=2,
                                multiprocessing_context="spawn", collate_fn=lambda x: x,
                                mlx_transforms=to_mlx_batch)
            spawned = [list(loader) for _ in range(2)]
        in_process = DataLoader(ds, batch_size=10, shuffle=True, seed=3, collate_fn=lambda x: x,
                                mlx_transforms=to_mlx_batch)
        for a, b in zip(spawned, [list(in_process) for _ in range(2)], strict=True):
            for (x1, y1), (x2, y2) in zip(a, b, strict=True):
                assert mx.array_equal(x1, x2) and mx.array_equal(y1, y2)
        notes = [str(w.message) for w in caught if "main process" in str(w.message)]
        assert len(notes) == 1, notes
        default = list(DataLoader(ds, batch_size=10, num_workers=2, multiprocessing_context="spawn"))
        assert len(default) == 10 and default[0][0].dtype == mx.float32
        print("SPAWN-OK", len(spawned[0]))
    """
)


def test_spawn_from_guarded_module(tmp_path):
    script = tmp_path / "spawn_main.py"
    script.write_text(SPAWN_SCRIPT)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(
            [os.path.dirname(__file__), os.environ.get("PYTHONPATH", "")]
        ),
    }
    result = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=240
    )
    assert result.returncode == 0, result.stderr
    assert "SPAWN-OK 10" in result.stdout


def test_spawn_with_unpicklable_dataset_explains(images):
    class Local(Dataset):  # local classes cannot be pickled
        def __len__(self):
            return 4

        def __getitem__(self, i):
            return np.zeros(2)

    loader = DataLoader(Local(), batch_size=2, num_workers=1, multiprocessing_context="spawn")
    # as torch: its warning, and pickle's own error (AttributeError for a local class)
    with pytest.warns(UserWarning, match="Got pickle error"):
        with pytest.raises(AttributeError, match="Can't pickle local object.*module level"):
            list(loader)


class CountingArrays(ArrayDataset):
    def __init__(self, *arrays):
        super().__init__(*arrays)
        self.single_calls = 0

    def __getitem__(self, index):
        self.single_calls += 1
        raise AssertionError("__getitem__ should not be used when __getitems__ exists")


@pytest.mark.parametrize("num_workers", [0, 2])
def test_getitems_is_used_in_process_and_in_workers(num_workers):
    x = np.arange(40, dtype=np.float32).reshape(20, 2)
    loader = DataLoader(
        CountingArrays(x, np.arange(20)),
        batch_size=6,
        shuffle=True,
        seed=1,
        num_workers=num_workers,
    )
    batches = list(loader)
    assert [b[0].shape[0] for b in batches] == [6, 6, 6, 2]
    seen = sorted(int(v) for b in batches for v in np.array(b[1]))
    assert seen == list(range(20))
    np.testing.assert_array_equal(np.array(batches[0][0]), x[np.array(batches[0][1])])


def test_getitems_batch_with_cpu_transforms_is_a_clear_error():
    loader = DataLoader(ArrayDataset(np.zeros((4, 2))), batch_size=2, cpu_transforms=lambda s: s)
    with pytest.raises(TypeError, match="whole batch"):
        list(loader)


def test_worker_pids_and_persistent_workers(images):
    loader = DataLoader(images, batch_size=32, num_workers=2, persistent_workers=True)
    it = iter(loader)
    next(it)
    pids = loader.worker_pids
    assert len(pids) == 2 and set(pids) <= set(child_processes())
    list(it)
    list(loader)  # second epoch reuses the same processes
    assert loader.worker_pids == pids
    for _ in loader:  # a pass abandoned half-way leaves the pool usable
        break
    assert len(list(loader)) == 8 and loader.worker_pids == pids
    loader.close()
    assert loader.worker_pids == []


def test_non_persistent_workers_stop_after_each_pass(images):
    loader = DataLoader(images, batch_size=32, num_workers=2)
    list(loader)
    assert loader.worker_pids == []


def test_thread_workers_have_worker_info(images):
    from mlx_audio.data import get_worker_info

    def tag(sample):
        return sample[0], get_worker_info().id

    batches = list(
        DataLoader(images, batch_size=4, num_workers=2, worker_type="thread", cpu_transforms=tag)
    )
    assert {int(v) for b in batches[:2] for v in np.array(b[1])} == {0, 1}
    assert get_worker_info() is None


def test_thread_worker_info_is_torchs_thread_variant():
    """torch 2.13's WorkerInfo fields (issue 29): a thread worker says worker_method="thread" and
    carries its own generators, seeded with its seed (threads share the global RNGs)."""
    from mlx_audio.data import get_worker_info

    class Draws(IterableDataset):
        def __iter__(self):
            info = get_worker_info()
            expected = np.random.default_rng(info.seed).integers(1000, size=3)
            rng = info.rng
            assert info.worker_method == "thread" and info.rng is not None
            assert (rng.numpy_generator.integers(1000, size=3) == expected).all()
            assert isinstance(rng.random_generator.random(), float)
            yield np.int32(info.id)

    loader = DataLoader(Draws(), batch_size=None, num_workers=2, worker_type="thread")
    assert sorted(int(b) for b in loader) == [0, 1]


def test_worker_init_fn_runs_in_each_worker(images, tmp_path):
    def init(worker_id):
        (tmp_path / f"w{worker_id}-{os.getpid()}").touch()

    list(DataLoader(images, batch_size=64, num_workers=2, worker_init_fn=init))
    assert sorted(p.name.split("-")[0] for p in tmp_path.iterdir()) == ["w0", "w1"]


def test_large_batches_grow_slots_and_shared_memory_is_unlinked_while_running():
    class Big(Dataset):
        def __len__(self):
            return 12

        def __getitem__(self, i):
            return (
                np.full((1, 64, 1001), i, np.float32)
                if i < 6
                else np.full((1, 64, 3001), i, np.float32)[:, :, :1001]
            )

    loader = DataLoader(Big(), batch_size=3, num_workers=2)
    it = iter(loader)
    first = next(it)
    assert shm_segments() == set()  # segments exist only as open descriptors
    rest = list(it)
    assert first.shape == (3, 1, 64, 1001) and float(rest[-1][2, 0, 0, 0]) == 11.0


def test_imagedataset_helper_is_deterministic():
    a, b = ImageDataset(seed=1), ImageDataset(seed=1)
    np.testing.assert_array_equal(a.images, b.images)


class Eleven(Dataset):
    """11 items: uneven shares for 3 workers."""

    def __len__(self):
        return 11

    def __getitem__(self, i):
        return np.float32(i)


START_METHODS = [
    *("fork", "spawn", "forkserver"),
    *(multiprocessing.get_context(m) for m in ("fork", "spawn", "forkserver")),
]


def test_persistent_workers_under_every_start_method_never_exit_while_in_use():
    """Issue 29: a forkserver worker idle for one poll (its parent is the fork server, not the
    main process) took the main process for dead and exited with code 0 mid-pass (NOTE [worker
    watchdog]). Six persistent loaders (each start method by name and as a context), their
    first passes left waiting while the others start and then for 1.5 s, then 100 rounds of
    an epoch on each, with a short-lived fork loader made and torn down every tenth round."""
    started = time.monotonic()
    loaders = [
        DataLoader(Eleven(), num_workers=3, persistent_workers=True, multiprocessing_context=ctx)
        for ctx in START_METHODS
    ]
    passes = [iter(loader) for loader in loaders]  # every worker has its first tasks done
    time.sleep(1.5)  # ... and waits, idle, for longer than one poll
    expected = [[float(i)] for i in range(11)]
    for loader, first in zip(loaders, passes):
        assert [b.tolist() for b in first] == expected, loader.multiprocessing_context
    pids = [loader.worker_pids for loader in loaders]
    for round_ in range(100):
        for loader in loaders:
            assert [b.tolist() for b in loader] == expected
        if round_ % 10 == 0:
            brief = DataLoader(Eleven(), batch_size=4, num_workers=3, persistent_workers=True)
            assert sum(len(b) for b in brief) == 11
            brief.close()
    assert [loader.worker_pids for loader in loaders] == pids  # the same workers throughout
    for loader in loaders:
        loader.close()
    assert time.monotonic() - started < 30


class SlowToStart(Dataset):
    """A dataset whose copy in a forkserver (or spawn) worker takes ``delay`` seconds to
    arrive (unpickled before the worker can say it is ready)."""

    def __init__(self, delay):
        self.delay = delay

    def __setstate__(self, state):
        time.sleep(state["delay"])
        self.__dict__.update(state)

    def __len__(self):
        return 8

    def __getitem__(self, i):
        return np.full((4,), i, np.float32)


def test_iter_does_not_wait_for_the_workers_to_start():
    """NOTE [fast start]: iter() starts the workers and sends their first tasks without waiting
    for them (it used to block until every worker had started: the workers' start-up, then a
    round trip, before the first task); the batches, and the slots unlinked by the first
    batch, are as before."""
    loader = DataLoader(
        SlowToStart(2.0), batch_size=2, num_workers=2, multiprocessing_context="forkserver"
    )
    started = time.monotonic()
    it = iter(loader)
    returned = time.monotonic() - started
    first = next(it)
    assert shm_segments([os.getpid()]) == set()  # every slot name is gone with the first batch
    assert returned < 2.0 <= time.monotonic() - started
    assert [first.tolist(), *(b.tolist() for b in it)] == [
        [[float(i)] * 4, [float(i + 1)] * 4] for i in range(0, 8, 2)
    ]


KILLED_BEFORE_THE_FIRST_BATCH = """
import pathlib, sys, time
import numpy as np
from mlx_audio.data import DataLoader, Dataset

class Slow(Dataset):
    def __len__(self):
        return 8

    def __getitem__(self, i):
        time.sleep(60)  # no batch comes before the kill
        return np.zeros(4, np.float32)

def started(worker_id):
    pathlib.Path(sys.argv[1], f"started-{worker_id}").touch()

if __name__ == "__main__":
    it = iter(DataLoader(Slow(), batch_size=2, num_workers=2, worker_init_fn=started))
    time.sleep(120)
"""


def test_slot_names_are_gone_once_the_workers_start_even_if_the_main_process_is_killed(tmp_path):
    """NOTE [fast start]: iter() no longer waits for the workers, so it is the worker that
    unlinks its slots' names once it has opened them: a main process SIGKILLed before its
    first batch leaves nothing in /dev/shm."""
    script = tmp_path / "killed.py"
    script.write_text(KILLED_BEFORE_THE_FIRST_BATCH)
    proc = subprocess.Popen([sys.executable, str(script), str(tmp_path)], start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while len(list(tmp_path.glob("started-*"))) < 2:  # after the workers opened their slots
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.02)
        proc.kill()
        proc.wait(10)
        assert shm_segments([proc.pid]) == set()
    finally:
        os.killpg(proc.pid, 9)  # the orphaned workers too
