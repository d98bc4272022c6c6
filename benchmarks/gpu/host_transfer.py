"""What it costs to hand a numpy batch to MLX on a GPU, and whether it waits for the device.

The CLAP loader benchmark moves a 32 x 480,000 float32 batch (61 MB) from the workers' shared
memory into an ``mx.array`` every step. This measures, for that batch (and its int16 form):
``mx.array(x)`` with the GPU idle and while a ~60 ms GPU job runs (does the copy wait for the
device?), the first device read of the new array (page migration of managed memory), and the
same copy on a background thread while the main thread waits on the device (does it overlap?);
then the transfer thread's ways to move it (NOTE [pin_memory on CUDA]): the managed pages
prefetched in one bulk transfer (``cuMemPrefetchAsync``) before the first read, and a device copy.
Usage: ``python3 benchmarks/gpu/host_transfer.py [--repeats 10]``.
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--size", type=int, default=6144, help="side of the GPU job's matrices")
    args = parser.parse_args()
    import mlx.core as mx

    def ms(fn, repeats: int = args.repeats) -> float:
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            fn()
            times.append(1000 * (time.perf_counter() - start))
        return statistics.median(times)

    w = mx.random.normal((args.size, args.size))
    mx.eval(w)

    def gpu_job() -> mx.array:  # ~tens of ms of matmuls, queued without waiting
        y = w
        for _ in range(12):
            y = (y @ w) * (1 / 80)
        mx.async_eval(y)
        return y

    job = ms(lambda: mx.eval(gpu_job()))
    print(f"GPU job alone: {job:.1f} ms", flush=True)
    rng = np.random.default_rng(0)
    for name, x in [
        ("float32", rng.standard_normal((32, 480_000), dtype=np.float32)),
        ("int16", rng.integers(-3000, 3000, (32, 480_000)).astype(np.int16)),
    ]:
        print(measure(name, x, ms, gpu_job, job), flush=True)


def measure(name: str, x: np.ndarray, ms, gpu_job, job: float) -> str:
    import mlx.core as mx

    idle = ms(lambda: mx.array(x))
    copy = ms(lambda: np.copyto(np.empty_like(x), x))

    def then_read() -> None:
        a = mx.array(x)
        mx.eval(mx.sum(a.astype(mx.float32)))

    def under_job() -> float:
        y = gpu_job()
        start = time.perf_counter()
        mx.array(x)
        took = 1000 * (time.perf_counter() - start)
        mx.eval(y)
        return took

    def threaded() -> None:
        y = gpu_job()
        done: list = []
        t = threading.Thread(target=lambda: done.append(mx.array(x)))
        t.start()
        mx.eval(y)
        t.join()

    from mlx_audio.data._loader import cuda

    def prefetched() -> None:
        a = mx.array(x)
        cuda.prefetch([a])

    def prefetched_then_read() -> None:
        a = mx.array(x)
        cuda.prefetch([a])
        mx.eval(mx.sum(a.astype(mx.float32)))

    def copied_then_read() -> None:
        a = mx.array(x) + 0
        mx.eval(a)
        mx.eval(mx.sum(a.astype(mx.float32)))

    def resident_read() -> None:
        mx.eval(mx.sum(resident.astype(mx.float32)))

    import mmap

    mapping = mmap.mmap(-1, x.nbytes + 4096)  # a worker's slot, as the loader maps it
    slot = np.frombuffer(mapping, np.uint8)[: x.nbytes].view(x.dtype).reshape(x.shape)
    slot[...] = x
    stream = mx.new_stream(mx.gpu)

    def direct_then_read() -> None:
        a = cuda.to_device(slot, stream)  # pinned once (first call), then a copy kernel
        if a is None:
            raise RuntimeError("the direct copy does not apply here (see the warning above)")
        mx.eval(mx.sum(a.astype(mx.float32)))

    try:
        direct_then_read()  # registers the mapping
        direct = ms(direct_then_read)
        assert np.array_equal(np.array(cuda.to_device(slot, stream)), x)
    except Exception as error:  # the other rows still count
        print(f"direct: {type(error).__name__}: {error}", flush=True)
        direct = float("nan")
    resident = mx.array(x) + 0
    mx.eval(resident)
    read = ms(then_read)
    pre = ms(prefetched)
    pre_read = ms(prefetched_then_read)
    copy_read = ms(copied_then_read)
    base_read = ms(resident_read)
    busy = statistics.median(under_job() for _ in range(10))
    both = ms(threaded)
    return (
        f"{name} {x.nbytes / 2**20:.0f} MiB: np.copyto {copy:.1f} ms | mx.array, GPU idle {idle:.1f} ms | "
        f"mx.array + first GPU read {read:.1f} ms | mx.array while the GPU job runs {busy:.1f} ms | "
        f"GPU job + mx.array on a thread {both:.1f} ms (job alone {job:.1f}) | "
        f"mx.array + prefetch {pre:.1f} ms | + prefetch + first read {pre_read:.1f} ms | "
        f"mx.array + device copy + read {copy_read:.1f} ms | read of a device array {base_read:.2f} ms"
        f" | direct from the pinned slot + read {direct:.2f} ms"
    )


if __name__ == "__main__":
    main()
