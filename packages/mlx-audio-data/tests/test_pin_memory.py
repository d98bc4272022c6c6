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

import mlx_audio.data._loader.cuda as cuda
import mlx_audio.data._loader.transfer as transfer
from mlx_audio.data import DataLoader, Dataset, IterableDataset, get_worker_info
from mlx_audio.data._loader.settings import gpu_backend


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
def cuda_thread(monkeypatch):
    """The transfer thread as on a CUDA GPU."""
    monkeypatch.setattr(transfer, "gpu_backend", lambda: True)


def transfer_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "mlx-audio-transfer"]


@pytest.mark.skipif(gpu_backend(), reason="here is a CUDA GPU: pin_memory is not a no-op")
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


def test_the_thread_changes_no_batch_dtype_or_epoch(cuda_thread):
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


def test_a_pass_runs_on_the_thread_and_the_mlx_transforms_on_the_caller(cuda_thread):
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


def test_the_state_is_of_the_batches_handed_out_not_those_fetched_ahead(cuda_thread):
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


def test_a_samples_error_is_raised_for_its_batch_and_the_pass_goes_on(cuda_thread):
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


def test_persistent_workers_are_kept_and_an_unfinished_pass_gives_them_over(cuda_thread):
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


def test_a_killed_worker_ends_the_pass_with_the_error(cuda_thread):
    source = loader(pin_memory=True, shuffle=False)
    it = iter(source)
    next(it)
    victim = source.worker_pids[1]
    os.kill(victim, signal.SIGKILL)
    with pytest.raises(RuntimeError, match=f"pid {victim}.*SIGKILL"):
        list(it)
    assert list(it) == []
    assert wait_until(lambda: not transfer_threads())


def test_close_and_collection_stop_the_thread_at_once(cuda_thread):
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


def test_a_timeout_is_raised_through_the_thread_and_ends_the_pass(cuda_thread):
    # 3 s: a worker's first batch on the GPU machine (its start, importing MLX's CUDA backend)
    # takes more than 0.5 s, and torch's timeout counts it too
    source = DataLoader(Hangs(), batch_size=4, num_workers=1, timeout=3.0, pin_memory=True)
    it = iter(source)
    start = time.monotonic()
    taken = []
    with pytest.raises(RuntimeError, match="timed out after 3"):
        for batch in it:
            taken.append(batch)
    assert len(taken) == 2 and time.monotonic() - start < 10
    assert list(it) == []
    assert wait_until(lambda: not transfer_threads())


def test_an_iterable_datasets_stream_resumes_exactly(cuda_thread):
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


class Driver:
    """A stand-in for ``libcuda`` (there is no CUDA driver here): records each call, answers 0,
    and fills the out-parameters as the driver would. ``managed`` says which addresses are
    managed memory; ``context`` the context current on the calling thread (0: none)."""

    def __init__(self, managed=lambda pointer: True, context: int = 7, device: int = 1) -> None:
        self.calls: list[tuple] = []
        self.managed, self.context, self.device = managed, context, device

    def _record(self, name: str, *args) -> int:
        self.calls.append((name, *args))
        return 0

    def names(self) -> list[str]:
        return [call[0] for call in self.calls]

    def cuInit(self, flags):
        return self._record("cuInit", flags)

    def cuCtxGetCurrent(self, out):
        out._obj.value = self.context or None
        return self._record("cuCtxGetCurrent")

    def cuDeviceGet(self, out, ordinal):
        out._obj.value = ordinal
        return self._record("cuDeviceGet", ordinal)

    def cuDevicePrimaryCtxRetain(self, out, device):
        out._obj.value = 99
        return self._record("cuDevicePrimaryCtxRetain", device.value)

    def cuCtxSetCurrent(self, context):
        return self._record("cuCtxSetCurrent", context.value)

    def cuCtxGetDevice(self, out):
        out._obj.value = self.device
        return self._record("cuCtxGetDevice")

    def cuStreamCreate(self, out, flags):
        out._obj.value = 1234
        return self._record("cuStreamCreate", flags)

    def cuPointerGetAttribute(self, out, attribute, pointer):
        out._obj.value = int(self.managed(pointer.value))
        return self._record("cuPointerGetAttribute", attribute, pointer.value)

    def cuMemPrefetchAsync_v2(self, pointer, size, location, flags, stream):
        loc = (location.type, location.id)
        return self._record("prefetch", pointer.value, size.value, loc, flags, stream.value)

    def cuStreamSynchronize(self, stream):
        return self._record("cuStreamSynchronize", stream.value)

    def cuMemHostRegister_v2(self, pointer, size, flags):
        return self._record("register", pointer.value, size.value, flags)

    def cuMemHostGetDevicePointer_v2(self, out, pointer, flags):
        out._obj.value = pointer.value  # unified addressing: the host address
        return self._record("device_pointer", pointer.value)

    def cuMemHostUnregister(self, pointer):
        return self._record("unregister", pointer.value)


