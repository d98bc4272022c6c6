"""Failures: errors in workers, dead workers, Ctrl-C, small /dev/shm, timeouts. No leaks."""

import ctypes
import faulthandler
import gc
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
from data_testing import child_processes, shm_segments

from mlx_audio.data import DataLoader, Dataset


class Faulty(Dataset):
    """Fails at index ``bad`` in the way named by ``how``."""

    def __init__(self, bad=37, how="raise", n=100):
        self.bad, self.how, self.n = bad, how, n

    def __len__(self):
        return self.n

    def __getitem__(self, index):
        if index == self.bad:
            if self.how == "raise":
                raise KeyError(f"no sample called {index}")
            if self.how == "value":
                raise ValueError("corrupt file")
            if self.how == "exit":
                os._exit(3)
            if self.how == "sigkill":
                os.kill(os.getpid(), signal.SIGKILL)
            if self.how == "segfault":
                faulthandler.disable()  # keep pytest's inherited crash dump out of the log
                ctypes.string_at(0)
            if self.how == "hang":
                time.sleep(60)
        return np.full(4, index, np.float32)


@pytest.mark.parametrize("how, error", [("raise", KeyError), ("value", ValueError)])
def test_worker_exception_keeps_type_traceback_and_index(how, error):
    loader = DataLoader(Faulty(how=how), batch_size=8, num_workers=2)
    with pytest.raises(error) as caught:
        list(loader)
    text = str(caught.value)
    assert "DataLoader worker" in text and "index 37" in text
    assert "__getitem__" in text and "Traceback" in text  # the worker's own traceback


def test_in_process_exception_is_the_original_with_the_index():
    with pytest.raises(ValueError, match="corrupt file") as caught:
        list(DataLoader(Faulty(how="value"), batch_size=8))
    if sys.version_info >= (3, 11):
        assert any("index 37" in note for note in caught.value.__notes__)


@pytest.mark.parametrize(
    "how, code", [("exit", "exit code 3"), ("sigkill", "SIGKILL"), ("segfault", "SIGSEGV")]
)
def test_dead_worker_is_reported_quickly(how, code):
    loader = DataLoader(Faulty(how=how), batch_size=8, num_workers=2)
    start = time.monotonic()
    with pytest.raises(RuntimeError, match=rf"DataLoader worker \(pid \d+\) .*{code}") as caught:
        list(loader)
    assert "worker 0" in str(caught.value)
    assert time.monotonic() - start < 10
    assert not any(state == "Z" for state in child_processes().values())


def test_killed_worker_from_outside_is_detected():
    loader = DataLoader(Faulty(how="hang", bad=50), batch_size=8, num_workers=2)
    it = iter(loader)
    next(it)
    victim = loader.worker_pids[1]
    os.kill(victim, signal.SIGKILL)
    with pytest.raises(RuntimeError, match=f"pid {victim}.*SIGKILL"):
        list(it)


def test_timeout_raises():
    loader = DataLoader(Faulty(how="hang", bad=0), batch_size=8, num_workers=1, timeout=0.5)
    with pytest.raises(RuntimeError, match="timed out after 0.5"):
        next(iter(loader))


@pytest.mark.parametrize("num_workers", [0, 2])
def test_early_break_exception_and_gc_release_everything(num_workers):
    loader = DataLoader(Faulty(bad=-1), batch_size=4, num_workers=num_workers)
    for _ in loader:
        break
    assert loader.worker_pids == []
    with pytest.raises(ZeroDivisionError):
        for _ in loader:
            raise ZeroDivisionError("user code failed mid-epoch")
    it = iter(loader)
    next(it)
    del it, loader  # garbage collection stops the workers


CTRL_C_SCRIPT = textwrap.dedent(
    """
    import sys, time
    import numpy as np
    from mlx_audio.data import DataLoader, Dataset

    class Slow(Dataset):
        def __len__(self):
            return 10_000
        def __getitem__(self, i):
            time.sleep(0.01)
            return np.zeros((64, 64), np.float32)

    if __name__ == "__main__":
        loader = DataLoader(Slow(), batch_size=4, num_workers=2)
        try:
            for i, _ in enumerate(loader):
                if i == 2:
                    print("PIDS", *loader.worker_pids, flush=True)
        except KeyboardInterrupt:
            print("INTERRUPTED", flush=True)
            raise
    """
)


