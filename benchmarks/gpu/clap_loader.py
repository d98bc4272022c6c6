"""CLAP trained from audio files on disk vs from pre-made batches: does the DataLoader keep up?

Writes ``--files`` 10 s, 48 kHz WAV clips (int16) to a folder, then runs ``Trainer.fit``
(htsat-unfused, text frozen, AdamW, ``precision="bf16-mixed"``, B=32) once per variant, with the
same steps: ``premade`` on log-mel batches already on the device; ``f32`` from the files through
our DataLoader: worker processes decode the WAVs, the batch is collated in shared memory and the
log-mel runs on the GPU as an ``mlx_transforms`` step (``LogMel``). Variants that locate the
cost: ``f32-thread`` (the loader iterated on a background thread), ``f32-device`` (that thread
also copies each batch on a stream of its own), ``i16``/``i16-thread`` (int16 PCM, which ``LogMel``
scales on the GPU: half the bytes), ``mel-workers`` (log-mel computed in the workers with numpy),
``f32-pin``/``i16-pin`` (the loader's own ``pin_memory=True``: its transfer thread copies each batch
to the GPU ahead of use, NOTE [pin_memory on CUDA]), ``i16-prefetch`` (the thread moves the
batch's managed pages in one bulk ``cuMemPrefetchAsync`` instead, NOTE [prefetch, not page
faults]), ``i16-prefetch+copy`` (both), ``i16-direct`` (a GPU kernel copies each batch straight
from its page-locked shared-memory slot: NOTE [slots copied on the GPU]). (The WAVs are
read with the stdlib ``wave`` module: the lent GPU machine has no libsndfile.) Reports the mean
ms/step of each after ``--warmup`` steps, its ratio to ``premade`` (target: <= 1.05x) and the host
time spent getting a batch. A freshly started machine first compiles MLX's CUDA kernels (minutes).
Usage: ``python3 benchmarks/gpu/clap_loader.py [--files 480] [--workers 12] [--variants premade,f32]``.
"""

from __future__ import annotations

import argparse
import os
import queue
import tempfile
import threading
import time
import wave

import numpy as np

B, SR, SECONDS, TOKENS = 32, 48_000, 10, 64


def write_clips(folder: str, count: int) -> list[str]:
    rng = np.random.default_rng(0)
    paths = []
    for i in range(count):
        path = os.path.join(folder, f"clip{i:05d}.wav")
        tone = np.sin(2 * np.pi * rng.uniform(100, 4000) * np.arange(SR * SECONDS) / SR)
        pcm = ((0.3 * tone + 0.05 * rng.standard_normal(tone.shape)) * 32767).astype("<i2")
        with wave.open(path, "wb") as f:
            f.setnchannels(1)
            f.setsampwidth(2)
            f.setframerate(SR)
            f.writeframes(pcm.tobytes())
        paths.append(path)
    return paths


class Clips:
    """(waveform, token ids, attention mask) per file; the waveform as float32 in [-1, 1), as
    the int16 PCM of the file (``pcm=True``: half the bytes; ``LogMel`` scales it), or as its
    log-mel computed in the worker with numpy (``mels=True``)."""

    def __init__(self, paths: list[str], pcm: bool = False, mels: bool = False) -> None:
        self.paths = paths
        self.pcm = pcm
        self.mels = mels
        rng = np.random.default_rng(1)
        self.ids = rng.integers(3, 50265, (len(paths), TOKENS)).astype(np.int32)
        from mlx_audio.data.audio.features import mel_filterbank

        self.filters = mel_filterbank(SR, 1024, 64, 50, 14_000)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple:
        with wave.open(
            self.paths[i], "rb"
        ) as f:  # the stdlib reader: the lent GPU machine has no libsndfile
            pcm = np.frombuffer(f.readframes(f.getnframes()), dtype="<i2")
        if self.pcm:
            audio = pcm.astype(np.int16)
        elif self.mels:
            from mlx_audio.data.audio.features import log_mel_spectrogram

            audio = log_mel_spectrogram(
                pcm.astype(np.float32) / 32768, SR, 1024, 480, filters=self.filters
            )
        else:
            audio = pcm.astype(np.float32) / 32768
        return audio, self.ids[i], np.ones(TOKENS, np.int32)


def add_channel(batch: tuple) -> tuple:
    mels, ids, mask = batch
    return mels[:, None], ids, mask


