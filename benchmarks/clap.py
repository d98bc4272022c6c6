"""A CLAP train step at htsat-unfused size: ours (MLX, compiled) vs transformers' ClapModel (torch CPU).

Same configuration on both sides (laion/clap-htsat-unfused: 153.5 M parameters), the tutorial's
fine-tuning setup: text encoder frozen, symmetric InfoNCE loss, AdamW, B=8, 64 x 1001 log-mels,
64 tokens. Reports median ms/step over ``--steps`` steps after ``--warmup`` (compilation)
and the ratio (torch time / MLX time: above 1 means MLX is faster). Run in the anchor venv
(``make anchor``): ``.venv-anchor/bin/python benchmarks/clap.py``.

``--formulations reference,windows`` times our step with the Swin stages in transformers'
formulation (swin_reference.py) and in the window-major layout (NOTE [window-major layout]),
their steps interleaved in one process (the same load for both), each with its peak MLX
memory above what is resident before the step; ``windows/ckpt-stage`` and
``windows/ckpt-block`` add gradient checkpointing per Swin stage or block; ``--batch``;
``--no-torch`` skips transformers.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim
import numpy as np

import mlx_audio.models  # noqa: F401  (first: OpenBLAS before mlx.core on Linux)
from mlx_audio.models.clap import CLAP

B, FRAMES, TOKENS = 8, 1001, 64
FORMULATIONS = ("windows",)


def inputs(seed: int = 0):
    rng = np.random.default_rng(seed)
    mels = rng.standard_normal((B, 1, 64, FRAMES)).astype(np.float32)
    ids = rng.integers(3, 50265, (B, TOKENS)).astype(np.int64)
    ids[:, 0] = 0
    return mels, ids, np.ones((B, TOKENS), dtype=np.int64)


def time_steps(step, steps: int, warmup: int) -> list[float]:
    times = []
    for i in range(warmup + steps):
        start = time.perf_counter()
        step()
        if i >= warmup:
            times.append(time.perf_counter() - start)
    return times


def mlx_step(variant: str):
    """Our compiled train step with the Swin stages in ``formulation[/ckpt-stage|block]``."""
    from mlx_audio.models.clap.audio import HTSATEncoder

    formulation, _, checkpointing = variant.partition("/ckpt-")
    mels, ids, mask = (mx.array(a) for a in inputs())
    HTSATEncoder.formulation = formulation
    mx.random.seed(0)
    model = CLAP()
    model.text_encoder.freeze()
    model.train()
    if checkpointing:
        model.enable_checkpointing(checkpointing)
    optimizer = optim.AdamW(learning_rate=1e-5, weight_decay=0.01)
    labels = mx.arange(B)

    def loss_fn(model):
        out = model(mels, ids, mask)
        return (
            mx.mean(nn.losses.cross_entropy(out["logits_per_audio"], labels))
            + mx.mean(nn.losses.cross_entropy(out["logits_per_text"], labels))
        ) / 2

    value_and_grad = nn.value_and_grad(model, loss_fn)
    state = [model.state, optimizer.state, mx.random.state]

    def raw_step():
        loss, grads = value_and_grad(model)
        optimizer.update(model, grads)
        return loss

    compiled = mx.compile(raw_step, inputs=state, outputs=state)

    def step():
        HTSATEncoder.formulation = formulation  # read when the step is traced
        loss = compiled()
        mx.eval(state, loss)

    return step


def mlx_side(steps: int, warmup: int) -> dict[str, tuple[float, float]]:
    """{formulation: (median seconds per step, peak MiB above the resident arrays)}, the
    formulations' steps interleaved."""
    runs = {f: mlx_step(f) for f in FORMULATIONS}
    times: dict[str, list[float]] = {f: [] for f in runs}
    peaks = dict.fromkeys(runs, 0.0)
    for i in range(warmup + steps):
        for f, step in runs.items():
            base = mx.get_active_memory()
            mx.reset_peak_memory()
            start = time.perf_counter()
            step()
            if i >= warmup:
                times[f].append(time.perf_counter() - start)
                peaks[f] = max(peaks[f], (mx.get_peak_memory() - base) / 2**20)
    return {f: (statistics.median(times[f]), peaks[f]) for f in runs}


def torch_side(steps: int, warmup: int) -> float:
    import torch
    from transformers import ClapConfig, ClapModel

    device = "cuda" if torch.cuda.is_available() else "cpu"
    mels, ids, mask = inputs()
    features = (
        torch.tensor(mels).transpose(2, 3).contiguous().to(device)
    )  # HF's (B, 1, frames, n_mels)
    ids_t, mask_t = torch.tensor(ids).to(device), torch.tensor(mask).to(device)
    model = ClapModel(ClapConfig()).to(device)
    for p in model.text_model.parameters():
        p.requires_grad_(False)
    model.train()
    optimizer = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad], lr=1e-5, weight_decay=0.01
    )
    labels = torch.arange(B, device=device)

    def step():
        optimizer.zero_grad(set_to_none=True)
        out = model(input_features=features, input_ids=ids_t, attention_mask=mask_t)
        loss = (
            torch.nn.functional.cross_entropy(out.logits_per_audio, labels)
            + torch.nn.functional.cross_entropy(out.logits_per_text, labels)
        ) / 2
        loss.backward()
        optimizer.step()
        if device == "cuda":
            torch.cuda.synchronize()

    return statistics.median(time_steps(step, steps, warmup))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--batch", type=int, default=B)
    parser.add_argument("--formulations", default=",".join(FORMULATIONS))
    parser.add_argument("--no-torch", action="store_true")
    args = parser.parse_args()
    globals().update(B=args.batch, FORMULATIONS=tuple(args.formulations.split(",")))
    ours = mlx_side(args.steps, args.warmup)
    if args.no_torch:
        print(f"B={B}, median of {args.steps} after {args.warmup}, steps interleaved\n")
        print("| our Swin formulation | ms/step | peak MiB above resident | vs first |")
        print("|---|---:|---:|---:|")
        first = next(iter(ours.values()))[0]
        for f, (sec, peak) in ours.items():
            print(f"| {f} | {sec * 1000:,.0f} | {peak:,.0f} | {first / sec:.2f}x |")
        return
    theirs = torch_side(args.steps, args.warmup)
    import torch

    print(
        f"\nmachine: {platform.machine()}, {os.cpu_count()} cores, mlx {mx.__version__} ({mx.default_device()}), torch {torch.__version__}"
    )
    print(
        f"CLAP htsat-unfused train step, text frozen, B={B}, 64x{FRAMES} mels, {TOKENS} tokens; median of {args.steps} after {args.warmup} warm-up\n"
    )
    print("| implementation | ms/step | speed vs transformers |")
    print("|---|---:|---:|")
    where = "CUDA" if torch.cuda.is_available() else "CPU"
    print(f"| transformers ClapModel (torch {where}, fp32) | {theirs * 1000:,.0f} | 1.00x |")
    for f, (sec, _) in ours.items():
        name = "mlx_audio CLAP (MLX, compiled)" + ("" if f == "windows" else f", Swin {f}")
        print(f"| {name} | {sec * 1000:,.0f} | {theirs / sec:.2f}x |")


if __name__ == "__main__":
    main()
