"""DataLoader throughput: mlx_audio vs torch.utils.data.DataLoader (and Apple's mlx-data).

Run with the anchor venv (``make bench``) for the full comparison; without torch/mlx-data
installed only the MLX side runs (``make demo``). Samples/s include the conversion to
``mx.array`` (torch side: to tensor), and each measurement is a full pass over the dataset
including worker start-up; we report the best of ``--repeats`` passes.

Cases: (a) 28x28 float32 + int label, B=64; (b) 1x64x1001 float32 log-mels, B=32;
(c) CPU-heavy per-sample transform (random crop + gain of a 1x160000 waveform, then a numpy
log-mel), B=16. All datasets are per-sample Python ``__getitem__`` datasets; ``ArrayDataset``
rows compare the batched fetch path against mlx-data.

``--passes``: whole passes of 1,536 and 4,608 such samples (fork), the samples/s ratio to
torch's (issue 29's item 7: >= 1.5x).

``--start`` (about a minute): the start of a pass, ours against torch's DataLoader, each
measurement in a fresh process, alternating ours and torch for ``--rounds`` rounds (medians,
so that a shared machine's noise hits both): the time from ``iter(loader)`` to the first batch
of 32 x (1, 64, 1001) float32 through 2 workers with ``fork`` and ``spawn`` (cold: the
process's first pass; warm: a later one), and a whole pass of 1,536 such samples. Ours runs
this checkout's code (its ``packages/*/src`` first on ``PYTHONPATH``); torch runs in this
interpreter if it has torch, else in ``.venv-anchor``. torch's strongest CPU settings: no
``pin_memory``, new workers per pass as ours, ``prefetch_factor`` 2 (its best here).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import mlx.core as mx
import numpy as np

import mlx_audio.data  # noqa: F401  (first: OpenBLAS before mlx.core on Linux)
from mlx_audio.data import ArrayDataset, DataLoader, Dataset
from mlx_audio.data.audio import log_mel_spectrogram, mel_filterbank


class RandomSamples(Dataset):
    """Per-sample Python dataset: (float32 array of ``shape``, int label), one numpy store."""

    def __init__(self, n: int, shape: tuple[int, ...], scale: float = 1.0) -> None:
        rng = np.random.default_rng(0)
        self.x = rng.standard_normal((n, *shape), dtype=np.float32) * np.float32(scale)
        self.y = rng.integers(0, 10, n)

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int):
        return self.x[i], int(self.y[i])


FILTERS = mel_filterbank(16000, 400, 64)


def crop_gain_logmel(sample, rng):
    """Random 160000-sample crop, random gain, 64-band log-mel (n_fft 400, hop 160)."""
    wave, label = sample
    start = int(rng.integers(0, wave.shape[-1] - 160000 + 1))
    wave = wave[:, start : start + 160000] * np.float32(rng.uniform(0.5, 1.5))
    return log_mel_spectrogram(wave, 16000, n_fft=400, hop_length=160, filters=FILTERS), label


class TorchTransformed:
    """The same transform for torch's loader, seeded per (epoch, index) like ours."""

    def __init__(self, base, epoch: int = 0) -> None:
        self.base, self.epoch = base, epoch

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i: int):
        return crop_gain_logmel(self.base[i], np.random.default_rng([0, self.epoch, i]))


