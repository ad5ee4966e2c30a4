#!/usr/bin/env bash
# The whole GPU check in one call on the device machine: install the carried wheels (made by wheels.sh)
# into a scratch folder, run every row, write the JSON to $OUT when set (the device tool brings it back).
#   bash benchmarks/gpu/device_run.sh [run.py options, e.g. --only ceiling,reuse]
set -euo pipefail
cd "$(dirname "$0")/../.."
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
python3 -c "import sys, torch, numpy; print(sys.version.split()[0], 'torch', torch.__version__, 'numpy', numpy.__version__)"
python3 -m pip install -q --no-index --no-deps --target /tmp/ld-site benchmarks/gpu/wheels/*.whl
PYTHONUNBUFFERED=1 PYTHONPATH=/tmp/ld-site python3 benchmarks/gpu/run.py --out "${OUT:-benchmarks/gpu}/results-cuda.json" "$@"
