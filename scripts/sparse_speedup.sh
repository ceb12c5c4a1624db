#!/usr/bin/env bash
# The sparse-vs-dense-kernels ratio of the masked training step, repeated: `lethe bench
# --compare-sparse true` times --sparse off then --sparse auto in one run; a shared VM's noise
# moves one run's ratio by +-10%, so this runs it RUNS times and prints each ratio and the median.
#   scripts/sparse_speedup.sh [RUNS] [lethe bench flags...]
# e.g. scripts/sparse_speedup.sh 5 --width 1.0 --batch 64 --steps 8 --prune-rate 0.95
# Environment: LETHE (default build/lethe).
set -euo pipefail
runs=${1:-5}
shift || true
lethe=${LETHE:-build/lethe}
[[ -x "$lethe" ]] || { echo "sparse_speedup.sh: $lethe is not an executable; build it first" >&2; exit 1; }
[[ "$runs" =~ ^[1-9][0-9]*$ ]] || { echo "sparse_speedup.sh: RUNS must be a positive integer, not '$runs'" >&2; exit 1; }
ratios=()
for ((i = 1; i <= runs; i++)); do
  line=$("$lethe" bench "$@" --compare-sparse true 2>/dev/null | grep '"sparse_speedup"')
  python3 -c 'import json,sys; d=json.loads(sys.argv[2])
print("run %s: ratio %.3f (dense kernels %.1f, sparse %.1f images/s)" % (sys.argv[1], d["sparse_speedup"], d["dense_kernels_images_per_s"], d["images_per_s"]))' "$i" "$line"
  ratios+=("$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["sparse_speedup"])' "$line")")
done
printf '%s\n' "${ratios[@]}" | sort -n | python3 -c 'import sys; v=[float(x) for x in sys.stdin]; n=len(v); m=v[n//2] if n%2 else (v[n//2-1]+v[n//2])/2; print("median ratio %.2fx over %d runs (min %.2fx, max %.2fx)" % (m, n, v[0], v[-1]))'
