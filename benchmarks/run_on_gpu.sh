#!/usr/bin/env bash
# The GPU benchmarks, for the lent NVIDIA machine (see ../shared/device/README.md for bringing
# MLX's CUDA build there). Writes results under $OUT (or ./gpu_results).
set -uo pipefail
out="${OUT:-gpu_results}"; mkdir -p "$out"
export PYTHONPATH="/tmp/site:$(ls -d "$PWD"/packages/*/src | paste -sd:)"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee "$out/gpu.txt"
python3 benchmarks/trainer_overhead.py --repeats 3 2>&1 | tail -9 | tee "$out/trainer_overhead.txt"
python3 benchmarks/clap.py --steps 5 --warmup 2 2>&1 | tail -7 | tee "$out/clap.txt"
python3 examples/demo.py 2>&1 | tail -4 | tee "$out/demo.txt"
