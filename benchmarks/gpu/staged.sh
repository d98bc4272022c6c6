#!/usr/bin/env bash
# The GPU pairings as items under one time budget, for lent machines whose calls are limited
# (10 minutes a call, ~30 minutes a session): `bash benchmarks/gpu/staged.sh ITEM...` runs the
# items in order, each under `timeout` for what is left of LIMIT seconds (default 565), skips
# what no longer fits, and writes each item's output to $OUT/<item>.txt (or ./gpu_results), so a
# call cut short still returns what finished. Chain calls on the same warm machine with further
# items. run_all.sh runs everything without a budget. Items:
#   cnn                  cnn_fit.py (both batch sizes, every side incl. Lightning)
#   step64, step256      step_overhead.py --batch B --steps 600 --repeats 3 --no-profile
#   kernels              step_overhead.py --kernels --steps 4
#   host                 ../fit_host_overhead.py --steps 1500 --repeats 2
#   bvd64, bvd256        bare_vs_defaults.py --batch B --profile defaults (which default costs; host-bound?)
#   split64, split256    host_split.py --batch B (wall time per piece of a step on the host)
#   kerneltest           the custom CUDA kernels' and the transfer thread's tests (test_kernels.py,
#                        test_window_kernels.py, test_pin_memory.py; pytest carried in .mlx-cuda/py)
#   cudatest             kerneltest's tests that need CUDA only (no emulator, no worker processes)
#   transfer             host_transfer.py (a CLAP batch handed to MLX: page faults, prefetch, copy)
#   probe                the machine: CPU model, nsys/ncu if installed
#   trainer              ../trainer_overhead.py --repeats 3 --steps 600
#   clap:VARIANT         clap_step.py --variant VARIANT --json (CSTEPS steps, default 15, after 5)
#   loader:VARIANT       clap_loader.py --workers 12 --files 320 --steps 40 --variants VARIANT
#   ptx                  MLX's compiled-kernel cache into $OUT/ptx.tar.xz (../shared/device/README.md)
#   K=V[,K=V]@ITEM       ITEM with those environment variables (e.g. MLX_MAX_MB_PER_BUFFER=100@clap:ours/fit-32)
# Each item's output goes to $OUT/<the item, other characters as _>.txt.
# Used on 2026-12-07 (H100): `step64 step256 kernels host cnn ptx`, then
# `clap:ours/loop-32 clap:ours/fit-bf16 clap:hf/compile-32 clap:ours/fit-32 clap:hf/compile-bf16 ...`.
set -uo pipefail
out="${OUT:-gpu_results}"; mkdir -p "$out"
export PYTHONPATH="/tmp/site:$(ls -d "$PWD"/packages/*/src | paste -sd:)"
limit=${LIMIT:-565}
export MLX_AUDIO_CUDA_KERNELS=${MLX_AUDIO_CUDA_KERNELS:-1}  # the step's CUDA kernels (opt-in for now)
if [ ! -f "$out/gpu.txt" ]; then
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader > "$out/gpu.txt"
  python3 -c "import sys, mlx.core as mx, torch, lightning, transformers; print('mlx', mx.__version__, mx.default_device(), 'torch', torch.__version__, 'lightning', lightning.__version__, 'transformers', transformers.__version__, 'python', sys.version.split()[0])" >> "$out/gpu.txt" 2>&1
  cat "$out/gpu.txt"