class OldDriver(Driver):
    """A driver before CUDA 12.2: ``cuMemPrefetchAsync`` takes a device ordinal."""

    cuMemPrefetchAsync_v2 = property()  # hasattr() is False

    def cuMemPrefetchAsync(self, pointer, size, device, stream):
        return self._record("prefetch_v1", pointer.value, size.value, device, stream.value)


def address(array) -> int:
    return np.asarray(array).__array_interface__["data"][0]


def test_each_managed_array_is_prefetched_to_the_contexts_gpu_then_waited_for():
    arrays = [mx.array(np.arange(6, dtype=np.int16)), mx.zeros((3, 4)), mx.array([1, 2])]
    mx.eval(arrays)
    skipped = address(arrays[2])
    driver = Driver(managed=lambda pointer: pointer != skipped)
    moved = cuda.Driver(driver).prefetch(arrays)
    assert moved == 12 + 48
    prefetches = [c for c in driver.calls if c[0] == "prefetch"]
    assert prefetches == [
        ("prefetch", address(arrays[0]), 12, (1, 1), 0, 1234),  # CU_MEM_LOCATION_TYPE_DEVICE, 1
        ("prefetch", address(arrays[1]), 48, (1, 1), 0, 1234),
    ]
    assert ("cuStreamCreate", 1) in driver.calls  # non-blocking: never waits for MLX's streams
    assert driver.names()[-1] == "cuStreamSynchronize" and "cuInit" not in driver.names()
    old = OldDriver()
    cuda.Driver(old).prefetch(arrays[:1])
    assert [c for c in old.calls if c[0].startswith("prefetch")] == [
        ("prefetch_v1", address(arrays[0]), 12, 1, 1234)
    ]


def test_a_thread_without_a_context_gets_the_primary_one_and_nothing_moved_waits_for_nothing():
    driver = Driver(context=0)
    prefetcher = cuda.Driver(driver)
    assert driver.names()[:5] == [
        "cuCtxGetCurrent",
        "cuInit",
        "cuDeviceGet",
        "cuDevicePrimaryCtxRetain",
        "cuCtxSetCurrent",
    ]
    driver.calls.clear()
    assert prefetcher.prefetch([mx.array(np.zeros(0, np.float32))]) == 0
    assert driver.names() == ["cuCtxSetCurrent"]  # no wait when nothing moved


@pytest.fixture
def driver(monkeypatch):
    """The process's prefetcher made on a recording stand-in for libcuda."""
    fake = Driver()
    monkeypatch.setattr(cuda, "_load_driver", lambda: fake)
    monkeypatch.setattr(cuda, "_driver", None)
    monkeypatch.setattr(cuda, "_failed", False)
    return fake