class Ahead:
    """Each pass over the loader taken on a background thread (``depth`` batches ahead), ``then``
    applied on the calling thread: what a transfer thread in the loader would do (torch's
    pin-memory thread). ``to_device``: the thread also copies each array on a stream of its own
    (a device-resident copy: the managed memory's pages migrate off the training stream)."""

    def __init__(self, loader, then, depth: int = 2, to_device: bool = False) -> None:
        self.loader = loader
        self.then = then
        self.depth = depth
        self.to_device = to_device
        self.stop = threading.Event()

    def _run(self, out: queue.Queue) -> None:
        import mlx.core as mx

        stream = mx.new_stream(mx.default_device()) if self.to_device else None
        for batch in self.loader:
            if stream is not None:
                with mx.stream(stream):
                    batch = tuple(a + 0 for a in batch)
                    mx.eval(batch)
            while not self.stop.is_set():
                try:
                    out.put(batch, timeout=0.1)
                    break
                except queue.Full:
                    continue
            if self.stop.is_set():
                return
        out.put(None)

    def __iter__(self):
        out: queue.Queue = queue.Queue(self.depth)
        threading.Thread(target=self._run, args=(out,), daemon=True).start()
        while (batch := out.get()) is not None:
            for fn in self.then:
                batch = fn(batch)
            yield batch


class Timed:
    """The host time spent getting each batch (waiting for workers, copying into MLX)."""

    def __init__(self, data) -> None:
        self.data = data
        self.waits: list[float] = []

    def __iter__(self):
        it = iter(self.data)
        while True:
            start = time.perf_counter()
            try:
                batch = next(it)
            except StopIteration:
                return
            self.waits.append(time.perf_counter() - start)
            yield batch


def fit(data, steps: int, warmup: int) -> float:
    from clap_fit import fit_times

    per_step = fit_times(data, steps, warmup, "bf16-mixed")
    return 1000 * sum(per_step) / len(per_step)


VARIANTS = (
    "premade",
    "f32",
    "f32-thread",
    "f32-device",
    "f32-pin",
    "i16",
    "i16-thread",
    "i16-pin",
    "i16-prefetch",
    "i16-prefetch+copy",
    "i16-direct",
    "mel-workers",
)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--files", type=int, default=480)
    parser.add_argument("--workers", type=int, default=12)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument(
        "--variants", default=",".join(VARIANTS), help=f"comma-separated, of {VARIANTS}"
    )
    args = parser.parse_args()
    import mlx.core as mx

    import mlx_audio.models  # noqa: F401
    from mlx_audio.data import DataLoader, LogMel

    folder = tempfile.mkdtemp(prefix="clap-clips-")
    start = time.perf_counter()
    paths = write_clips(folder, args.files)
    print(f"wrote {len(paths)} clips in {time.perf_counter() - start:.1f} s", flush=True)
    log_mel = LogMel(SR, n_fft=1024, hop_length=480, n_mels=64, f_min=50, f_max=14_000)
    first = Clips(paths[:B])
    premade = add_channel(
        log_mel(
            (
                mx.array(np.stack([first[i][0] for i in range(B)])),
                mx.array(first.ids[:B]),
                mx.ones((B, TOKENS), dtype=mx.int32),
            )
        )
    )
    mx.eval(premade)
    print("batch shapes", [tuple(a.shape) for a in premade], flush=True)
    base = None
    for variant in args.variants.split(","):
        if variant == "premade":
            base = fit([premade] * (args.warmup + args.steps), args.steps, args.warmup)
            print(f"pre-made batches: {base:.1f} ms/step", flush=True)
            continue
        pcm = variant.startswith("i16")
        mels = variant == "mel-workers"
        on_gpu = [add_channel] if mels else [log_mel, add_channel]  # LogMel scales int16 PCM itself
        threaded = variant.endswith(("thread", "device"))
        pinned = variant.endswith(("pin", "prefetch", "prefetch+copy", "direct"))
        mode = (
            variant.split("-", 1)[1] if variant.endswith(("prefetch", "copy", "direct")) else "copy"
        )
        os.environ["MLX_AUDIO_PIN_MEMORY"] = mode  # how the transfer thread moves a batch
        loader = DataLoader(
            Clips(paths, pcm=pcm, mels=mels),
            batch_size=B,
            shuffle=True,
            drop_last=True,
            num_workers=args.workers,
            persistent_workers=True,
            prefetch_factor=4,
            pin_memory=pinned,
            mlx_transforms=None if threaded else on_gpu,
        )
        data = Timed(
            Ahead(loader, on_gpu, to_device=variant.endswith("device")) if threaded else loader
        )
        ours = fit(data, args.steps, args.warmup)
        if threaded:
            data.data.stop.set()
        ratio = f" ({ours / base:.3f}x pre-made)" if base else ""
        wait = 1000 * sum(data.waits[args.warmup :]) / max(1, len(data.waits[args.warmup :]))
        print(
            f"{variant}: {args.files} WAV files, {args.workers} workers: {ours:.1f} ms/step{ratio}; "
            f"host time getting a batch {wait:.1f} ms",
            flush=True,
        )


if __name__ == "__main__":
    main()
