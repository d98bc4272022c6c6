"""Where a CLAP train step's time goes: ours (MLX, compiled) and transformers' (torch eager), per part.

B=32, 64 x 1001 mels, 64 tokens; median ms of ``--steps`` after warm-up, each part alone:
  audio fwd        HTSAT forward (no gradient)
  audio fwd+bwd    HTSAT forward and backward (gradient of the pooled output's sum)
  stage i fwd+bwd  one Swin stage, forward and backward, on its real input shape
  text fwd         the frozen RoBERTa forward
  adamw            AdamW's update of the audio encoder's parameters (ours only)
  audio fwd+bwd, checkpointing per stage   the same, Swin stages recomputed in the backward
``--dtype bfloat16`` runs ours in bf16 (weights and inputs); ``--formulation reference`` runs
our Swin stages in transformers' formulation (swin_reference.py) instead of the window-major
layout. Usage: ``python3 benchmarks/gpu/clap_profile.py [--side ours|hf]
[--dtype float32|bfloat16] [--formulation windows|reference]``.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

B, FRAMES, TOKENS = 32, 1001, 64


def timed(fn, sync, steps: int, warmup: int = 3) -> float:
    times = []
    for i in range(warmup + steps):
        start = time.perf_counter()
        fn()
        sync()
        if i >= warmup:
            times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def ours(steps: int, dtype: str, formulation: str = "windows") -> None:
    import mlx.core as mx
    import mlx.nn as nn
    import mlx.optimizers as optim
    from mlx.utils import tree_map

    import mlx_audio.models  # noqa: F401
    from mlx_audio.models.clap import CLAP, swin_reference
    from mlx_audio.models.clap.audio import HTSATEncoder

    HTSATEncoder.formulation = formulation
    model = CLAP()
    model.train()
    if dtype == "bfloat16":
        model.set_dtype(mx.bfloat16)
    rng = np.random.default_rng(0)
    mels = mx.array(rng.standard_normal((B, 1, FRAMES, 64)).astype(np.float32)).astype(
        getattr(mx, dtype)
    )
    ids = mx.array(rng.integers(3, 50265, (B, TOKENS)).astype(np.int32))
    mask = mx.ones((B, TOKENS), dtype=mx.int32)
    audio = model.audio_encoder
    sync = mx.synchronize

    def run(name: str, fn) -> None:
        compiled = mx.compile(fn)
        ms = timed(lambda: mx.eval(compiled()), sync, steps)
        print(f"ours {dtype} {formulation} | {name} | {ms:.2f} ms", flush=True)

    run("audio fwd", lambda: audio(mels))
    grad = nn.value_and_grad(audio, lambda m, x: m(x).sum())
    run("audio fwd+bwd", lambda: grad(audio, mels))
    audio.set_checkpointing("stage")
    run("audio fwd+bwd, checkpointing per stage", lambda: grad(audio, mels))
    audio.set_checkpointing(False)
    x = audio.patch_embed(audio.mel_to_image(audio.batch_norm(mels)), None)
    reference = formulation == "reference"
    x = x if reference else audio.layers[0].enter(x)  # the first stage's layout
    mx.eval(x)
    for i, stage in enumerate(audio.layers):

        def call(m, h, s=stage):
            return swin_reference.stage(s, h) if reference else m(h)

        stage_grad = nn.value_and_grad(stage, lambda m, h, c=call: c(m, h).astype(mx.float32).sum())
        run(f"stage {i} fwd+bwd {tuple(x.shape)}", lambda s=stage, g=stage_grad, h=x: g(s, h))
        x = call(stage, x)
        mx.eval(x)
    text = model.text_encoder
    run("text fwd", lambda: text(ids, mask))
    params = audio.trainable_parameters()
    grads = tree_map(lambda p: mx.ones_like(p) * 1e-3, params)
    optimizer = optim.AdamW(learning_rate=1e-5, weight_decay=0.01)
    optimizer.init(params)
    mx.eval(grads, optimizer.state)

    def update():
        optimizer.apply_gradients(grads, params)
        mx.eval(optimizer.state)

    print(
        f"ours {dtype} | adamw (audio params, uncompiled) | {timed(update, sync, steps):.2f} ms",
        flush=True,
    )
    print(f"ours {dtype} | peak | {mx.get_peak_memory() / 2**30:.1f} GiB", flush=True)


MOVES = ("Gather", "Scatter", "Concatenate", "SliceUpdate", "Pad", "Copy", "Reshape", "Transpose")


def kernels(batch: int) -> None:
    """Primitives of the compiled fwd+bwd graph (``mx.export_to_dot`` of its outputs: element-wise
    chains fused by ``mx.compile`` count once), for one shifted stage-0 Swin block and the whole
    audio encoder, in both formulations; the data-movement primitives listed apart."""
    import collections
    import re
    import tempfile

    import mlx.core as mx
    import mlx.nn as nn
    from mlx.utils import tree_flatten

    import mlx_audio.models  # noqa: F401
    from mlx_audio.models.clap import CLAP, swin_reference
    from mlx_audio.models.clap.audio import HTSATEncoder

    model = CLAP()
    model.train()
    audio = model.audio_encoder
    mels = mx.random.normal((batch, 1, FRAMES, 64))
    mx.eval(model.parameters(), mels)
    stage = audio.layers[0]
    block = stage.blocks[1]  # shifted
    raster = mx.random.normal((batch, 64 * 64, 96))

    def count(fn, *args) -> collections.Counter:
        out = mx.compile(fn)(*args)
        arrays = [a for _, a in tree_flatten(out)]
        with tempfile.NamedTemporaryFile("r", suffix=".dot") as f:
            mx.export_to_dot(f.name, *arrays)
            return collections.Counter(re.findall(r'label ="?([A-Za-z]+)', f.read()))

    def block_windows(m, x):  # the move into the shifted layout, the per-stage mask, the block
        return m(stage._moves[0](x), stage.masks()[1]).sum()

    cases = {
        "block, reference": (
            nn.value_and_grad(block, lambda m, x: swin_reference.block(m, x, (64, 64)).sum()),
            raster,
        ),
        "block, windows": (nn.value_and_grad(block, block_windows), stage.enter(raster)),
    }
    print("| compiled fwd+bwd | primitives | " + " | ".join(MOVES) + " |")
    print("|---|---:|" + "---:|" * len(MOVES))
    for name, (grad, x) in cases.items():
        ops = count(lambda x, g=grad: g(block, x), x)
        row = " | ".join(str(ops[k]) for k in MOVES)
        print(f"| {name} | {sum(ops.values())} | {row} |", flush=True)
    for formulation in ("reference", "windows"):
        HTSATEncoder.formulation = formulation
        grad = nn.value_and_grad(audio, lambda m, x: m(x).sum())
        ops = count(lambda x, g=grad: g(audio, x), mels)
        row = " | ".join(str(ops[k]) for k in MOVES)
        print(f"| audio encoder, {formulation} | {sum(ops.values())} | {row} |", flush=True)


def hf(steps: int, dtype: str) -> None:
    import torch
    from transformers import ClapConfig, ClapModel

    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    model = ClapModel(ClapConfig()).cuda().train()
    rng = np.random.default_rng(0)
    feats = torch.tensor(rng.standard_normal((B, 1, FRAMES, 64)).astype(np.float32)).cuda()
    ids = torch.tensor(rng.integers(3, 50265, (B, TOKENS))).cuda()
    mask = torch.ones((B, TOKENS), dtype=torch.long).cuda()
    sync = torch.cuda.synchronize
    audio = model.audio_model
    auto = dtype == "bfloat16"

    def run(name: str, fn) -> None:
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=auto):
            print(f"hf {dtype} | {name} | {timed(fn, sync, steps):.2f} ms", flush=True)

    with torch.no_grad():
        run("audio fwd", lambda: audio(input_features=feats))
    run("audio fwd+bwd", lambda: audio(input_features=feats).pooler_output.float().sum().backward())
    with torch.no_grad():
        run("text fwd", lambda: model.text_model(input_ids=ids, attention_mask=mask))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--side", choices=["ours", "hf", "both"], default="both")
    parser.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32")
    parser.add_argument("--formulation", choices=["windows", "reference"], default="windows")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--batch", type=int, default=B)
    parser.add_argument(
        "--kernels", action="store_true", help="count the compiled graphs' primitives (any device)"
    )
    args = parser.parse_args()
    globals()["B"] = args.batch
    if args.kernels:
        kernels(args.batch)
        return
    if args.side in ("ours", "both"):
        ours(args.steps, args.dtype, args.formulation)
    if args.side in ("hf", "both"):
        hf(args.steps, args.dtype)


if __name__ == "__main__":
    main()
