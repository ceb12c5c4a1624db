#!/usr/bin/env bash
# The one command for the GPU machine (issue: CUDA backend), from the binaries of
# scripts/gpu_bundle.sh (carried as gpu_bundle/). One deadline (BUDGET seconds, default 450)
# for everything; each step gets at most its own cap and what is left, in this order:
#   1. the CUDA parity tests (ctest label `cuda` = bin/test_cuda), full shapes (TESTS: a gtest
#      filter, default all);
#   2. lethe vs PyTorch throughput in the same run (pytorch_baseline.py's protocol: 5 warm-up
#      + 20 timed steps, synthetic data): ResNet-18 and VGG-16 at batch 256, fp32 and TF32,
#      cuDNN as lethe's conv backend once, ResNet-18 inference at batch 1024, the 95%-pruned
#      step on the sparse kernels vs the dense ones (widths 1.0 and 0.25); ratios and peak
#      memory in summary.txt;
#   3. a short real training run: `lethe train --device cuda` on the synthetic data set; then
#      train, prune and unlearn on the GPU (width 1.0), FT with the dense vs sparse kernels;
#   4. compute-sanitizer memcheck over the tests on small shapes with exact-size allocations;
#   5. the per-kernel GPU time of one ResNet-18 training step (Nsight Compute);
#   6. the kernel benchmarks (lethe's versions next to cuBLAS), short.
# Logs go to $OUT (the device tool brings back at most 8 files): summary.txt (device, every
# step's outcome, the ratios), tests.log, throughput.jsonl, train.log (all commands),
# sanitizer.log, profile.txt, bench.json, stderr.log. The exit status is the parity tests'.
set -uo pipefail
cd "$(dirname "$0")/.."
B=$PWD/gpu_bundle
OUT=${OUT:-/tmp/lethe-gpu-out}
BUDGET=${BUDGET:-450}
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
lbin() { local t=$1; shift; LD_LIBRARY_PATH="$LIBPATH:${LD_LIBRARY_PATH:-}" timeout "$t" "$@"; }