@pytest.mark.parametrize("mode", transfer.MODES)
def test_every_mode_hands_out_the_same_batches(cuda_thread, driver, monkeypatch, mode):
    monkeypatch.setenv("MLX_AUDIO_PIN_MEMORY", mode)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pinned = [plain(b) for b in loader(pin_memory=True)]
    assert pinned == [plain(b) for b in loader()]
    prefetched = [c for c in driver.calls if c[0] == "prefetch"]
    if mode in ("copy", "direct"):  # direct: these arrays are small, mx.array takes them
        assert prefetched == []
    else:  # every array of every batch: pcm, even, half, index; 10 batches of 4
        assert len(prefetched) == 4 * 10
        assert sum(c[2] for c in prefetched) == 10 * (4 * 3 * 2 + 4 * 1 + 4 * 2 + 4 * 4)  # int32


def test_a_driver_that_cannot_prefetch_warns_once_and_changes_no_batch(cuda_thread, monkeypatch):
    def no_driver():
        raise OSError("libcuda.so.1: cannot open shared object file")

    monkeypatch.setattr(cuda, "_load_driver", no_driver)
    monkeypatch.setattr(cuda, "_driver", None)
    monkeypatch.setattr(cuda, "_failed", False)
    monkeypatch.setenv("MLX_AUDIO_PIN_MEMORY", "prefetch")
    with pytest.warns(
        RuntimeWarning, match="cannot be moved to the GPU ahead of use.*libcuda.so.1"
    ) as caught:
        pinned = [[plain(b) for b in loader(pin_memory=True)] for _ in range(2)]
    assert len([w for w in caught if "ahead of use" in str(w.message)]) == 1
    assert pinned == [[plain(b) for b in loader()]] * 2


def test_a_wrong_mode_is_named_with_the_valid_ones(cuda_thread, monkeypatch):
    monkeypatch.setenv("MLX_AUDIO_PIN_MEMORY", "pinned")
    with pytest.raises(
        ValueError, match="'pinned': expected one of copy, prefetch, prefetch\\+copy"
    ):
        next(iter(loader(pin_memory=True)))
    assert wait_until(lambda: not transfer_threads())


@pytest.mark.skipif(not gpu_backend(), reason="CUDA only: the real driver's prefetch")
def test_on_a_cuda_gpu_host_made_batches_are_prefetched_and_read_the_same():
    host = np.arange(3 * 480_000, dtype=np.int16).reshape(3, -1)
    batch = {"pcm": mx.array(host), "label": mx.array(np.arange(3, dtype=np.int32))}
    mx.eval(batch)
    assert cuda.prefetch(batch.values()) == host.nbytes + 3 * 4
    for mode in transfer.MODES:
        moved = transfer.device_copy(batch, mx.new_stream(mx.gpu), mode)
        assert np.array_equal(np.array(moved["pcm"]), host)
        assert mx.sum(moved["pcm"].astype(mx.int64)).item() == int(host.astype(np.int64).sum())


class Frames(Dataset):
    """80 KB float32 clips (above cuda.DIRECT_MIN_BYTES once batched) and an int label."""

    def __len__(self) -> int:
        return 24

    def __getitem__(self, i: int) -> tuple:
        return np.full(20_000, i, np.float32) + np.arange(20_000, dtype=np.float32), i


def emulated_copy(monkeypatch) -> list:
    """``cuda.to_device``'s copy kernel answered by the emulator (which reads the host memory a
    device address names here); returns the launches."""
    import cuda_emulator

    kernel = cuda_emulator.Kernel(cuda.COPY, ["meta"], ["out"])
    launches: list = []

    def launch(*, inputs, grid, threadgroup, output_shapes, output_dtypes):
        assert output_dtypes == [mx.uint8]
        launches.append(np.array(inputs[0]).tolist())
        (raw,) = kernel(
            inputs=[np.array(inputs[0])],
            template=[],
            grid=grid,
            threadgroup=threadgroup,
            output_shapes=output_shapes,
            output_dtypes=[np.uint8],
        )
        return [mx.array(raw)]

    monkeypatch.setattr(cuda, "_copy_kernel", lambda: launch)
    monkeypatch.setattr(cuda, "_BLOCKS", 2)  # a grid-stride loop: any grid copies everything
    monkeypatch.setattr(cuda, "_THREADS", 32)
    return launches


