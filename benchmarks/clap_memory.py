"""Activation memory of CLAP's audio encoder (forward + backward), ours against transformers'.

Each measurement runs in a fresh process at B=4 and B=8 (64 x 1001 mels); the difference over 4
is the memory per sample. Ours: MLX's peak above the weights (``mx.get_peak_memory``), for the
step uncompiled / compiled (what ``Trainer.fit`` runs) and with CLAP's GELU as on the CPU (the
rational form) or as off the CPU (``nn.gelu``; NOTE [gelu off the CPU]). transformers': the peak
RSS growth of the process (torch's CPU allocator returns large blocks to the system).
A fourth part names the Swin formulation or checkpointing: ``/reference`` (transformers'
pad/roll/partition per block: swin_reference.py; without it, NOTE [window-major layout]),
``/ckpt-stage`` or ``/ckpt-block`` (gradient checkpointing per Swin stage or block). Each
measurement also reports the median ms of ``--steps`` fwd+bwd after the first.
Usage (the anchor venv has both): ``.venv-anchor/bin/python benchmarks/clap_memory.py
[--variants V,V] [--batches 4,8] [--steps 3]``.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time

import numpy as np

VARIANTS = [
    "ours/eager/rational",
    "ours/compiled/rational",
    "ours/compiled/nn.gelu",
    "ours/eager/nn.gelu",
    "ours/compiled/rational/reference",
    "ours/compiled/nn.gelu/reference",
    "ours/compiled/rational/ckpt-stage",
    "ours/compiled/rational/ckpt-block",
    "hf/eager",
]


def measure(variant: str, batch: int, steps: int = 1) -> tuple[float, float]:
    """MiB used by one forward + backward at ``batch``, and its median ms over ``steps``."""
    mels = np.random.default_rng(0).standard_normal((batch, 1, 1001, 64)).astype(np.float32)
    if variant.startswith("hf"):
        import torch
        from transformers import ClapConfig, ClapModel

        torch.set_num_threads(2)
        audio = ClapModel(ClapConfig()).train().audio_model
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        start = time.perf_counter()
        audio(input_features=torch.tensor(mels)).pooler_output.sum().backward()
        ms = 1000 * (time.perf_counter() - start)
        return (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024, ms
    import mlx.core as mx
    import mlx.nn as nn

    import mlx_audio.models  # noqa: F401
    from mlx_audio.models.clap import CLAP, activations
    from mlx_audio.models.clap.audio import HTSATEncoder

    if "/nn.gelu" in variant:
        activations._on_cpu = lambda: False  # the path taken on CUDA and Metal
    if variant.endswith("/reference"):
        HTSATEncoder.formulation = "reference"
    model = CLAP()
    model.train()
    if "/ckpt-" in variant:
        model.enable_checkpointing(variant.rsplit("/ckpt-", 1)[1])
    audio = model.audio_encoder
    x = mx.array(mels)
    grad = nn.value_and_grad(audio, lambda m, x: m(x).sum())
    step = (
        mx.compile(lambda: grad(audio, x)) if "/compiled/" in variant else (lambda: grad(audio, x))
    )
    mx.eval(model.parameters(), x, step())  # compiled: traced and run once
    base = mx.get_active_memory()
    mx.reset_peak_memory()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        mx.eval(step())
        times.append(1000 * (time.perf_counter() - start))
    return (mx.get_peak_memory() - base) / 2**20, statistics.median(times)


def main() -> None:
    if len(sys.argv) in (3, 4) and not sys.argv[1].startswith("-"):
        steps = int(sys.argv[3]) if len(sys.argv) == 4 else 1
        print(json.dumps(measure(sys.argv[1], int(sys.argv[2]), steps)))
        return
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--batches", default="4,8")
    parser.add_argument("--steps", type=int, default=1)
    args = parser.parse_args()
    small_b, large_b = (int(b) for b in args.batches.split(","))
    print(
        f"| audio encoder fwd+bwd | B={small_b} MiB | B={large_b} MiB | per sample MiB "
        f"| B={small_b} ms | B={large_b} ms |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for variant in args.variants.split(","):
        (small, small_ms), (large, large_ms) = (
            json.loads(
                subprocess.run(
                    [sys.executable, __file__, variant, str(b), str(args.steps)],
                    capture_output=True,
                    text=True,
                    check=True,
                ).stdout.splitlines()[-1]
            )
            for b in (small_b, large_b)
        )
        per_sample = (large - small) / (large_b - small_b)
        print(
            f"| {variant} | {small:.0f} | {large:.0f} | {per_sample:.0f} | {small_ms:.0f} "
            f"| {large_ms:.0f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