fi
quiet() { grep -v -E "^(Epoch|Trainer:|  checkpoints:|  logs:|GPU available|TPU available|HPU available|LOCAL_RANK|You are using|.*warn)" ; }
run_item() {  # ITEM SECONDS-LEFT FILE-STEM
  local item=$1 left=$2 f="$out/$3.txt"
  case $item in
    cnn) timeout $left python3 -u benchmarks/gpu/cnn_fit.py 2>&1 | quiet > "$f" ;;
    step64|step256) timeout $left python3 -u benchmarks/gpu/step_overhead.py --batch "${item#step}" \
        --steps 600 --repeats 3 --no-profile > "$f" 2>&1 ;;
    kernels) timeout $left python3 -u benchmarks/gpu/step_overhead.py --kernels --steps 4 > "$f" 2>&1 ;;
    host) timeout $left python3 -u benchmarks/fit_host_overhead.py --steps 1500 --repeats 2 > "$f" 2>&1 ;;
    bvd64|bvd256) timeout $left python3 -u benchmarks/gpu/bare_vs_defaults.py --batch "${item#bvd}" \
        --profile defaults 2>&1 | quiet > "$f" ;;
    split64|split256) timeout $left python3 -u benchmarks/gpu/host_split.py --batch "${item#split}" \
        2>&1 | quiet > "$f" ;;
    kerneltest) PYTHONPATH=".mlx-cuda/py:packages/mlx-audio-data/tests:packages/mlx-audio-models/tests:packages/mlx-audio-train/tests:$PYTHONPATH" \
        timeout $left python3 -m pytest -q -o addopts="" --noconftest -p no:cacheprovider \
        --import-mode=importlib -rs packages/mlx-audio-train/tests/test_kernels.py \
        packages/mlx-audio-train/tests/test_guard_kernel.py \
        packages/mlx-audio-models/tests/test_window_kernels.py \
        packages/mlx-audio-data/tests/test_pin_memory.py > "$f" 2>&1 ;;
    cudatest) MLX_AUDIO_EMULATE_CUDA=0 PYTHONPATH=".mlx-cuda/py:packages/mlx-audio-data/tests:packages/mlx-audio-models/tests:$PYTHONPATH" \
        timeout $left python3 -m pytest -q -o addopts="" --noconftest -p no:cacheprovider \
        --import-mode=importlib -rs packages/mlx-audio-train/tests/test_kernels.py \
        packages/mlx-audio-models/tests/test_window_kernels.py -k "not emulated and not source" \
        "packages/mlx-audio-data/tests/test_pin_memory.py::test_on_a_cuda_gpu_host_made_batches_are_prefetched_and_read_the_same" \
        "packages/mlx-audio-data/tests/test_pin_memory.py::test_on_a_cuda_gpu_a_pinned_mappings_bytes_are_copied_by_the_kernel_then_unpinned" \
        > "$f" 2>&1 ;;
    transfer) timeout $left python3 -u benchmarks/gpu/host_transfer.py > "$f" 2>&1 ;;
    probe) { lscpu | head -20; which nsys ncu nvcc; ls /usr/local/cuda*/bin 2>/dev/null | head; } > "$f" 2>&1 ;;
    trainer) timeout $left python3 -u benchmarks/trainer_overhead.py --repeats 3 --steps 600 > "$f" 2>&1 ;;
    clap:*) timeout $left python3 -u benchmarks/gpu/clap_step.py --variant "${item#clap:}" --json \
        --steps "${CSTEPS:-15}" --warmup 5 > "$f" 2>&1 ;;
    loader:*) (cd benchmarks/gpu && timeout $left python3 -u clap_loader.py --workers 12 \
        --files 320 --steps 40 --variants "${item#loader:}") > "$f" 2>&1 ;;
    ptx) tar -C /tmp -cJf "$out/ptx.tar.xz" mlx ;;
    *) echo "unknown item: $item (see the header of $0)"; return 1 ;;
  esac
}
for item in "$@"; do
  left=$((limit - SECONDS))
  if [ $left -lt 20 ]; then echo "SKIP $item (no time left)"; continue; fi
  echo "=== $item (t=${SECONDS}s)"
  stem=${item//[^A-Za-z0-9_.+-]/_}
  if [[ $item == *@* ]]; then  # K=V[,K=V]@ITEM: ITEM with those environment variables
    ( IFS=, read -ra pairs <<< "${item%%@*}"; for kv in "${pairs[@]}"; do export "$kv"; done
      run_item "${item#*@}" $left "$stem" )
  else
    run_item "$item" $left "$stem"
  fi
  echo "    rc=$? t=${SECONDS}s"
done
