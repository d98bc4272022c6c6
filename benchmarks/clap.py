"""A CLAP train step at htsat-unfused size: ours (MLX, compiled) vs transformers' ClapModel (torch CPU).

Same configuration on both sides (laion/clap-htsat-unfused: 153.5 M parameters), the tutorial's
fine-tuning setup: text encoder frozen, symmetric InfoNCE loss, AdamW, B=8, 64 x 1001 log-mels,
64 tokens. Reports median ms/step over ``--steps`` steps after ``--warmup`` (compilation)
and the ratio (torch time / MLX time: above 1 means MLX is faster). Run in the anchor venv
(``make anchor``): ``.venv-anchor/bin/python benchmarks/clap.py``.
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


def mlx_side(steps: int, warmup: int) -> float:
    mels, ids, mask = (mx.array(a) for a in inputs())
    model = CLAP()
    model.text_encoder.freeze()
    model.train()
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

    step_fn = mx.compile(raw_step, inputs=state, outputs=state)

    def step():
        loss = step_fn()
        mx.eval(state, loss)

    return statistics.median(time_steps(step, steps, warmup))


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
    args = parser.parse_args()
    ours = mlx_side(args.steps, args.warmup)
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
    print(f"| mlx_audio CLAP (MLX, compiled) | {ours * 1000:,.0f} | {theirs / ours:.2f}x |")


if __name__ == "__main__":
    main()