def test_direct_copies_each_large_array_from_its_pinned_slot(cuda_thread, driver, monkeypatch):
    """NOTE [slots copied on the GPU]: the copy kernel's source (emulated) reads
    each batch's clips out of the slot, page-locked once per slot mapping and unregistered
    before the slot is unmapped; batches, dtypes and order as without pin_memory."""
    import cuda_emulator

    if not cuda_emulator.available():
        pytest.skip("no g++ to run the copy kernel's source")
    launches = emulated_copy(monkeypatch)
    monkeypatch.setenv("MLX_AUDIO_PIN_MEMORY", "direct")

    def run(**kwargs) -> list:
        source = DataLoader(Frames(), batch_size=4, shuffle=True, seed=5, num_workers=2, **kwargs)
        return [(np.array(x), np.array(y), x.dtype, y.dtype) for x, y in source]

    pinned, plain_ = run(pin_memory=True), run()
    assert len(pinned) == 6
    for (x, y, xd, yd), (x2, y2, xd2, yd2) in zip(pinned, plain_):
        assert np.array_equal(x, x2) and np.array_equal(y, y2) and (xd, yd) == (xd2, yd2)
    assert len(launches) == 6 and all(nbytes == 4 * 20_000 * 4 for _, nbytes in launches)
    registered = [c for c in driver.calls if c[0] == "register"]
    unregistered = [c for c in driver.calls if c[0] == "unregister"]
    assert 1 <= len(registered) <= 4  # a slot mapping once, however many batches it carries
    assert sorted(c[1] for c in unregistered) == sorted(c[1] for c in registered)
    assert all(c[3] == 3 for c in registered)  # PORTABLE | DEVICEMAP
    assert cuda._driver is not None and cuda._driver.pinned == {}


def test_direct_leaves_what_it_cannot_copy_bit_for_bit_to_mx_array(driver):
    views = {
        "small": np.zeros(100, np.float32),
        "float64": np.zeros(20_000, np.float64),  # MLX makes float32 of it
        "strided": np.zeros((200, 200), np.float32)[:, ::2],
    }
    assert not any(cuda.direct_applies(v) for v in views.values())
    assert cuda.direct_applies(np.zeros(20_000, np.float32))
    assert cuda.to_device(np.zeros(20_000, np.float32), None) is None  # not in a mapping


@pytest.mark.skipif(not gpu_backend(), reason="CUDA only: the real driver and copy kernel")
def test_on_a_cuda_gpu_a_pinned_mappings_bytes_are_copied_by_the_kernel_then_unpinned():
    import mmap

    from mlx_audio.data._loader import shm

    mapping = mmap.mmap(-1, 1 << 22)
    buffer = np.frombuffer(mapping, np.uint8)
    host = np.arange(3 * 480_000, dtype=np.int16).reshape(3, -1)
    view = buffer[4096 : 4096 + host.nbytes].view(np.int16).reshape(host.shape)
    view[...] = host
    stream = mx.new_stream(mx.gpu)
    moved = cuda.to_device(view, stream)
    assert moved is not None and moved.dtype == mx.int16 and moved.shape == host.shape
    assert mx.sum(moved.astype(mx.int64)).item() == int(host.astype(np.int64).sum())
    assert np.array_equal(np.array(moved), host)
    start = int(buffer.__array_interface__["data"][0])
    assert start in cuda._driver.pinned
    for hook in shm.UNMAP_HOOKS:
        hook(start, len(mapping))
    assert start not in cuda._driver.pinned
    del view, buffer
    mapping.close()