log "$(date -u)  commit $(cat "$B/commit.txt" 2>/dev/null)"
log "$(nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv 2>&1)"
# A library the loader cannot find (cuDNN outside the toolkit's folders, OpenBLAS absent) is
# looked for in the toolkit's other folder, PyTorch's wheels and the bundled fallback copies.
LIBPATH="$B/lib:/usr/local/cuda/lib64"
missing_libs() { LD_LIBRARY_PATH="$LIBPATH" ldd "$B"/bin/* 2>/dev/null | awk '/not found/ {print $1}' | sort -u; }
missing=$(missing_libs)
if [ -n "$missing" ]; then
  log "not found by the loader: $(echo $missing)"
  [ -d "$B/fallback" ] || tar -xJf "$B/fallback.tar.xz" -C "$B" 2>/dev/null
  for lib in $missing; do
    f=$(find /usr/local/cuda/lib /usr/local/cuda*/targets/*/lib /opt/torch /usr/lib "$B/fallback" \
      -name "$lib" 2>/dev/null | head -n 1)
    [ -n "$f" ] && LIBPATH="$LIBPATH:$(dirname "$f")" && log "  $lib from $(dirname "$f")"
  done
  missing=$(missing_libs)
  [ -z "$missing" ] || log "still missing: $(echo $missing)"
fi

# 1. parity tests
t0=$(date +%s)
# The kernel parity tests at full shapes (87 s on 2026-11-27), then the command-level tests (tests/cuda/test_commands_cuda.cpp: tiny
# models trained on both devices) on their own cap, so a slow one cannot hide the kernels'.
lbin "$(left 140)" "$B/bin/test_cuda" --gtest_filter="${TESTS:-*}:-CudaCommands.*" > "$OUT/tests.log" 2>&1
tests_rc=$?
log "tests: rc $tests_rc in $(( $(date +%s) - t0 )) s; $(grep -E '^\[  (PASSED|FAILED|SKIPPED) \]  ?[0-9]' "$OUT/tests.log" | tr '\n' ' ')"
if [ -z "${TESTS:-}" ]; then
  t0=$(date +%s)
  lbin "$(left 100)" "$B/bin/test_cuda" --gtest_filter='CudaCommands.*' > "$OUT/tests-cmd.log" 2>&1
  cmd_rc=$?
  log "command tests: rc $cmd_rc in $(( $(date +%s) - t0 )) s; $(grep -E '^\[  (PASSED|FAILED|SKIPPED) \]  ?[0-9]|measured' "$OUT/tests-cmd.log" | tr '\n' ' ')"
  cat "$OUT/tests-cmd.log" >> "$OUT/tests.log"; rm -f "$OUT/tests-cmd.log"
  [ "$tests_rc" -ne 0 ] || tests_rc=$cmd_rc
fi
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
LETHE_CUDA_CONV_VERSION=4 lethe_bench --model resnet18 --batch 256 --math-mode fp32  # 128x128 tiles
LETHE_CUDA_CONV_VERSION=5 lethe_bench --model resnet18 --batch 256 --math-mode fp32  # same, 1 block/SM
lethe_bench --model resnet18 --batch 1024 --inference true --math-mode fp32
torch_bench --model resnet18 --batch 1024 --modes fp32 --inference
# Sparse execution (issue 7): the 95%-pruned masked FT step on the sparse CUDA kernels vs the
# dense ones, one run each width (a global magnitude mask of the initial weights).
for w in 1.0 0.25; do
  lethe_bench --model resnet18 --width "$w" --batch 256 --prune-rate 0.95 --sparse on --compare-sparse true
done
python3 - "$TP" <<'PY' | tee -a "$SUMMARY"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip().startswith("{")]
def key(r): return (r.get("model"), float(r.get("width", 1.0)), r.get("mode"), r.get("task", "train_step"), r.get("batch"))
torch = {key(r): r for r in rows if r.get("framework") == "pytorch"}
for r in rows:
    if r.get("framework") != "lethe": continue
    p = torch.get(key(r))
    ratio = f"{r['images_per_s'] / p['images_per_s']:.2f}x" if p else "no PyTorch line"
    mem = f", peak memory {r.get('peak_mem_mib', 0):.0f} vs {p.get('peak_mem_mib', '?')} MiB" if p else ""
    be = f" [{r.get('conv_kernel', r.get('conv_backend'))}]"
    if "sparse_speedup" in r:
        be += (f" [{100 * r['prune_rate']:.0f}% pruned, sparse kernels {r['sparse_speedup']:.2f}x "
               f"the dense ones' {r['dense_kernels_images_per_s']:.0f} img/s]")
    wd = "" if float(r.get("width", 1.0)) == 1.0 else f" width {r['width']}"
    print(f"{r['model']}{wd} {r['mode']}{be} {r.get('task')} batch {r['batch']}: lethe {r['images_per_s']:.0f} img/s, "
          f"pytorch {p['images_per_s'] if p else float('nan'):.0f} img/s, ratio {ratio}{mem}")
PY

# 3. a short real training run (synthetic data: nothing to carry), checkpoint and eval included
t0=$(date +%s)
lbin "$(left 60)" "$B/bin/lethe" train --device cuda --dataset synthetic --epochs 2 \
  --width 0.25 --out "$OUT/train-run" > "$OUT/train.log" 2>&1
log "train --device cuda: rc $? in $(( $(date +%s) - t0 )) s; $(grep -E 'test accuracy|error|Error' "$OUT/train.log" | tail -n 2 | tr '\n' ' ')"
cat "$OUT/train-run/results.json" >> "$OUT/train.log" 2>/dev/null; rm -rf "$OUT/train-run"

# 3b. the experiment commands on the GPU, and the sparse FT epoch (issue 7): a width-1.0
# ResNet-18 trained 2 epochs on the synthetic data, OMP-pruned to 95% (rewind to epoch 1,
# 2 epochs), then `lethe unlearn --method ft` (2 epochs, data, BN and optimizer included) with
# the dense kernels and with the sparse ones; their RTEs and the ratio go to the summary.
t0=$(date +%s)
W=/tmp/lethe-cmds; rm -rf "$W"; mkdir -p "$W"
C=(--device cuda --dataset synthetic --width 1.0 --batch-size 256 --quiet true)
(
  lbin "$(left 40)" "$B/bin/lethe" train "${C[@]}" --epochs 2 --snapshot-epoch 1 --out "$W/dense" &&
  lbin "$(left 40)" "$B/bin/lethe" prune "${C[@]}" --method omp --rate 0.95 --dense "$W/dense" \
    --rewind-epoch 1 --epochs 2 --out "$W/omp" &&
  for s in off on; do
    lbin "$(left 40)" "$B/bin/lethe" unlearn --device cuda --quiet true --model "$W/omp/last.safetensors" \
      --method ft --epochs 2 --sparse "$s" --mia-variants false --out "$W/ft-$s" || exit 1
  done
) >> "$OUT/train.log" 2>&1
log "commands on cuda (train, prune, unlearn): rc $? in $(( $(date +%s) - t0 )) s"
python3 - "$W" <<'PY' 2>&1 | tee -a "$SUMMARY" >> "$OUT/train.log"
import json, sys
w = sys.argv[1]
p = json.load(open(f"{w}/omp/results.json"))
print(f"  prune omp 95% on cuda: sparsity {100 * p['metrics']['sparsity']:.2f}%, test acc {p['metrics']['test_acc_last']:.2f}%")
r = {s: json.load(open(f"{w}/ft-{s}/results.json")) for s in ("off", "on")}
for s in ("off", "on"):
    m = r[s]["metrics"]
    print(f"  unlearn ft --sparse {s}: RTE {r[s]['timings_s']['unlearn']:.2f} s, UA {m['UA']:.2f} RA {m['RA']:.2f} TA {m['TA']:.2f}")
print(f"  sparse FT (2 epochs, width 1.0, OMP 95% of a 2-epoch synthetic model) vs dense kernels: "
      f"{r['off']['timings_s']['unlearn'] / r['on']['timings_s']['unlearn']:.2f}x")
PY

# 4. memcheck on small shapes, exact-size allocations (every kernel still runs)
SANITIZER=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer \
  /usr/local/cuda*/compute-sanitizer/compute-sanitizer 2>/dev/null | head -n 1)
