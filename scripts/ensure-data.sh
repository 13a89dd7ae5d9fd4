#!/usr/bin/env bash
# Make sure Fashion-MNIST is available: an explicit FMNIST_DATA_DIR, the cache, or Debian's package
# (installed here when we are root and apt is there), else `fmnist data fetch` downloads it or says clearly
# what to do.
set -euo pipefail
FMNIST=${FMNIST:-fmnist}
SYSTEM_DIR=/usr/share/datasets/fashion-mnist

if [ -z "${FMNIST_DATA_DIR:-}" ] && [ ! -e "$SYSTEM_DIR/train-images-idx3-ubyte.gz" ] && [ ! -e "$SYSTEM_DIR/train-images-idx3-ubyte" ] \
   && ! "$FMNIST" data info --json >/dev/null 2>&1; then
    if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
        echo "data: installing Debian's dataset-fashion-mnist" >&2
        apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist || echo "data: apt-get failed; trying the download" >&2
    fi
fi
"$FMNIST" data fetch
