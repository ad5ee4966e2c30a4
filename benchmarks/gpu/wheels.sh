#!/usr/bin/env bash
# Download the wheels the GPU benchmark needs beyond torch, pytorch-lightning and numpy, for the device's
# Python (default 3.12, the H200 image's), into benchmarks/gpu/wheels/ (git-ignored: name it in `carry`).
#   bash benchmarks/gpu/wheels.sh [PYTHON_VERSION]
set -euo pipefail
cd "$(dirname "$0")/../.."
PY="${1:-3.12}"
W=(-q -d benchmarks/gpu/wheels -c constraints-dev.txt --only-binary=:all: --python-version "$PY"
   --implementation cp --platform manylinux2014_x86_64)
python3 -m pip download "${W[@]}" pydantic pydicom   # with their dependencies: pydantic's exact pydantic-core
python3 -m pip download "${W[@]}" --no-deps monai    # monai's own dependencies (torch, numpy) are on the image
ls benchmarks/gpu/wheels
