"""pin_memory=True: torch's no-op with a warning where there is no CUDA GPU; on a CUDA GPU a
transfer thread (NOTE [pin_memory on CUDA]) that must not change a single batch, error or state.

The thread's code is the same on every device: here it runs on the CPU (its copies on a CPU
stream of its own), with the CUDA check answered yes."""

from __future__ import annotations

import os
import signal
import threading
import time
import warnings

import mlx.core as mx
import numpy as np
import pytest
from data_testing import wait_until

import mlx_audio.data._loader.transfer as transfer
from mlx_audio.data import DataLoader, Dataset, IterableDataset, get_worker_info


class Mixed(Dataset):
    """Arrays of several dtypes (int16 PCM, bool, float16), a string, a Python int; fails at
    index ``bad`` with a ValueError (a sample's error)."""

    def __init__(self, n: int = 40, bad: int = -1) -> None:
        self.n, self.bad = n, bad

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict:
        if i == self.bad:
            raise ValueError(f"corrupt sample {i}")
        return {
            "pcm": np.full(3, i, np.int16),
            "even": i % 2 == 0,
            "half": np.float16(i) / 2,
            "name": f"clip{i}",
            "index": i,
        }


class Stream(IterableDataset):
    def __iter__(self):
        info = get_worker_info()
        start, step = (info.id, info.num_workers) if info else (0, 1)
        yield from (np.full(2, i, np.float32) for i in range(start, 30, step))


def plain(batch: dict) -> list:
    return [
        np.array(batch["pcm"]).tolist(),
        np.array(batch["even"]).tolist(),
        np.array(batch["half"]).tolist(),
        batch["name"],
        np.array(batch["index"]).tolist(),
    ]


def loader(**kwargs) -> DataLoader:
    kwargs = {"batch_size": 4, "shuffle": True, "seed": 3, "num_workers": 2, **kwargs}
    return DataLoader(kwargs.pop("dataset", Mixed()), **kwargs)


@pytest.fixture
def cuda(monkeypatch):
    """The transfer thread as on a CUDA GPU."""
    monkeypatch.setattr(transfer, "gpu_backend", lambda: True)


def transfer_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "mlx-audio-transfer"]


def test_without_cuda_it_is_torchs_warned_no_op():
    pinned = loader(pin_memory=True)
    assert pinned.pin_memory is True  # torch keeps the attribute as given
    with pytest.warns(UserWarning, match="'pin_memory' argument is set as true but no accelerator"):
        batches = [plain(b) for b in pinned]
    assert batches == [plain(b) for b in loader()]
    with pytest.warns(UserWarning) as caught:
        list(loader(pin_memory=True, pin_memory_device="cuda"))
    assert any("pin_memory_device is deprecated" in str(w.message) for w in caught)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        list(loader(pin_memory_device="cuda"))  # as torch: only with pin_memory


def test_the_thread_changes_no_batch_dtype_or_epoch(cuda):
    pinned, unpinned = loader(pin_memory=True), loader()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning on a CUDA GPU
        first = [[plain(b) for b in pinned] for _ in range(2)]
    assert first == [[plain(b) for b in unpinned] for _ in range(2)]
    batch = next(iter(pinned))
    assert (batch["pcm"].dtype, batch["even"].dtype, batch["half"].dtype) == (
        mx.int16,
        mx.bool_,
        mx.float16,
    )
    assert isinstance(batch["name"], list) and isinstance(batch["index"], mx.array)
    streams = [b for b in loader(dataset=Stream(), shuffle=None, seed=None, pin_memory=True)]
    assert [np.array(b).tolist() for b in streams] == [
        np.array(b).tolist() for b in loader(dataset=Stream(), shuffle=None, seed=None)
    ]


def test_a_pass_runs_on_the_thread_and_the_mlx_transforms_on_the_caller(cuda):
    where: list[str] = []

    def note(batch: dict) -> dict:
        where.append(threading.current_thread().name)
        return batch

    it = iter(loader(pin_memory=True, mlx_transforms=note))
    next(it)
    assert len(transfer_threads()) == 1
    list(it)
    assert set(where) == {threading.current_thread().name}
    assert wait_until(lambda: not transfer_threads())


def test_the_state_is_of_the_batches_handed_out_not_those_fetched_ahead(cuda):
    source = loader(pin_memory=True, prefetch_factor=4)
    it = iter(source)
    taken = [plain(next(it)) for _ in range(3)]
    time.sleep(0.3)  # the thread is now batches ahead
    state = source.state_dict()
    assert state["batches_yielded"] == 3
    rest = [plain(b) for b in it]
    resumed = loader(pin_memory=True)
    resumed.load_state_dict(state)
    assert [plain(b) for b in resumed] == rest
    assert taken + rest == [plain(b) for b in loader()]
    it = iter(source)  # a pass abandoned after 2 batches and collected: its state stays at 2
    next(it), next(it)
    del it
    assert source.state_dict()["batches_yielded"] == 2


