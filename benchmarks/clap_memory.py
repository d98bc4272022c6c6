"""Activation memory of CLAP's audio encoder (forward + backward), ours against transformers'.

Each measurement runs in a fresh process at B=4 and B=8 (64 x 1001 mels); the difference over 4
is the memory per sample. Ours: MLX's peak above the weights (``mx.get_peak_memory``), for the
step uncompiled / compiled (what ``Trainer.fit`` runs) and with CLAP's GELU as on the CPU (the
rational form) or as off the CPU (``nn.gelu``; NOTE [gelu off the CPU]). transformers': the peak
RSS growth of the process (torch's CPU allocator returns large blocks to the system).
Usage (the anchor venv has both): ``.venv-anchor/bin/python benchmarks/clap_memory.py``.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys

import numpy as np

VARIANTS = [
    "ours/eager/rational",
    "ours/compiled/rational",
    "ours/compiled/nn.gelu",
    "ours/eager/nn.gelu",
    "hf/eager",
]


def measure(variant: str, batch: int) -> float:
    """MiB used by one forward + backward at ``batch``."""
    mels = np.random.default_rng(0).standard_normal((batch, 1, 1001, 64)).astype(np.float32)
    if variant.startswith("hf"):
        import torch
        from transformers import ClapConfig, ClapModel

        torch.set_num_threads(2)
        audio = ClapModel(ClapConfig()).train().audio_model
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        audio(input_features=torch.tensor(mels)).pooler_output.sum().backward()
        return (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    import mlx.core as mx
    import mlx.nn as nn

    import mlx_audio.models  # noqa: F401
    from mlx_audio.models.clap import CLAP, activations

    if variant.endswith("nn.gelu"):
        activations._on_cpu = lambda: False  # the path taken on CUDA and Metal
    model = CLAP()
    model.train()
    audio = model.audio_encoder
    x = mx.array(mels)
    grad = nn.value_and_grad(audio, lambda m, x: m(x).sum())
    step = (
        mx.compile(lambda: grad(audio, x)) if "/compiled/" in variant else (lambda: grad(audio, x))
    )
    mx.eval(model.parameters(), x, step())  # compiled: traced and run once
    base = mx.get_active_memory()
    mx.reset_peak_memory()
    mx.eval(step())
    return (mx.get_peak_memory() - base) / 2**20


def main() -> None:
    if len(sys.argv) == 3:
        print(json.dumps(measure(sys.argv[1], int(sys.argv[2]))))
        return
    print("| audio encoder fwd+bwd | B=4 MiB | B=8 MiB | per sample MiB |")
    print("|---|---:|---:|---:|")
    for variant in VARIANTS:
        small, large = (
            json.loads(
                subprocess.run(
                    [sys.executable, __file__, variant, str(b)],
                    capture_output=True,
                    text=True,
                    check=True,
                ).stdout.splitlines()[-1]
            )
            for b in (4, 8)
        )
        print(f"| {variant} | {small:.0f} | {large:.0f} | {(large - small) / 4:.0f} |", flush=True)


if __name__ == "__main__":
    main()
