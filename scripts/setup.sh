#!/usr/bin/env bash
# Create the virtual environment and install the project into it.
# PyTorch: where no torch is present, install the 2.13.0 build first (a local CPU wheel on this project's
# machines); an unpinned torch would pull several GB of CUDA packages. A system-wide torch (e.g. on a GPU
# machine) is used as it is.
set -euo pipefail
VENV=${VENV:-.venv}

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else return 1; fi; }

if ! python3 -c "import venv, ensurepip" 2>/dev/null; then
    echo "setup: python3-venv is missing; installing it with apt-get" >&2
    as_root apt-get update -qq && as_root apt-get install -y -qq python3-venv
fi

# A C compiler builds the fused CPU kernels at first use (fmnist.ops.conv_pool_relu); without one the models run
# layer by layer, slower.
if ! command -v cc >/dev/null && ! command -v gcc >/dev/null; then
    echo "setup: no C compiler; installing gcc with apt-get (the fused CPU kernels need it)" >&2
    as_root apt-get update -qq && as_root apt-get install -y -qq gcc libc6-dev || echo "setup: no gcc; fused kernels off" >&2
fi

if [ ! -x "$VENV/bin/python" ]; then
    if python3 -c "import torch" 2>/dev/null; then
        python3 -m venv --system-site-packages "$VENV"
    else
        python3 -m venv "$VENV"
    fi
fi
if ! "$VENV/bin/python" -c "import torch" 2>/dev/null; then
    "$VENV/bin/python" -m pip install -q torch==2.13.0
fi
extras="test,onnx,serve,sweep"
# Ray is optional for users; the test suite exercises it where it can be installed.
if [ "${FMNIST_WITH_RAY:-1}" = 1 ]; then extras="test,onnx,serve,sweep,ray"; fi
"$VENV/bin/python" -m pip install -q -e ".[$extras]" || {
    echo "setup: installing with [$extras] failed; retrying without ray" >&2
    "$VENV/bin/python" -m pip install -q -e ".[test,onnx,serve,sweep]"
}
