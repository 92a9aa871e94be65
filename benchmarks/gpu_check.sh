#!/usr/bin/env bash
# The GPU check: three stages, each with its own time budget, each writing its results
# under OUT before the next starts; one summary table at the end (OUT/summary.txt).
#
#   benchmarks/gpu_check.sh [--dry] [--quick] OUT [WHEELS]
#
#   a. preflight, 60 s: the driver, imports and versions, the CUDA runtime, NumPy against
#      numba-cuda, one tiny training step on CuPy (benchmarks/preflight.py); it stops the
#      check with one line saying what is missing.
#   b. the test suite on the cupy backend, and three examples with --quick beside it,
#      240 s.
#   c. the GPU benchmark against PyTorch with cuDNN: W1, W2, W3, W6 (W2, W3 and W6 at
#      batch 256), 3 rounds, TF32 off on both sides, 180 s.
#
# --dry (or GPU_CHECK_DRY=1) runs the same stages on the NumPy backend, on a machine
# without a GPU, so the script is tried before its first GPU run. --quick (or
# GPU_CHECK_QUICK=1) runs a few test files and a short benchmark at batch 8: the test
# suite's check of this script. WHEELS: a folder of wheels for a machine without network
# (array_api_compat, array_api_strict, threadpoolctl, and a NumPy that numba-cuda
# imports with); a wheel that is missing there is a line in the summary, not an exit.
# Exit status: 0 when every stage passed, 1 when the preflight stopped, 2 when a later
# stage failed or ran out of time.
set -uo pipefail

dry=${GPU_CHECK_DRY:-0}
quick=${GPU_CHECK_QUICK:-0}
while [ $# -gt 0 ]; do
  case $1 in
    --dry) dry=1; shift ;;
    --quick) quick=1; shift ;;
    -*) echo "gpu_check: unknown option $1" >&2; exit 64 ;;
    *) break ;;
  esac
done
out=${1:?usage: benchmarks/gpu_check.sh [--dry] [--quick] OUT [WHEELS]}
wheels=${2:-}
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root" || exit 1
mkdir -p "$out" && out=$(cd "$out" && pwd)
py=${PYTHON:-python3}
export PYTHONUNBUFFERED=1

preflight_s=60 suite_s=240 bench_s=180
if [ "$dry" = 1 ]; then device=cpu backend=numpy; else device=gpu backend=cupy; fi
export GPUNET_BACKEND=$backend
tests=(tests)
bench=(--device "$device" --only W1 W2 W3 W6 --rounds 3 --seconds 0.2)
if [ "$quick" = 1 ]; then
  tests=(tests/test_gpu.py tests/test_backend_cuda.py)
  bench=(--device "$device" --only W1 W2 W3 W6 --rounds 1 --seconds 0.02 --batch 8)
fi
examples=(digits_mlp digits_cnn adding_problem)

summary=$out/summary.txt
printf '%-10s %-8s %5s  %s\n' stage status time result >"$summary"
row() { printf '%-10s %-8s %5s  %s\n' "$1" "$2" "$3" "$4" | tee -a "$summary"; }
finish() {
  echo
  echo "== summary ($([ "$dry" = 1 ] && echo "dry run on NumPy" || echo GPU), $out)"
  cat "$summary"
  exit "$1"
}
status=0