def throughput(make_iter, n_samples: int, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in make_iter():
            pass
        best = min(best, time.perf_counter() - start)
    return n_samples / best


def ours(dataset, batch_size, num_workers, **kwargs):
    loader = DataLoader(
        dataset, batch_size=batch_size, shuffle=True, num_workers=num_workers, seed=0, **kwargs
    )
    return lambda: iter(loader)


def theirs(dataset, batch_size, num_workers):
    import torch

    loader = torch.utils.data.DataLoader(
        dataset, batch_size=batch_size, shuffle=True, num_workers=num_workers
    )
    return lambda: iter(loader)


def mlx_data_stream(arrays, batch_size):
    import mlx.data as dx

    samples = [{"x": x, "y": np.asarray(y)} for x, y in zip(*arrays)]
    buffer = dx.buffer_from_vector(samples)

    def run():
        for batch in buffer.shuffle().to_stream().batch(batch_size).prefetch(4, 2):
            yield mx.array(batch["x"]), mx.array(batch["y"])

    return run


def memcpy_gbps(nbytes: int) -> float:
    src = np.ones(nbytes // 4, np.float32)
    dst = np.empty_like(src)
    best = min(_timed(lambda: np.copyto(dst, src)) for _ in range(20))
    return nbytes / best / 1e9


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def available(module: str) -> bool:
    try:
        __import__(module)
        return True
    except ImportError:
        return False


# -- the start of a pass (--start) -----------------------------------------------------------------
START_SHAPE = (1, 64, 1001)  # 256 KB float32 samples


class BigSamples:
    """``n`` samples of 256 KB, views of 64 distinct ones (small to pickle under spawn)."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.base = np.random.default_rng(0).standard_normal((64, *START_SHAPE), dtype=np.float32)

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int):
        return self.base[i % 64], i % 10


class OurBigSamples(BigSamples, Dataset):
    pass


def start_child(which: str, method: str, n_pass: int, warm: int) -> dict:
    """In a fresh process: first-batch latency (the first pass, then ``warm`` more), and the
    samples/s of a whole pass over ``n_pass`` samples (start included)."""
    if which == "ours":
        dataset: BigSamples = OurBigSamples(n_pass)

        def make(n: int):
            dataset.n = n
            return DataLoader(
                dataset,
                batch_size=32,
                shuffle=True,
                num_workers=2,
                seed=0,
                multiprocessing_context=method,
            )
    else:
        import torch

        dataset = BigSamples(n_pass)

        def make(n: int):
            dataset.n = n
            return torch.utils.data.DataLoader(
                dataset,
                batch_size=32,
                shuffle=True,
                num_workers=2,
                multiprocessing_context=method,
                prefetch_factor=2,
            )

    firsts = []
    for _ in range(1 + warm if warm >= 0 else 0):  # warm < 0: the pass only
        loader = make(256)
        start = time.perf_counter()
        iterator = iter(loader)
        next(iterator)
        firsts.append(time.perf_counter() - start)
        del iterator, loader
    loader = make(n_pass)
    start = time.perf_counter()
    count = sum(len(batch[1]) for batch in loader)
    seconds = time.perf_counter() - start
    return {
        "cold_ms": firsts[0] * 1e3 if firsts else None,
        "warm_ms": statistics.median(firsts[1:]) * 1e3 if warm > 0 else None,
        "pass_sps": count / seconds,
    }


def _pythons() -> tuple[str, str | None]:
    root = Path(__file__).resolve().parent.parent
    ours = root / ".venv" / "bin" / "python"
    anchor = root / ".venv-anchor" / "bin" / "python"
    theirs = sys.executable if available("torch") else (str(anchor) if anchor.exists() else None)
    return (str(ours) if ours.exists() else sys.executable), theirs


def _src_path(root: Path) -> str:
    return os.pathsep.join(str(p) for p in sorted(root.glob("packages/*/src")))


def _measure(rounds: int, runs: list[tuple[str, int, int]], baseline: str | None) -> tuple:
    """``rounds`` rounds of fresh processes, every loader (ours, the baseline's, torch's) in
    turn for each (start method, pass size, warm first batches) of ``runs``."""
    root = Path(__file__).resolve().parent.parent
    ours_python, torch_python = _pythons()
    who = [("ours", "ours", ours_python, _src_path(root))]
    if baseline:
        who.append((f"ours at {baseline}", "ours", ours_python, _src_path(Path(baseline))))
    if torch_python:
        who.append(("torch", "torch", torch_python, _src_path(root)))
    results: dict[tuple[str, str, int], list[dict]] = {}
    for _ in range(rounds):
        for method, n_pass, warm in runs:
            for label, which, python, src in who:
                env = {
                    **os.environ,
                    "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", ""),
                }
                out = subprocess.run(
                    [python, __file__, "--child", which, method, str(n_pass), str(warm)],
                    env=env,
                    capture_output=True,
                    text=True,
                    check=True,
                ).stdout
                results.setdefault((label, method, n_pass), []).append(
                    json.loads(out.splitlines()[-1])
                )
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    return who, results, f"load average {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} (1/5/15 min)"


def _median(runs: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def start_table(rounds: int, n_pass: int, baseline: str | None = None) -> None:
    """``baseline``: another checkout (e.g. the main branch's) measured as a third loader."""
    who, results, load = _measure(rounds, [("fork", n_pass, 2), ("spawn", n_pass, 2)], baseline)
    print(
        f"\nstart of a pass: 32 x {START_SHAPE} float32 batches, 2 workers, medians of {rounds} "
        f"fresh processes per row, the loaders alternating; {load} on {os.cpu_count()} cores; "
        "x torch: torch's time / ours (first batch), ours / torch's (samples/s): > 1 is faster\n"
    )
    print(
        "| start method | loader | first batch, cold (ms) | first batch, warm (ms) | "
        f"pass of {n_pass:,} samples (samples/s) |"
    )
    print("|---|---|---:|---:|---:|")
    for method in ("fork", "spawn"):
        ref = results.get(("torch", method, n_pass))
        for label, *_ in who:
            runs = results[(label, method, n_pass)]
            cells = []
            for key, unit in (
                ("cold_ms", "{:.0f}"),
                ("warm_ms", "{:.0f}"),
                ("pass_sps", "{:,.0f}"),
            ):
                value = _median(runs, key)
                text = unit.format(value)
                if ref is not None and label != "torch":
                    other = _median(ref, key)
                    text += (
                        f" ({(value / other if key == 'pass_sps' else other / value):.2f}x torch)"
                    )
                cells.append(text)
            print(f"| {method} | {label} | " + " | ".join(cells) + " |")
    sys.stdout.flush()


def pass_table(rounds: int, sizes: tuple[int, ...], baseline: str | None = None) -> None:
    """Whole passes of ``sizes`` samples (worker start included), fork, ours against torch's."""
    who, results, load = _measure(rounds, [("fork", n, -1) for n in sizes], baseline)
    print(
        f"\nwhole passes: 32 x {START_SHAPE} float32 batches, 2 workers (fork), samples/s, "
        f"medians of {rounds} fresh processes, the loaders alternating; {load} on "
        f"{os.cpu_count()} cores\n"
    )
    print("| samples | " + " | ".join(label for label, *_ in who) + " | ours / torch |")
    print("|---:|" + "---:|" * (len(who) + 1))
    for n in sizes:
        rates = [_median(results[(label, "fork", n)], "pass_sps") for label, *_ in who]
        ratio = f"**{rates[0] / rates[-1]:.2f}x**" if who[-1][0] == "torch" else "-"
        print(f"| {n:,} | " + " | ".join(f"{r:,.0f}" for r in rates) + f" | {ratio} |")
    sys.stdout.flush()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="smaller datasets (demo)")
    parser.add_argument(
        "--mlx-only", action="store_true", help="skip torch and mlx-data even if installed"
    )
    parser.add_argument(
        "--start",
        action="store_true",
        help="only the start-of-a-pass table, ours vs torch interleaved (about a minute)",
    )
    parser.add_argument(
        "--passes",
        action="store_true",
        help="only whole passes of 1,536 and 4,608 large samples, ours vs torch interleaved",
    )
    parser.add_argument(
        "--rounds", type=int, default=3, help="--start/--passes: fresh processes per row"
    )
    parser.add_argument(
        "--baseline", help="--start: another checkout to measure too (e.g. /work/main)"
    )
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        which, method, n_pass, warm = args.child
        print(json.dumps(start_child(which, method, int(n_pass), warm=int(warm))))
        return
    if args.start or args.passes:
        if args.start:
            start_table(args.rounds, 1536, args.baseline)
        if args.passes:
            pass_table(args.rounds, (1536, 4608), args.baseline)
        return
    scale = 4 if args.quick else 1
    has_torch = available("torch") and not args.mlx_only
    has_mlx_data = available("mlx.data") and not args.mlx_only
    cases = [
        ("(a) 28x28 + label, B=64", RandomSamples(20000 // scale, (28, 28)), 64, {}),
        ("(b) 1x64x1001 log-mel, B=32", RandomSamples(2048 // scale, (1, 64, 1001)), 32, {}),
        # raw 16 kHz waveforms, longer than the 10 s crop
        (
            "(c) crop+gain+log-mel transform, B=16",
            RandomSamples(256 // scale, (1, 176000), 0.1),
            16,
            {"cpu_transforms": crop_gain_logmel},
        ),
    ]
    rows = []
    for name, dataset, batch, extra in cases:
        for workers in (0, 2):
            mine = throughput(ours(dataset, batch, workers, **extra), len(dataset), args.repeats)
            ref = None
            if has_torch:
                torch_ds = TorchTransformed(dataset) if extra else dataset
                ref = throughput(theirs(torch_ds, batch, workers), len(dataset), args.repeats)
            rows.append((name, f"per-sample, {workers} workers", mine, "torch DataLoader", ref))
        if not extra:
            arrays = (dataset.x, dataset.y)
            mine = throughput(ours(ArrayDataset(*arrays), batch, 0), len(dataset), args.repeats)
            ref = (
                throughput(mlx_data_stream(arrays, batch), len(dataset), args.repeats)
                if has_mlx_data
                else None
            )
            rows.append((name, "ArrayDataset, 0 workers", mine, "mlx-data buffer", ref))

    print(
        f"\nmachine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"mlx {mx.__version__}"
        + (f", torch {__import__('torch').__version__}" if has_torch else "")
    )
    print(
        f"single-process memcpy ceiling for (b)'s 8.2 MB batches: {memcpy_gbps(32 * 64 * 1001 * 4):.1f} GB/s\n"
    )
    if not (has_torch or has_mlx_data):
        print("| case | mlx_audio loader | samples/s |\n|---|---|---:|")
        for name, what, mine, _, _ in rows:
            print(f"| {name} | {what} | {mine:,.0f} |")
        print("\n(`make bench` runs the same cases against torch's DataLoader and mlx-data.)")
        return
    print("| case | mlx_audio loader | samples/s | anchor | anchor samples/s | ratio |")
    print("|---|---|---:|---|---:|---:|")
    for name, what, mine, anchor, ref in rows:
        ratio = f"{mine / ref:.2f}x" if ref else "-"
        ref_text = f"{ref:,.0f}" if ref else "(not installed)"
        print(f"| {name} | {what} | {mine:,.0f} | {anchor} | {ref_text} | {ratio} |")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