def test_a_samples_error_is_raised_for_its_batch_and_the_pass_goes_on(cuda):
    def outcomes(**kwargs) -> list:
        out = []
        it = iter(loader(dataset=Mixed(bad=9), shuffle=False, **kwargs))
        while True:
            try:
                out.append(plain(next(it))[4])
            except StopIteration:
                return out
            except ValueError as error:
                out.append("corrupt sample 9" in str(error))

    assert (
        outcomes(pin_memory=True)
        == outcomes()
        == [[0, 1, 2, 3], [4, 5, 6, 7], True, *[[i, i + 1, i + 2, i + 3] for i in range(12, 40, 4)]]
    )


def test_persistent_workers_are_kept_and_an_unfinished_pass_gives_them_over(cuda):
    source = loader(pin_memory=True, persistent_workers=True)
    it = iter(source)
    next(it)
    pids = source.worker_pids
    again = [plain(b) for b in source]  # a new pass takes the workers over, the old one ends
    assert source.worker_pids == pids and len(pids) == 2
    assert list(it) == []
    reference = loader()
    next(iter(reference))
    assert again == [plain(b) for b in reference]  # epoch 1, whole
    source.close()
    assert wait_until(lambda: not transfer_threads())


def test_a_killed_worker_ends_the_pass_with_the_error(cuda):
    source = loader(pin_memory=True, shuffle=False)
    it = iter(source)
    next(it)
    victim = source.worker_pids[1]
    os.kill(victim, signal.SIGKILL)
    with pytest.raises(RuntimeError, match=f"pid {victim}.*SIGKILL"):
        list(it)
    assert list(it) == []
    assert wait_until(lambda: not transfer_threads())


def test_close_and_collection_stop_the_thread_at_once(cuda):
    source = loader(pin_memory=True, dataset=Mixed(n=4000))
    it = iter(source)
    next(it)
    start = time.monotonic()
    source.close()
    assert wait_until(lambda: not transfer_threads())
    assert time.monotonic() - start < 5
    it = iter(loader(pin_memory=True, dataset=Mixed(n=4000)))
    next(it)
    del it
    assert wait_until(lambda: not transfer_threads())


def test_device_copy_is_a_new_evaluated_array_of_the_same_dtype():
    stream = mx.new_stream(mx.default_device())
    batch = {"a": mx.array(np.arange(6, dtype=np.int16)), "b": (mx.array([True, False]), "text", 3)}
    moved = transfer.device_copy(batch, stream)
    assert moved["a"].dtype == mx.int16 and moved["b"][0].dtype == mx.bool_
    assert moved["a"].tolist() == list(range(6)) and moved["b"][1:] == ("text", 3)
    pointer = lambda a: np.asarray(a).__array_interface__["data"][0]  # noqa: E731
    assert pointer(moved["a"]) != pointer(batch["a"])


class Hangs(Dataset):
    def __len__(self) -> int:
        return 40

    def __getitem__(self, i: int) -> np.ndarray:
        if i == 9:
            time.sleep(30)
        return np.full(2, i, np.float32)


def test_a_timeout_is_raised_through_the_thread_and_ends_the_pass(cuda):
    source = DataLoader(Hangs(), batch_size=4, num_workers=1, timeout=0.5, pin_memory=True)
    it = iter(source)
    start = time.monotonic()
    taken = []
    with pytest.raises(RuntimeError, match="timed out after 0.5"):
        for batch in it:
            taken.append(batch)
    assert len(taken) == 2 and time.monotonic() - start < 5
    assert list(it) == []
    assert wait_until(lambda: not transfer_threads())


def test_an_iterable_datasets_stream_resumes_exactly(cuda):
    def run(**kwargs) -> list:
        return [
            np.array(b).tolist()
            for b in loader(dataset=Stream(), shuffle=None, seed=None, batch_size=3, **kwargs)
        ]

    source = loader(dataset=Stream(), shuffle=None, seed=None, batch_size=3, pin_memory=True)
    it = iter(source)
    first = [np.array(next(it)).tolist() for _ in range(3)]
    time.sleep(0.3)
    state = source.state_dict()
    rest = [np.array(b).tolist() for b in it]
    resumed = loader(dataset=Stream(), shuffle=None, seed=None, batch_size=3, pin_memory=True)
    resumed.load_state_dict(state)
    with pytest.warns(
        UserWarning, match="replaying its stream"
    ):  # a stream without a state of its own
        again = [np.array(b).tolist() for b in resumed]
    assert again == rest and first + rest == run()
