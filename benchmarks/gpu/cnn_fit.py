"""The tutorial CNN trained for one epoch of in-memory numpy data, side by side in one run.

Sides (AdamW lr 1e-3 wd 0.01, gradient clipping at norm 1.0, shuffled batches, one epoch):
  ours bare      Trainer.fit, no progress bar / logger / checkpoint, our DataLoader (0 workers)
  ours defaults  Trainer.fit with its defaults: progress bar, CSV logger, ModelCheckpoint
  hand loop      a hand-written mx.compile step (mlx-lm style, mx.eval each step), fed the same
  lightning      Lightning 2.x Trainer.fit, torch DataLoader over CPU tensors (pin_memory), TF32
  lightning+compile  the same with torch.compile(model)
and, with the data already on the device (issue 30, NOTE [device-resident data]):
  hand loop (device data)      the hand-written step fed by one mx.take per array of a permutation
                               uploaded once per epoch (nothing copied from the host per step)
  ours bare / defaults (device data)  Trainer.fit over ArrayDataset(mx arrays) (DataLoader, seed 0)
  lightning (GPU tensors)      Lightning over CUDA tensors, each batch one index op on the GPU
                               (a batch sampler feeding a dataset that indexes a whole batch)

Every side first runs once over 60 batches (plus the epoch's short last batch) so kernels and
compiled graphs exist; then the timed epoch. Reported per side: whole-fit samples/s (set-up
included) and steady samples/s (from the end of batch 50 to the end of the epoch). Run with the anchor installed
(torch + lightning) for the Lightning rows; without, they are skipped.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from functools import partial

import mlx.core as mx  # noqa: E402
import mlx.nn as nn  # noqa: E402
import mlx.optimizers as optim  # noqa: E402
import numpy as np

import mlx_audio.train  # noqa: F401  (first: OpenBLAS before mlx.core on Linux)
from mlx_audio.data import ArrayDataset, DataLoader  # noqa: E402
from mlx_audio.train import Trainer  # noqa: E402
from mlx_audio.train.callbacks import Callback  # noqa: E402

sys.path.insert(
    0, os.path.join(os.path.dirname(__file__), "..", "..", "packages", "mlx-audio-train", "tests")
)
from cnn_testing import MNISTLikeCNN  # noqa: E402

WARM = 50  # batches before the steady-state clock starts


class FixedLR(MNISTLikeCNN):
    def configure_optimizers(self):
        return optim.AdamW(learning_rate=1e-3, weight_decay=0.01)


class Clock(Callback):
    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        if batch_idx == WARM - 1:
            mx.eval(module.parameters())
            self.warm = time.perf_counter()

    def on_train_end(self, trainer, module):
        mx.eval(module.parameters())
        self.end = time.perf_counter()


def data(n: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.standard_normal((n, 28, 28), dtype=np.float32), rng.integers(0, 10, n).astype(
        np.int32
    )


def ours(x, y, batch: int, defaults: bool) -> tuple[float, float]:
    """x, y numpy arrays (batched on the host) or mx.arrays (device-resident: batched there)."""
    mx.random.seed(0)
    clock = Clock()
    root = tempfile.mkdtemp(prefix="cnn_fit_")
    kwargs = (
        {}
        if defaults
        else {"logger": False, "enable_progress_bar": False, "enable_checkpointing": False}
    )
    trainer = Trainer(
        max_epochs=1,
        gradient_clip_val=1.0,
        num_sanity_val_steps=0,
        callbacks=[clock],
        default_root_dir=root,
        **kwargs,
    )
    loader = DataLoader(ArrayDataset(x, y), batch_size=batch, shuffle=True, seed=0)
    start = time.perf_counter()
    trainer.fit(FixedLR(), loader)
    return _rates(len(x), batch, start, clock.warm, clock.end)


def hand_device(x, y, batch: int) -> tuple[float, float]:
    """The hand-written step over device-resident mx.arrays: the epoch's permutation goes to the
    device once; each step slices it there and gathers with one mx.take per array."""
    mx.random.seed(0)
    start = time.perf_counter()
    model = FixedLR()
    optimizer = optim.AdamW(learning_rate=1e-3, weight_decay=0.01)

    def loss_fn(model, xb, yb):
        return mx.mean(nn.losses.cross_entropy(model(xb), yb))

    value_and_grad = nn.value_and_grad(model, loss_fn)
    state = [model.state, optimizer.state, mx.random.state]

    @partial(mx.compile, inputs=state, outputs=state)
    def step(xb, yb):
        loss, grads = value_and_grad(model, xb, yb)
        grads, _ = optim.clip_grad_norm(grads, 1.0)
        optimizer.update(model, grads)
        return loss

    n = x.shape[0]
    order = mx.array(np.random.default_rng(0).permutation(n).astype(np.int32))
    warm = start
    for b, i in enumerate(range(0, n, batch)):
        idx = order[i : i + batch]
        loss = step(mx.take(x, idx, axis=0), mx.take(y, idx, axis=0))
        mx.eval(state, loss)
        if b == WARM - 1:
            warm = time.perf_counter()
    return _rates(n, batch, start, warm, time.perf_counter())


def hand(x, y, batch: int) -> tuple[float, float]:
    mx.random.seed(0)
    start = time.perf_counter()
    model = FixedLR()
    optimizer = optim.AdamW(learning_rate=1e-3, weight_decay=0.01)

    def loss_fn(model, xb, yb):
        return mx.mean(nn.losses.cross_entropy(model(xb), yb))

    value_and_grad = nn.value_and_grad(model, loss_fn)
    state = [model.state, optimizer.state, mx.random.state]

    @partial(mx.compile, inputs=state, outputs=state)
    def step(xb, yb):
        loss, grads = value_and_grad(model, xb, yb)
        grads, _ = optim.clip_grad_norm(grads, 1.0)
        optimizer.update(model, grads)
        return loss

    order = np.random.default_rng(0).permutation(len(x))
    warm = start
    for b, i in enumerate(range(0, len(x), batch)):
        idx = order[i : i + batch]
        loss = step(mx.array(x[idx]), mx.array(y[idx]))
        mx.eval(state, loss)
        if b == WARM - 1:
            warm = time.perf_counter()
    return _rates(len(x), batch, start, warm, time.perf_counter())


def with_lightning(
    x, y, batch: int, compiled: bool, on_gpu: bool = False
) -> tuple[float, float] | None:
    try:
        import lightning as L
        import torch
        from torch import nn as tnn
    except ImportError:
        return None
    torch.set_float32_matmul_precision("high")
    torch.manual_seed(0)
    cuda = torch.cuda.is_available()  # (on the CPU: a smoke test of this script only)
    device = "cuda" if cuda else "cpu"
    sync = torch.cuda.synchronize if cuda else (lambda: None)

    class CNN(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.net = tnn.Sequential(
                tnn.Conv2d(1, 32, 3, padding=1),
                tnn.ReLU(),
                tnn.MaxPool2d(2),
                tnn.Conv2d(32, 64, 3, padding=1),
                tnn.ReLU(),
                tnn.MaxPool2d(2),
                tnn.Flatten(),
                tnn.Linear(64 * 7 * 7, 128),
                tnn.ReLU(),
                tnn.Linear(128, 10),
            )
            if compiled:
                self.net = torch.compile(self.net)

        def training_step(self, b, i):
            xb, yb = b
            return tnn.functional.cross_entropy(self.net(xb[:, None]), yb.long())

        def configure_optimizers(self):
            return torch.optim.AdamW(self.parameters(), lr=1e-3, weight_decay=0.01)

    class TorchClock(L.Callback):
        def on_train_batch_end(self, trainer, module, outputs, b, i):
            if i == WARM - 1:
                sync()
                self.warm = time.perf_counter()

        def on_train_end(self, trainer, module):
            sync()
            self.end = time.perf_counter()

    clock = TorchClock()
    if on_gpu:  # the data on the GPU, each batch one index op there (torch's fastest feed)

        class Batches(torch.utils.data.Dataset):
            def __init__(self):
                self.x, self.y = torch.from_numpy(x).to(device), torch.from_numpy(y).to(device)

            def __len__(self):
                return len(self.x)

            def __getitem__(self, idx):
                idx = torch.as_tensor(idx, device=device)
                return self.x[idx], self.y[idx]

        sampler = torch.utils.data.BatchSampler(
            torch.utils.data.RandomSampler(range(len(x))), batch, drop_last=False
        )
        loader = torch.utils.data.DataLoader(Batches(), batch_size=None, sampler=sampler)
    else:
        dataset = torch.utils.data.TensorDataset(torch.from_numpy(x), torch.from_numpy(y))
        loader = torch.utils.data.DataLoader(
            dataset, batch_size=batch, shuffle=True, pin_memory=cuda
        )
    trainer = L.Trainer(
        max_epochs=1,
        accelerator="gpu" if cuda else "cpu",
        devices=1,
        gradient_clip_val=1.0,
        logger=False,
        enable_progress_bar=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        callbacks=[clock],
    )
    start = time.perf_counter()
    trainer.fit(CNN(), loader)
    return _rates(len(x), batch, start, clock.warm, clock.end)


def _rates(n: int, batch: int, start: float, warm: float, end: float) -> tuple[float, float]:
    steady = (n - WARM * batch) / (end - warm)
    return n / (end - start), steady


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--samples", type=int, default=60_000)
    parser.add_argument("--batch", type=int, nargs="+", default=[64, 256])
    parser.add_argument("--no-lightning", action="store_true")
    args = parser.parse_args()
    x, y = data(args.samples)
    versions = f"mlx {mx.__version__}, device {mx.default_device()}"
    try:
        import lightning
        import torch

        versions += f", torch {torch.__version__}, lightning {lightning.__version__}"
    except ImportError:
        pass
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, {versions}"
    )
    print(f"tutorial CNN, one epoch of {args.samples} in-memory samples, AdamW, clip 1.0\n")
    print("| B | side | whole fit samples/s | steady samples/s |")
    print("|---:|---|---:|---:|")
    xd, yd = mx.array(x), mx.array(y)  # the device-resident copies (NOTE [device-resident data])
    mx.eval(xd, yd)
    for batch in args.batch:
        # warm-up: every side once over a slice with the same batch shapes (MLX's CUDA kernels are
        # compiled at first use, torch.compile's graphs too), so the timed runs compare steady code
        small = slice(0, 60 * batch + len(x) % batch)
        sides = {
            "hand loop": lambda s, batch=batch: hand(x[s], y[s], batch),
            "ours bare": lambda s, batch=batch: ours(x[s], y[s], batch, defaults=False),
            "ours defaults": lambda s, batch=batch: ours(x[s], y[s], batch, defaults=True),
            "hand loop (device data)": lambda s, batch=batch: hand_device(xd[s], yd[s], batch),
            "ours bare (device data)": lambda s, batch=batch: ours(
                xd[s], yd[s], batch, defaults=False
            ),
            "ours defaults (device data)": lambda s, batch=batch: ours(
                xd[s], yd[s], batch, defaults=True
            ),
        }
        if not args.no_lightning:
            sides["lightning"] = lambda s, batch=batch: with_lightning(
                x[s], y[s], batch, compiled=False
            )
            sides["lightning+compile"] = lambda s, batch=batch: with_lightning(
                x[s], y[s], batch, compiled=True
            )
            sides["lightning (GPU tensors)"] = lambda s, batch=batch: with_lightning(
                x[s], y[s], batch, compiled=False, on_gpu=True
            )
        for side in sides.values():
            side(small)
        rows = {name: side(slice(None)) for name, side in sides.items()}
        for side, rates in rows.items():
            if rates is not None:
                print(f"| {batch} | {side} | {rates[0]:,.0f} | {rates[1]:,.0f} |", flush=True)
        best_lightning = max(
            (r[1] for k, r in rows.items() if k.startswith("lightning") and r), default=None
        )
        bare = rows["ours bare"][1]
        summary = f"B={batch}: steady ours bare / hand loop {bare / rows['hand loop'][1]:.2f}x, defaults / bare {rows['ours defaults'][1] / bare:.2f}x"
        if best_lightning:
            summary += f", ours bare / best Lightning {bare / best_lightning:.2f}x"
        print(summary, flush=True)
        hand_d, bare_d, defaults_d = (
            rows[k][1]
            for k in (
                "hand loop (device data)",
                "ours bare (device data)",
                "ours defaults (device data)",
            )
        )
        summary = (
            f"B={batch} device data (steady): defaults / hand {defaults_d / hand_d:.2f}x (target 0.9), "
            f"bare / hand {bare_d / hand_d:.2f}x (target 0.95)"
        )
        if best_lightning:
            summary += (
                f", defaults / best Lightning {defaults_d / best_lightning:.2f}x (target 2.3), "
                f"bare / best Lightning {bare_d / best_lightning:.2f}x"
            )
        print(summary, flush=True)


if __name__ == "__main__":
    main()