# ---------------------------------------------------------------- a. preflight
echo "== a. preflight (budget ${preflight_s} s)"
SECONDS=0
if [ -n "$wheels" ]; then
  # a wheel brought along is installed when its module does not import here; a wheel is
  # a zip of what goes on sys.path, so unpacking it needs no pip (uv's environments and
  # some images have none)
  site=$out/site-packages
  unpack() { mkdir -p "$site" && "$py" -m zipfile -e "$1" "$site" >>"$out/preflight.log" 2>&1; }
  for wheel in "$wheels"/*.whl; do
    [ -e "$wheel" ] || break
    name=$(basename "$wheel")
    module=${name%%-*}
    module=${module,,}
    [ "$module" = numpy ] && continue
    "$py" -c "import $module" 2>/dev/null && continue
    if unpack "$wheel"; then
      row wheels note "" "installed $name"
    else
      row wheels note "" "could not install $name (preflight.log)"
    fi
  done
  # numba-cuda releases lag NumPy: if numba.cuda does not import with this NumPy, use
  # the NumPy wheel brought along, if any.
  if [ "$dry" = 0 ] && ! "$py" -c "from numba import cuda" 2>/dev/null; then
    if ls "$wheels"/numpy-*.whl >/dev/null 2>&1; then
      unpack "$(ls "$wheels"/numpy-*.whl | head -n 1)"
      row wheels note "" "numba.cuda does not import with this NumPy: using $(basename "$wheels"/numpy-*.whl)"
    else
      row wheels note "" "numba.cuda does not import with this NumPy and $wheels has no NumPy wheel"
    fi
  fi
  export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
fi
for module in pytest hypothesis array_api_strict; do  # for stage b; the preflight needs none
  "$py" -c "import $module" 2>/dev/null \
    || row wheels note "" "$module does not import${wheels:+ and no wheel of it in $wheels}: tests that need it fail or skip"
done
# gpunet itself (kernels/ installed as gpunet.kernels), unless this tree is installed
if ! "$py" -c "import gpunet.kernels as k, os, sys; sys.exit(not os.path.realpath(k.__file__).startswith('$root/'))" 2>/dev/null; then
  timeout 40 "$py" -m pip install -q --no-deps --no-build-isolation --no-index -e . \
    >>"$out/preflight.log" 2>&1
fi
timeout $((preflight_s - SECONDS > 5 ? preflight_s - SECONDS : 5)) \
  "$py" -m benchmarks.preflight "$out/preflight.json" --device "$device" 2>&1 \
  | tee -a "$out/preflight.log"
code=${PIPESTATUS[0]}
if [ "$code" != 0 ]; then
  reason=$(grep -m1 "^preflight stopped" "$out/preflight.log" || true)
  [ "$code" = 124 ] && reason="ran past its ${preflight_s} s"
  row preflight FAILED "${SECONDS}s" "${reason:-exit $code, see preflight.log}"
  finish 1
fi
row preflight ok "${SECONDS}s" "$(grep -m1 '^imports' "$out/preflight.log" | cut -c16- | sed 's/ ([0-9.]* s)$//')"

# ---------------------------------------------------------------- b. tests and examples
echo "== b. tests on $backend and ${#examples[@]} examples (budget ${suite_s} s)"
SECONDS=0
per_test=()
"$py" -c "import pytest_timeout" 2>/dev/null && per_test=(--timeout=120)
mkdir -p "$out/examples"
pids=()
for example in "${examples[@]}"; do
  # beside the suite: the examples' time is not measured, only their result
  (
    begin=$SECONDS
    timeout $((suite_s - 20)) "$py" "examples/$example.py" --quick --out "$out/examples" \
      >"$out/examples/$example.log" 2>&1
    echo "$? $((SECONDS - begin))" >"$out/examples/$example.status"
  ) &
  pids+=($!)
done
timeout $((suite_s - 10)) "$py" -m pytest -q -p no:cacheprovider -m "not crosscheck" \
  --durations=10 "${per_test[@]}" "${tests[@]}" >"$out/tests.log" 2>&1
code=$?
wait "${pids[@]}"
result=$(grep -v "^ *$" "$out/tests.log" | tail -n 1 | tr -d '=' | cut -c1-90)
case $code in
  0) row tests ok "${SECONDS}s" "$result" ;;
  124) row tests TIMEOUT "${SECONDS}s" "ran past $((suite_s - 10)) s: $result"; status=2 ;;
  *) row tests FAILED "${SECONDS}s" "$result (tests.log)"; status=2 ;;
esac
for example in "${examples[@]}"; do
  read -r code took <"$out/examples/$example.status"
  last=$(grep -iE "accuracy|mse|loss" "$out/examples/$example.log" | tail -n 1 | cut -c1-70)
  if [ "$code" = 0 ]; then
    row example ok "${took}s" "$example: $last"
  else
    row example FAILED "${took}s" "$example (exit $code): $(tail -n 1 "$out/examples/$example.log" | cut -c1-70)"
    status=2
  fi
done

# ---------------------------------------------------------------- c. benchmark
echo "== c. benchmark on $device against PyTorch (budget ${bench_s} s)"
SECONDS=0
timeout "$bench_s" "$py" -m benchmarks "${bench[@]}" --json "$out/bench.jsonl" 2>&1 \
  | tee "$out/bench.txt"
code=${PIPESTATUS[0]}
case $code in
  0) row benchmark ok "${SECONDS}s" "$(grep -m1 "^device" "$out/bench.txt" | cut -d';' -f2)" ;;
  124) row benchmark TIMEOUT "${SECONDS}s" "ran past ${bench_s} s (what finished is below)"; status=2 ;;
  *) row benchmark FAILED "${SECONDS}s" "exit $code (bench.txt)"; status=2 ;;
esac
grep -m1 "PyTorch .*timing gpunet alone" "$out/bench.txt" | while read -r line; do
  row torch note "" "$line"
done
if [ -s "$out/bench.jsonl" ]; then
  "$py" - "$out/bench.jsonl" >>"$summary" <<'PYTHON'
import json, sys

results = [json.loads(line) for line in open(sys.argv[1])]
tf32 = {fw: s for r in results for fw, s in r.get("tf32", {}).items()}
if tf32:
    on = {fw: {k: v for k, v in s.items() if v} for fw, s in tf32.items()}
    state = "off on both sides" if not any(on.values()) else f"ON: {on}"
    names = ", ".join(f"{k}={v}" for s in tf32.values() for k, v in s.items())
    print(f"{'tf32':<10} {'note':<8} {'':>5}  {state} ({names})")
for r in results:
    memory = "peak_device_mb" if r["device"] == "gpu" else "peak_rss_mb"
    torch_ms = f"{r['torch_ms']:.3f}" if "torch_ms" in r else "-"
    ratio = f"{r['ratio']:.2f}" if "ratio" in r else "-"
    peak = "/".join(f"{r[k]:.0f}" if k in r else "-" for k in (f"gpunet_{memory}", f"torch_{memory}"))
    print(f"{r['workload']:<10} {'batch':<8} {r['batch']:>5}  gpunet {r['gpunet_ms']:.3f} ms, "
          f"torch {torch_ms} ms, ratio {ratio}, {memory[:-3].replace('_', ' ')} MB g/t {peak}")
PYTHON
fi
finish "$status"