def test_ctrl_c_stops_cleanly(tmp_path):
    script = tmp_path / "ctrl_c.py"
    script.write_text(CTRL_C_SCRIPT)
    before = shm_segments()
    # A new session stands in for a terminal: Ctrl-C signals the whole foreground group.
    proc = subprocess.Popen(
        [sys.executable, str(script)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    line = proc.stdout.readline()
    assert line.startswith("PIDS"), line + proc.stderr.read()
    pids = [int(p) for p in line.split()[1:]]
    os.killpg(proc.pid, signal.SIGINT)  # main process and workers alike, as a terminal does
    out, err = proc.communicate(timeout=30)
    assert proc.returncode != 0 and "INTERRUPTED" in out
    assert "KeyboardInterrupt" in err and "DataLoader worker" not in err  # workers stay quiet
    time.sleep(0.2)
    for pid in pids:
        assert not os.path.exists(f"/proc/{pid}"), f"worker {pid} outlived Ctrl-C"
    assert not shm_segments([proc.pid, *pids]) - before


def test_main_process_killed_leaves_nothing_behind(tmp_path):
    script = tmp_path / "killed.py"
    script.write_text(CTRL_C_SCRIPT)
    before = shm_segments()
    proc = subprocess.Popen(
        [sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    pids = [int(p) for p in proc.stdout.readline().split()[1:]]
    proc.kill()
    proc.wait(timeout=10)
    deadline = time.monotonic() + 10
    while any(os.path.exists(f"/proc/{pid}") for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(os.path.exists(f"/proc/{pid}") for pid in pids), "orphaned workers kept running"
    assert not shm_segments([proc.pid, *pids]) - before


def _mount_tiny_tmpfs(path):
    path.mkdir()
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(path)], capture_output=True
    )
    return result.returncode == 0


def test_too_small_shared_memory_gives_the_remedy(tmp_path, monkeypatch):
    tiny = tmp_path / "shm"
    if not _mount_tiny_tmpfs(tiny):
        pytest.skip(
            "cannot mount a 1 MiB tmpfs here (needs root): the small-/dev/shm error is untested"
        )
    try:
        monkeypatch.setenv("MLX_AUDIO_SHM_DIR", str(tiny))

        class Big(Dataset):
            def __len__(self):
                return 8

            def __getitem__(self, i):
                return np.zeros((1, 64, 1001), np.float32)

        with pytest.raises(RuntimeError, match=r"not enough shared memory .*--shm-size"):
            list(DataLoader(Big(), batch_size=8, num_workers=1))
        assert os.listdir(tiny) == []
        gc.collect()
        held = []
        for fd in os.listdir("/proc/self/fd"):
            try:
                held.append(os.readlink(f"/proc/self/fd/{fd}"))
            except OSError:  # the listing's own descriptor
                pass
        with open("/proc/self/maps") as maps:
            held += [line.split()[-1] for line in maps]
        assert not [p for p in held if p.startswith(str(tiny))], (
            "a slot file is still open or mapped"
        )
    finally:
        subprocess.run(["umount", "-l", str(tiny)], check=False)  # lazy: never left mounted


def _run_script(tmp_path, source, *args, timeout=60):
    script = tmp_path / "script.py"
    script.write_text(textwrap.dedent(source))
    start = time.monotonic()
    result = subprocess.run(
        [sys.executable, str(script), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=tmp_path,
    )
    return result, time.monotonic() - start


EXIT_AFTER_ERROR = """
    import sys
    import numpy as np
    from mlx_audio.data import ArrayDataset, DataLoader

    if __name__ == "__main__":
        data = ArrayDataset(np.zeros((400_000, 2), np.float32))
        loader = DataLoader(data, batch_size=100_000, num_workers=2, persistent_workers=sys.argv[1] == "1")
        for batch in loader:
            raise ValueError("boom")
"""


@pytest.mark.parametrize("persistent", ["0", "1"])
def test_an_exception_in_the_loop_never_hangs_the_exit(tmp_path, persistent):
    result, seconds = _run_script(tmp_path, EXIT_AFTER_ERROR, persistent)
    assert "ValueError: boom" in result.stderr and seconds < 20


NO_MAIN_GUARD = """
    import numpy as np
    from mlx_audio.data import ArrayDataset, DataLoader

    loader = DataLoader(ArrayDataset(np.arange(8, dtype=np.float32)), batch_size=2, num_workers=1,
                        multiprocessing_context="spawn")
    print(len(list(loader)))
"""


def test_spawn_without_a_main_guard_says_so(tmp_path):
    result, _ = _run_script(tmp_path, NO_MAIN_GUARD)
    assert result.returncode != 0
    assert (
        'if __name__ == "__main__":' in result.stderr
        and "segfault" not in result.stderr.splitlines()[-1]
    )
