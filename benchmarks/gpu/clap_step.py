"""CLAP htsat-unfused train step on one GPU: ours (MLX) against transformers' ClapModel (torch).

The issue's setup: text encoder frozen, symmetric InfoNCE loss, AdamW, B=32, 64 x 1001 log-mels,
64 tokens, batches already on the device. Every variant runs in its own process (clean peak
memory) and reports the median ms/step over ``--steps`` after ``--warmup`` steps:

  ours/loop-32       a hand-written mx.compile step, float32 (TF32 matmuls: MLX's default)
  ours/fit-32        Trainer.fit, precision="32"
  ours/fit-bf16      Trainer.fit, precision="bf16-mixed" (fp32 master weights and AdamW state)
  ours/fit-bf16-text the same with the frozen text encoder's weights cast to bfloat16 by the
                     user (autocast computes it in bf16 too)
  ours/fit-32-ckpt, ours/fit-bf16-ckpt  with gradient checkpointing of the Swin blocks
  hf/eager-32        ClapModel, float32 with TF32 matmuls/convolutions
  hf/compile-32      the same under torch.compile
  hf/eager-bf16      bf16 autocast
  hf/compile-bf16    bf16 autocast under torch.compile

  ours/fit-32-ckpt-stage, ours/fit-bf16-ckpt-stage  checkpointing per Swin stage
                     (transformers' gradient_checkpointing_enable() granularity)
  ours/loop-32-explicit  loop-32 with the window attention written out (softmax(q k^T + b) v)
                     instead of mx.fast.scaled_dot_product_attention
  ours/loop-32-reference, ours/fit-bf16-reference  the Swin stages in transformers' formulation
                     (pad/roll/partition/reverse per block: swin_reference.py) instead of the
                     window-major layout (NOTE [window-major layout]): the before/after pair
Since the frozen-parameter rule (NOTE [bf16-mixed casts frozen arrays for the compute]),
fit-bf16 computes the frozen text encoder in bf16 by itself: fit-bf16-text measures the same.
Usage: ``python3 benchmarks/gpu/clap_step.py`` (all variants, a markdown table), or one variant
with ``--variant ours/fit-bf16 --json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

import numpy as np

B, FRAMES, TOKENS = 32, 1001, 64
VARIANTS = [
    "ours/loop-32-explicit",
    "ours/loop-32-reference",
    "ours/loop-32",
    "ours/fit-32",
    "ours/fit-bf16",
    "ours/fit-bf16-text",
    "ours/fit-32-ckpt",
    "ours/fit-bf16-ckpt",
    "ours/fit-32-ckpt-stage",
    "ours/fit-bf16-ckpt-stage",
    "ours/fit-bf16-reference",
    "hf/eager-32",
    "hf/compile-32",
    "hf/eager-bf16",
    "hf/compile-bf16",
]


def inputs(batch: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    mels = rng.standard_normal((batch, 1, 64, FRAMES)).astype(
        np.float32
    )  # ours: (B, 1, mels, frames)
    ids = rng.integers(3, 50265, (batch, TOKENS)).astype(np.int32)
    ids[:, 0] = 0
    return mels, ids, np.ones((batch, TOKENS), dtype=np.int32)


def median_ms(times: list[float]) -> float:
    return 1000 * statistics.median(times)


# -------------------------------------------------------------------------------------- ours


def ours(variant: str, batch: int, steps: int, warmup: int) -> dict:
    import mlx.core as mx
    import mlx.nn as nn
    import mlx.optimizers as optim

    import mlx_audio.models  # noqa: F401
    from mlx_audio.models.clap import CLAP
    from mlx_audio.models.clap.audio import HTSATEncoder
    from mlx_audio.models.clap.swin import SelfAttention

    SelfAttention.fused = not variant.endswith("explicit")
    if variant.endswith("-reference"):
        HTSATEncoder.formulation = "reference"
    variant = variant.removesuffix("-explicit").removesuffix("-reference")
    mx.random.seed(0)
    mels, ids, mask = (mx.array(a) for a in inputs(batch))
    labels = mx.arange(batch)

    def contrastive(model: CLAP, mels: mx.array, ids: mx.array, mask: mx.array) -> mx.array:
        out = model(mels, ids, mask)
        return (
            mx.mean(nn.losses.cross_entropy(out["logits_per_audio"], labels))
            + mx.mean(nn.losses.cross_entropy(out["logits_per_text"], labels))
        ) / 2

    if variant == "ours/loop-32":
        model = CLAP()
        model.text_encoder.freeze()
        model.train()
        optimizer = optim.AdamW(learning_rate=1e-5, weight_decay=0.01)
        value_and_grad = nn.value_and_grad(model, contrastive)
        state = [model.state, optimizer.state, mx.random.state]

        def raw_step() -> mx.array:
            loss, grads = value_and_grad(model, mels, ids, mask)
            optimizer.update(model, grads)
            return loss

        step = mx.compile(raw_step, inputs=state, outputs=state)
        times = []
        for i in range(warmup + steps):
            start = time.perf_counter()
            loss = step()
            mx.eval(state, loss)
            if i >= warmup:
                times.append(time.perf_counter() - start)
        return {
            "ms": median_ms(times),
            "peak_gib": mx.get_peak_memory() / 2**30,
            "loss": loss.item(),
        }

    from clap_fit import fit_times

    precision = "bf16-mixed" if "bf16" in variant else "32"
    per_step = fit_times(
        [(mels, ids, mask)] * (warmup + steps),
        steps,
        warmup,
        precision,
        text_bf16=variant.endswith("-text"),
        checkpointing="stage" if variant.endswith("-ckpt-stage") else variant.endswith("-ckpt"),
    )
    return {
        "ms": 1000 * sum(per_step) / len(per_step),
        "median_ms": median_ms(per_step),
        "peak_gib": mx.get_peak_memory() / 2**30,
    }


# -------------------------------------------------------------------------------------- torch


def hf(variant: str, batch: int, steps: int, warmup: int) -> dict:
    import torch
    from transformers import ClapConfig, ClapModel

    torch.manual_seed(0)
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    torch.set_float32_matmul_precision("high")
    mels, ids, mask = inputs(batch)
    features = torch.tensor(mels).transpose(2, 3).contiguous().cuda()  # HF's (B, 1, frames, mels)
    ids_t, mask_t = torch.tensor(ids).long().cuda(), torch.tensor(mask).long().cuda()
    model = ClapModel(ClapConfig()).cuda()
    for p in model.text_model.parameters():
        p.requires_grad_(False)
    model.train()
    optimizer = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad], lr=1e-5, weight_decay=0.01
    )
    labels = torch.arange(batch, device="cuda")
    bf16 = variant.endswith("bf16")

    def loss_fn() -> torch.Tensor:
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=bf16):
            out = model(input_features=features, input_ids=ids_t, attention_mask=mask_t)
            return (
                torch.nn.functional.cross_entropy(out.logits_per_audio.float(), labels)
                + torch.nn.functional.cross_entropy(out.logits_per_text.float(), labels)
            ) / 2

    forward = torch.compile(loss_fn) if "compile" in variant else loss_fn
    times = []
    for i in range(warmup + steps):
        torch.cuda.synchronize()
        start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        loss = forward()
        loss.backward()
        optimizer.step()
        torch.cuda.synchronize()
        if i >= warmup:
            times.append(time.perf_counter() - start)
    return {
        "ms": median_ms(times),
        "peak_gib": torch.cuda.max_memory_allocated() / 2**30,
        "loss": loss.item(),
        "torch": torch.__version__,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--variant", choices=VARIANTS)
    parser.add_argument("--batch", type=int, default=B)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument(
        "--only", default="", help="comma-separated prefixes of the variants to run"
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.variant:
        run = ours if args.variant.startswith("ours") else hf
        result = run(args.variant, args.batch, args.steps, args.warmup)
        print(json.dumps(result) if args.json else result)
        return
    rows = {}
    for variant in VARIANTS:
        if args.only and not any(variant.startswith(p) for p in args.only.split(",")):
            continue
        cmd = [
            sys.executable,
            __file__,
            "--variant",
            variant,
            "--batch",
            str(args.batch),
            "--steps",
            str(args.steps),
            "--warmup",
            str(args.warmup),
            "--json",
        ]
        done = subprocess.run(cmd, capture_output=True, text=True)
        lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
        rows[variant] = (
            json.loads(lines[-1]) if lines else {"error": done.stderr.strip().splitlines()[-3:]}
        )
        print(variant, rows[variant], flush=True)
    best = min((r["ms"] for v, r in rows.items() if v.startswith("hf") and "ms" in r), default=None)
    print(
        f"\nCLAP htsat-unfused train step, text frozen, AdamW, B={args.batch}, 64x{FRAMES} mels, {TOKENS} tokens; "
        f"{args.steps} steps after {args.warmup}\n"
    )
    print("| variant | ms/step | samples/s | peak GiB | vs HF's best |")
    print("|---|---:|---:|---:|---:|")
    for variant, r in rows.items():
        if "ms" not in r:
            print(f"| {variant} | error: {r['error']} | | | |")
            continue
        ratio = f"{best / r['ms']:.2f}x" if best else "-"
        print(
            f"| {variant} | {r['ms']:.1f} | {args.batch * 1000 / r['ms']:,.0f} | {r['peak_gib']:.1f} | {ratio} |"
        )


if __name__ == "__main__":
    main()
