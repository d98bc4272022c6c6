"""The cost of ``EMAWeightAveraging`` per optimizer step: one update of the average (what the
callback runs after each step) timed alone, host time to queue it and the total with the
device, on an 85k-parameter MLP (``--width`` changes it).

    .venv/bin/python benchmarks/ema_update.py [--updates 2000] [--width 256]
"""

from __future__ import annotations

import argparse
import time

import mlx.core as mx
import mlx.nn as nn

import mlx_audio.train  # noqa: F401  (first: OpenBLAS before mlx.core on Linux)
from mlx_audio.train import TrainModule
from mlx_audio.train.callbacks import EMAWeightAveraging


class MLP(TrainModule):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(64, width),
            nn.ReLU(),
            nn.Linear(width, width),
            nn.ReLU(),
            nn.Linear(width, 10),
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--updates", type=int, default=2000)
    parser.add_argument("--width", type=int, default=256)
    args = parser.parse_args()
    model = MLP(args.width)
    mx.eval(model.parameters())
    size = sum(p.size for p in model.parameters().values())
    ema = EMAWeightAveraging(decay=0.999)
    ema.setup(None, model, "fit")  # type: ignore[arg-type]  # setup reads only the module
    for _ in range(3):  # the first copies; the second compiles
        ema.update_parameters(model)
    mx.eval(list(ema.average_weights.values()))
    start = time.perf_counter()
    for _ in range(args.updates):
        ema.update_parameters(model)
    queued = time.perf_counter() - start
    mx.eval(list(ema.average_weights.values()))
    total = time.perf_counter() - start
    print(
        f"{size} parameters: {queued / args.updates * 1e6:.0f} us/update to queue (host), "
        f"{total / args.updates * 1e6:.0f} us/update with the device"
    )


if __name__ == "__main__":
    main()