t0=$(date +%s)
# (the command-level tests are left out: they run the same kernels on tiny models, slowly)
LETHE_TEST_SMALL=1 LETHE_CUDA_ALLOC=exact lbin "$(left 130)" "$SANITIZER" --tool memcheck \
  --error-exitcode 9 "$B/bin/test_cuda" --gtest_filter='-CudaCommands.*' > "$OUT/sanitizer.log" 2>&1
log "memcheck: rc $? in $(( $(date +%s) - t0 )) s; $(grep -E 'ERROR SUMMARY' "$OUT/sanitizer.log" | tail -n 1)"
# 5. per-kernel GPU time of one ResNet-18 fp32 training step at batch 256 (Nsight Compute,
# one metric, the card's clocks left alone), summed per kernel in profile.txt
NCU=$(command -v ncu || ls /usr/local/cuda*/bin/ncu /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -n 1)
t0=$(date +%s)
lbin "$(left 75)" "$NCU" --clock-control none --metrics gpu__time_duration.sum --csv --page raw --print-units base \
  "$B/bin/lethe" bench --device cuda --model resnet18 --batch 256 --warmup 0 --steps 1 \
  > "$OUT/ncu.csv" 2>> "$OUT/stderr.log"
log "ncu one step: rc $? in $(( $(date +%s) - t0 )) s"
python3 - "$OUT/ncu.csv" <<'PY' > "$OUT/profile.txt" 2>&1
import csv, sys, collections
lines = open(sys.argv[1]).read().splitlines()
start = next(i for i, l in enumerate(lines) if l.startswith('"ID"'))
num = lambda v: v.replace(",", "").replace(".", "", 1).isdigit()
rows = [r for r in csv.DictReader(lines[start:]) if num(r.get("gpu__time_duration.sum", ""))]
tot = collections.defaultdict(float); cnt = collections.Counter()
for r in rows:
    name = r["Kernel Name"].split("(")[0]
    tot[name] += float(r["gpu__time_duration.sum"].replace(",", "")); cnt[name] += 1
all_ns = sum(tot.values())
print(f"{len(rows)} kernels, {all_ns / 1e6:.2f} ms GPU time in one step (batch 256; ncu, serialized)")
for name, ns in sorted(tot.items(), key=lambda kv: -kv[1]):
    print(f"{ns / 1e6:9.3f} ms {100 * ns / all_ns:5.1f}% {cnt[name]:5d}x  {name}")
PY
head -n 12 "$OUT/profile.txt" | tee -a "$SUMMARY"
grep -q " ms " "$OUT/profile.txt" || { echo "--- ncu output:"; head -c 6000 "$OUT/ncu.csv"; } >> "$OUT/profile.txt"
rm -f "$OUT/ncu.csv"

# 6. kernel benchmarks, short (Google Benchmark 1.7: --benchmark_min_time takes seconds)
: > "$OUT/bench.json"
for b in bench_conv2d_cuda bench_batchnorm_cuda bench_ops_cuda bench_conv2d_sparse_cuda bench_gemm_cuda; do
  t0=$(date +%s)
  lbin "$(left 40)" "$B/bin/$b" --benchmark_min_time=0.02 --benchmark_format=json \
    --benchmark_filter=-cuda_v1 >> "$OUT/bench.json" 2>> "$OUT/stderr.log"
  log "$b: rc $? in $(( $(date +%s) - t0 )) s"
done

exit "$tests_rc"
