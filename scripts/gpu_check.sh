#!/usr/bin/env bash
# The one command for the GPU machine (issue: CUDA backend), from the binaries of
# scripts/gpu_bundle.sh (carried as gpu_bundle/). One deadline (BUDGET seconds, default 360)
# for everything; each step gets at most its own cap and what is left, in this order:
#   1. the CUDA parity tests (ctest label `cuda` = bin/test_cuda), full shapes;
#   2. lethe vs PyTorch throughput in the same run (pytorch_baseline.py's protocol: 5 warm-up
#      + 20 timed steps, synthetic data): ResNet-18 and VGG-16 at batch 256, fp32 and TF32,
#      cuDNN as lethe's conv backend once, ResNet-18 inference at batch 1024; ratios and peak
#      memory in summary.txt;
#   3. a short real training run: `lethe train --device cuda` on the synthetic data set;
#   4. the kernel benchmarks (lethe's versions next to cuBLAS), short;
#   5. compute-sanitizer memcheck over the tests on small shapes with exact-size allocations.
# Logs go to $OUT (the device tool brings back at most 8 files): summary.txt (device, every
# step's outcome, the ratios), tests.log, throughput.jsonl, train.log, bench.json,
# sanitizer.log, stderr.log. The exit status is the parity tests'.
set -uo pipefail
cd "$(dirname "$0")/.."
B=$PWD/gpu_bundle
OUT=${OUT:-/tmp/lethe-gpu-out}
BUDGET=${BUDGET:-360}
mkdir -p "$OUT"
[ -x "$B/bin/test_cuda" ] || { echo "gpu_check: run scripts/gpu_bundle.sh first and carry gpu_bundle" >&2; exit 2; }
[ -d "$B/lib" ] || tar -xJf "$B/lib.tar.xz" -C "$B"
SUMMARY=$OUT/summary.txt
: > "$SUMMARY"
log() { echo "$*" | tee -a "$SUMMARY"; }
T_END=$(( $(date +%s) + BUDGET ))
left() {  # seconds for a step: its cap, or what is left of the budget (at least 1)
  local l=$(( T_END - $(date +%s) ))
  [ "$l" -lt 1 ] && l=1
  [ "$1" -lt "$l" ] && l=$1
  echo "$l"
}
# Only lethe's binaries see the bundled libraries (python, nvidia-smi and the sanitizer keep
# the machine's own).
lbin() { local t=$1; shift; LD_LIBRARY_PATH="$B/lib:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}" timeout "$t" "$@"; }

log "$(date -u)  commit $(cat "$B/commit.txt" 2>/dev/null)"
log "$(nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv 2>&1)"
missing=$(LD_LIBRARY_PATH="$B/lib:/usr/local/cuda/lib64" ldd "$B"/bin/* 2>/dev/null | grep "not found" | sort -u)
[ -z "$missing" ] || log "missing libraries: $missing"

# 1. parity tests
t0=$(date +%s)
lbin "$(left 120)" "$B/bin/test_cuda" > "$OUT/tests.log" 2>&1
tests_rc=$?
log "tests: rc $tests_rc in $(( $(date +%s) - t0 )) s; $(grep -E '^\[  (PASSED|FAILED|SKIPPED) \]  ?[0-9]' "$OUT/tests.log" | tr '\n' ' ')"
grep -E '^\[  FAILED  \]' "$OUT/tests.log" | head -20 | tee -a "$SUMMARY"

# 2. throughput, lethe and PyTorch in the same run
TP=$OUT/throughput.jsonl
: > "$TP"
lethe_bench() { lbin "$(left 60)" "$B/bin/lethe" bench --device cuda --steps 20 "$@" 2>> "$OUT/stderr.log" | tail -n 1 >> "$TP"; }
torch_bench() { timeout "$(left 90)" python3 "$B/pytorch_baseline.py" --device cuda --steps 20 "$@" 2>> "$OUT/stderr.log" | grep '^{' >> "$TP"; }
for model in resnet18 vgg16_bn; do
  for mode in fp32 tf32; do lethe_bench --model "$model" --batch 256 --math-mode "$mode"; done
  torch_bench --model "$model" --batch 256 --modes fp32,tf32
done
lethe_bench --model resnet18 --batch 256 --math-mode fp32 --conv-backend cudnn
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
    mem = f", peak memory {r.get('peak_mem_mib', 0):.0f} vs {p.get('peak_mem_mib', '?')} MiB" if p else ""
    be = "" if r.get("conv_backend", "lethe") == "lethe" else f" [{r['conv_backend']}]"
    print(f"{r['model']} {r['mode']}{be} {r.get('task')} batch {r['batch']}: lethe {r['images_per_s']:.0f} img/s, "
          f"pytorch {p['images_per_s'] if p else float('nan'):.0f} img/s, ratio {ratio}{mem}")
PY

# 3. a short real training run (synthetic data: nothing to carry), checkpoint and eval included
t0=$(date +%s)
lbin "$(left 60)" "$B/bin/lethe" train --device cuda --dataset synthetic --epochs 2 \
  --width 0.25 --out "$OUT/train-run" > "$OUT/train.log" 2>&1
log "train --device cuda: rc $? in $(( $(date +%s) - t0 )) s; $(grep -E 'test accuracy|error|Error' "$OUT/train.log" | tail -n 2 | tr '\n' ' ')"
cat "$OUT/train-run/results.json" >> "$OUT/train.log" 2>/dev/null; rm -rf "$OUT/train-run"

# 4. kernel benchmarks, short (Google Benchmark 1.7: --benchmark_min_time takes seconds)
: > "$OUT/bench.json"
for b in bench_gemm_cuda bench_conv2d_cuda bench_batchnorm_cuda bench_ops_cuda bench_conv2d_sparse_cuda; do
  t0=$(date +%s)
  lbin "$(left 40)" "$B/bin/$b" --benchmark_min_time=0.02 --benchmark_format=json \
    --benchmark_filter='^(?!.*cuda_v1)' >> "$OUT/bench.json" 2>> "$OUT/stderr.log"
  log "$b: rc $? in $(( $(date +%s) - t0 )) s"
done

# 5. memcheck on small shapes, exact-size allocations (every kernel still runs)
SANITIZER=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer \
  /usr/local/cuda*/compute-sanitizer/compute-sanitizer 2>/dev/null | head -n 1)
t0=$(date +%s)
LETHE_TEST_SMALL=1 LETHE_CUDA_ALLOC=exact lbin "$(left 150)" "$SANITIZER" --tool memcheck \
  --error-exitcode 9 "$B/bin/test_cuda" > "$OUT/sanitizer.log" 2>&1
log "memcheck: rc $? in $(( $(date +%s) - t0 )) s; $(grep -E 'ERROR SUMMARY' "$OUT/sanitizer.log" | tail -n 1)"
exit "$tests_rc"
