#!/usr/bin/env bash
# The one command for the GPU machine (issue: CUDA backend). Runs, within ~6 minutes, from the
# binaries of scripts/gpu_bundle.sh (carried as gpu_bundle/):
#   1. the CUDA parity tests (ctest label `cuda` = bin/test_cuda), full shapes;
#   2. compute-sanitizer memcheck over the same tests on small shapes (LETHE_TEST_SMALL=1);
#   3. the CUDA kernel benchmarks (lethe's versions next to cuBLAS);
#   4. lethe vs PyTorch training-step throughput, ResNet-18 / VGG-16 batch 256, fp32 and
#      TF32, and inference, with the protocol of pytorch_baseline.py (5 warm-up + 20 timed
#      steps, synthetic data), in the same run, printing ratios.
# Logs go to $OUT (the device tool brings them back): device.txt, tests.log, sanitizer.log,
# bench_*.json, throughput.jsonl, summary.txt. Each step has its own time limit, and a failed
# step does not stop the others; the exit status is that of the parity tests.
set -uo pipefail
cd "$(dirname "$0")/.."
B=gpu_bundle
OUT=${OUT:-/tmp/lethe-gpu-out}
mkdir -p "$OUT"
export LD_LIBRARY_PATH="$PWD/$B/lib:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}"
[ -x "$B/bin/test_cuda" ] || { echo "gpu_check: run scripts/gpu_bundle.sh first and carry gpu_bundle" >&2; exit 2; }
[ -d "$B/lib" ] || tar -xJf "$B/lib.tar.xz" -C "$B"
SUMMARY=$OUT/summary.txt
log() { echo "$*" | tee -a "$SUMMARY"; }

{ date -u; cat "$B/commit.txt" 2>/dev/null; nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv; } > "$OUT/device.txt" 2>&1
log "device: $(sed -n 4p "$OUT/device.txt")  commit: $(cat "$B/commit.txt" 2>/dev/null)"

# 1. parity tests
t0=$(date +%s)
timeout 150 "$B/bin/test_cuda" --gtest_output="json:$OUT/tests.json" > "$OUT/tests.log" 2>&1
tests_rc=$?
log "tests: rc $tests_rc in $(( $(date +%s) - t0 )) s; $(grep -E '^\[  (PASSED|FAILED|SKIPPED) \]  ?[0-9]' "$OUT/tests.log" | tr '\n' ' ')"
grep -E '^\[  FAILED  \]' "$OUT/tests.log" | head -20 | tee -a "$SUMMARY"

# 2. memcheck on small shapes (every kernel still runs)
t0=$(date +%s)
SANITIZER=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer \
  /usr/local/cuda*/compute-sanitizer/compute-sanitizer 2>/dev/null | head -n 1)
LETHE_TEST_SMALL=1 timeout 150 "$SANITIZER" --tool memcheck --error-exitcode 9 \
  "$B/bin/test_cuda" > "$OUT/sanitizer.log" 2>&1
log "memcheck: rc $? in $(( $(date +%s) - t0 )) s; $(grep -E 'ERROR SUMMARY' "$OUT/sanitizer.log" | tail -n 1)"

# 3. kernel benchmarks (short: each point ~0.05 s)
for b in bench_gemm_cuda bench_conv2d_cuda bench_batchnorm_cuda bench_ops_cuda; do
  t0=$(date +%s)
  timeout 60 "$B/bin/$b" --benchmark_min_time=0.05s --benchmark_format=json \
    > "$OUT/$b.json" 2> "$OUT/$b.err"
  log "$b: rc $? in $(( $(date +%s) - t0 )) s"
done

# 4. throughput, lethe and PyTorch in the same run
TP=$OUT/throughput.jsonl
: > "$TP"
lethe_bench() { timeout 90 "$B/bin/lethe" bench --device cuda --steps 20 "$@" 2>> "$OUT/throughput.err" | tail -n 1 >> "$TP"; }
torch_bench() { timeout 120 python3 "$B/pytorch_baseline.py" --device cuda --steps 20 "$@" 2>> "$OUT/throughput.err" | grep '^{' >> "$TP"; }
for model in resnet18 vgg16_bn; do
  for mode in fp32 tf32; do lethe_bench --model "$model" --batch 256 --math-mode "$mode"; done
  torch_bench --model "$model" --batch 256 --modes fp32,tf32
done
lethe_bench --model resnet18 --batch 1024 --inference true --math-mode fp32
torch_bench --model resnet18 --batch 1024 --modes fp32 --inference
python3 - "$TP" <<'PY' | tee -a "$SUMMARY"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip().startswith("{")]
def key(r): return (r.get("model"), r.get("mode"), r.get("task", "train_step"), r.get("batch"))
torch = {key(r): r for r in rows if r.get("framework") == "pytorch"}
for r in rows:
    if r.get("framework") != "lethe": continue
    p = torch.get(key(r))
    ratio = f"{r['images_per_s'] / p['images_per_s']:.2f}x" if p else "no PyTorch line"
    mem = f", peak memory {r.get('peak_mem_mib', 0):.0f} MiB vs {p.get('peak_mem_mib', '?')} MiB" if p else ""
    print(f"{r['model']} {r['mode']} {r.get('task')} batch {r['batch']}: lethe {r['images_per_s']:.0f} img/s, "
          f"pytorch {p['images_per_s'] if p else float('nan'):.0f} img/s, ratio {ratio}{mem}")
PY
exit "$tests_rc"
