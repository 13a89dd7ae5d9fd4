#!/usr/bin/env bash
# The GPU benchmark in one command, for a machine with one CUDA GPU (an H100 is what the modern recipes' GPU
# targets name):
#
#     bash benchmarks/gpu.sh            # fast and sota, 5 runs each, eager and torch.compile'd; then the speed table
#     RUNS=1 bash benchmarks/gpu.sh     # a single run each
#
# It runs from the working tree without installing anything (such machines may have no network): the benchmarks
# as `python -m benchmarks.NAME` from the repository root, fmnist from src/ on PYTHONPATH. The system's PyTorch
# (>= 2.4) and the project's other dependencies must already be importable. The data:
# FMNIST_DATA_DIR if set, else ./.data (copy the four Fashion-MNIST .gz files there to bring them along with
# the working tree), else the usual places (cache, Debian's package). Results land in runs/bench/modern-gpu.json
# and runs/bench/train-speed-gpu.txt, and the section "modern-gpu" of docs/results.md.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
if [ -z "${FMNIST_DATA_DIR:-}" ] && [ -e .data/train-images-idx3-ubyte.gz ]; then export FMNIST_DATA_DIR="$PWD/.data"; fi
PY=${PYTHON:-python3}
"$PY" - <<'PY'
import importlib, sys
missing = [m for m in ("torch", "numpy", "PIL", "matplotlib", "sklearn", "scipy", "typer", "rich", "safetensors") if importlib.util.find_spec(m) is None]
if missing:
    sys.exit(f"gpu.sh: these packages are missing: {', '.join(missing)}; install them (pip install -e .) and run again")
import torch
if not torch.cuda.is_available():
    sys.exit("gpu.sh: PyTorch sees no CUDA device")
print(f"GPU: {torch.cuda.get_device_name(0)}, torch {torch.__version__}")
PY
"$PY" -m fmnist data info
# torch.compile'd runs record the compile time apart (the first epoch's excess over the others).
"$PY" -m benchmarks.modern_recipes fast sota --device cuda --runs "${RUNS:-5}" --compile --out runs/bench/modern-gpu.json
"$PY" -m benchmarks.modern_recipes fast sota --device cuda --runs "${RUNS:-5}" --out runs/bench/modern-gpu.json
mkdir -p runs/bench
"$PY" -m benchmarks.train_speed fast best sota baseline minivgg --device cuda | tee runs/bench/train-speed-gpu.txt
