#!/usr/bin/env bash
# The GPU check: the whole suite on the cupy backend, the examples on CUDA, and the GPU
# benchmark against PyTorch with cuDNN. Needs no network: CuPy, Numba, numba-cuda,
# PyTorch and pytest must be installed; array-api-compat, array-api-strict and
# threadpoolctl may come as wheels in WHEEL_DIR.
#
#   benchmarks/gpu_check.sh OUT_DIR [WHEEL_DIR]
#
# Writes into OUT_DIR: info.txt, tests_cupy.log, examples_cupy.log, bench_gpu.txt,
# bench_gpu.jsonl, profile_gpu.txt (where W3's step spends its time, and the host's cost
# of one kernel launch). Meant to finish within 8 minutes on one modern GPU.
set -uo pipefail
out=${1:?usage: benchmarks/gpu_check.sh OUT_DIR [WHEEL_DIR]}
wheels=${2:-}
cd "$(dirname "$0")/.."
mkdir -p "$out"
export PYTHONUNBUFFERED=1 GPUNET_BACKEND=cupy
py=${PYTHON:-python3}

if [ -n "$wheels" ]; then
  site=/tmp/gpunet-site
  "$py" -m pip install -q --no-index --no-deps --no-compile --target "$site" \
    "$wheels"/array_api_compat-*.whl "$wheels"/array_api_strict-*.whl || exit 1
  if ! "$py" -c "import threadpoolctl" 2>/dev/null; then
    "$py" -m pip install -q --no-index --no-deps --no-compile --target "$site" \
      "$wheels"/threadpoolctl-*.whl || exit 1
  fi
  # numba-cuda releases lag NumPy: if numba.cuda cannot import with the NumPy here and a
  # NumPy wheel was brought along, use that one (and say so).
  if ! "$py" -c "from numba import cuda" 2>/dev/null && ls "$wheels"/numpy-*.whl >/dev/null 2>&1; then
    echo "numba.cuda does not import with NumPy $("$py" -c 'import numpy; print(numpy.__version__)');" \
         "using $(basename "$wheels"/numpy-*.whl)" | tee -a "$out/info.txt"
    "$py" -m pip install -q --no-index --no-deps --no-compile --target "$site" "$wheels"/numpy-*.whl
  fi
  export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
fi

# gpunet itself, editable (kernels/ becomes gpunet.kernels), with what is installed here
"$py" -m pip install -q --no-deps --no-build-isolation --no-index -e . || exit 1

{
  date -u +"%Y-%m-%d %H:%M UTC"
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
  "$py" -m gpunet info
  "$py" -c "import numpy, numba, cupy, torch; print('numpy', numpy.__version__, '| numba', numba.__version__, '| cupy', cupy.__version__, '| torch', torch.__version__)"
} >>"$out/info.txt" 2>&1

echo "== tests on cupy"
per_test=""
"$py" -c "import pytest_timeout" 2>/dev/null && per_test="--timeout=120"
timeout 300 "$py" -m pytest -q -p no:cacheprovider -m "not crosscheck" $per_test tests \
  >"$out/tests_cupy.log" 2>&1
tail -n 3 "$out/tests_cupy.log"

echo "== examples on cupy (--quick)"
for example in examples/*.py; do
  case $example in *distributed*) continue ;; esac
  SECONDS=0
  if timeout 120 "$py" "$example" --quick --out /tmp/gpunet-out >/tmp/example.log 2>&1; then
    status=ok
  else
    status="FAILED: $(tail -n 3 /tmp/example.log | tr '\n' ' ')"
  fi
  printf '%-40s %4d s  %s\n' "$example" "$SECONDS" "$status" \
    | tee -a "$out/examples_cupy.log"
  grep -iE "accuracy|mse|loss" /tmp/example.log | tail -n 2 | sed 's/^/    /' >>"$out/examples_cupy.log"
done

echo "== GPU benchmark"
timeout 240 "$py" -m benchmarks --device gpu --rounds 5 --seconds 0.3 \
  --json "$out/bench_gpu.jsonl" 2>&1 | tee "$out/bench_gpu.txt"

echo "== W3 profile on the GPU"
timeout 90 "$py" -m benchmarks.recurrent_profile --device gpu --seconds 0.3 \
  --json "$out/profile_gpu.jsonl" 2>&1 | tee "$out/profile_gpu.txt"
