#!/usr/bin/env bash
# Every GPU pairing in one run (see ../shared/device/README.md for bringing MLX's CUDA build to
# the lent machine). Results under $OUT (or ./gpu_results); recorded in docs/benchmarks.md.
# (benchmarks/gpu/staged.sh runs them as items under a time budget, for limited device calls.)
# CLAP: with WITH_CLAP=1 (clap_step.py, clap_loader.py; clap_profile.py runs on its own): minutes
# each, and the first CLAP run on a fresh machine compiles MLX's CUDA kernels for minutes.
set -uo pipefail
out="${OUT:-gpu_results}"; mkdir -p "$out"
export PYTHONPATH="/tmp/site:$(ls -d "$PWD"/packages/*/src | paste -sd:)"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$out/gpu.txt"
quiet() { grep -v -E "^(Epoch|Trainer:|  checkpoints:|  logs:|GPU available|TPU available|HPU available|LOCAL_RANK|You are using|.*warn)" ; }
python3 benchmarks/gpu/cnn_fit.py ${CNN_ARGS:-} 2>&1 | quiet | tee "$out/cnn_fit.txt"
for b in 64 256; do
  python3 benchmarks/gpu/step_overhead.py --batch $b --steps 600 --repeats 3 --no-profile 2>&1 | tee -a "$out/step_overhead.txt"
done
python3 benchmarks/gpu/step_overhead.py --kernels --steps 4 2>&1 | tee -a "$out/step_overhead.txt"
python3 benchmarks/trainer_overhead.py --repeats 3 --steps 600 2>&1 | tail -9 | tee "$out/trainer_overhead.txt"
python3 benchmarks/gpu/host_transfer.py 2>&1 | tee "$out/host_transfer.txt"
# data-parallel code path on NCCL with one process, against a plain run of the same script
tests="$PWD/packages/mlx-audio-train/tests"
mkdir -p /tmp/dp_nccl /tmp/dp_plain
( cd "$tests" && PYTHONPATH="$PYTHONPATH:$tests" python3 -c "import sys; from mlx._distributed_utils.launch import main; sys.argv[0] = 'mlx.launch'; main()" \
    -n 1 --backend nccl --python python3 distributed_script.py '{"out": "/tmp/dp_nccl", "global_batch": 32, "max_epochs": 2}' \
  && PYTHONPATH="$PYTHONPATH:$tests" python3 distributed_script.py '{"out": "/tmp/dp_plain", "global_batch": 32, "max_epochs": 2}' ) 2>&1 | quiet | tail -5 | tee "$out/nccl.txt"
python3 - <<'PY' 2>&1 | tee -a "$out/nccl.txt"
import json, mlx.core as mx
a, b = mx.load("/tmp/dp_nccl/weights.safetensors"), mx.load("/tmp/dp_plain/weights.safetensors")
print("nccl -n 1 vs plain: max weight difference", max(float(mx.abs(a[k] - b[k]).max()) for k in a),
      "world", json.load(open("/tmp/dp_nccl/seen-0.json"))["world"])
PY
python3 benchmarks/gpu/logmel_probe.py 2>&1 | tee "$out/logmel_probe.txt"
# CLAP (minutes each; a fresh machine first compiles MLX's CUDA kernels): the step against
# transformers, then the loader from WAV files against pre-made batches, each in its own process
if [ -n "${WITH_CLAP:-}" ]; then
  python3 benchmarks/gpu/clap_step.py 2>&1 | tee "$out/clap_step.txt"
  for v in premade f32 f32-pin i16 i16-pin; do
    (cd benchmarks/gpu && python3 -u clap_loader.py --workers 12 --files 320 --steps 40 --variants $v) 2>&1 \
      | grep -E "ms/step" | tee -a "$out/clap_loader.txt"
  done
fi
