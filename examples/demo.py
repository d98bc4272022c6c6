"""The `make demo` job.

Until the training package lands this runs the MLX side of the DataLoader benchmark
(benchmarks/dataloader.py) on small datasets and prints its table; no torch needed.
"""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

if __name__ == "__main__":
    benchmark = Path(__file__).resolve().parents[1] / "benchmarks" / "dataloader.py"
    sys.argv = [str(benchmark), "--mlx-only", "--quick", "--repeats", "2"]
    print("mlx-audio demo: DataLoader throughput (MLX side of benchmarks/dataloader.py)")
    runpy.run_path(str(benchmark), run_name="__main__")
