#!/usr/bin/env bash
# Fuzzes every reader of outside bytes (CIFAR binaries, safetensors checkpoints, config files,
# forget index lists) with libFuzzer + ASan/UBSan, each for a bounded time (docs/hardening.md).
#   scripts/fuzz.sh                      # every target, 600 s each, as many at once as cores
#   FUZZ_SECONDS=60 scripts/fuzz.sh cifar config
# Needs clang (installed here when missing). Builds in build-fuzz/. Each target starts from
# tests/fuzz/corpus/<t>/ and grows build-fuzz/corpus/<t>/; a crashing input lands in
# build-fuzz/findings/<t>/. Fix the reader, then commit the input as
# tests/fuzz/corpus/<t>/regression-<what> so ctest FuzzReplay.<t> keeps it fixed.
# Exit status: 0 when no target found anything.
set -euo pipefail
cd "$(dirname "$0")/.."

PKGS=(clang libclang-rt-14-dev libomp-dev)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
scripts/install_deps.sh

SECONDS_EACH=${FUZZ_SECONDS:-600}
JOBS=${FUZZ_JOBS:-$(nproc)}
BUILD=${FUZZ_BUILD_DIR:-build-fuzz}
TARGETS=("$@")
[ ${#TARGETS[@]} -eq 0 ] && TARGETS=(cifar safetensors config index_list)

cmake -S . -B "$BUILD" -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLETHE_FUZZ=ON -DLETHE_ENABLE_CUDA=OFF \
  -DLETHE_BUILD_BENCH=OFF >/dev/null
cmake --build "$BUILD" -j "$(nproc)" --target "${TARGETS[@]/#/fuzz_}"

export OMP_NUM_THREADS=1  # one core per fuzzer; the readers are single-threaded anyway
# Leak checking stays on: a reader that leaks on a rejected file is a finding too.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

run_one() {
  local t=$1
  mkdir -p "$BUILD/corpus/$t" "$BUILD/findings/$t"
  echo "fuzz: $t for ${SECONDS_EACH}s (log $BUILD/fuzz-$t.log)"
  # -max_len 8192: room for two CIFAR records (3073 bytes each) and a small checkpoint.
  if "$BUILD/tests/fuzz/fuzz_$t" "$BUILD/corpus/$t" "tests/fuzz/corpus/$t" \
       -max_total_time="$SECONDS_EACH" -max_len=8192 -timeout=10 -rss_limit_mb=4096 \
       -artifact_prefix="$BUILD/findings/$t/" -print_final_stats=1 >"$BUILD/fuzz-$t.log" 2>&1; then
    echo "fuzz: $t clean: $(grep -E 'stat::number_of_executed_units' "$BUILD/fuzz-$t.log" | awk '{print $2}') runs"
  else
    echo "fuzz: $t FOUND A PROBLEM: see $BUILD/fuzz-$t.log and $BUILD/findings/$t/"
    return 1
  fi
}

status=0
pids=()
for t in "${TARGETS[@]}"; do
  run_one "$t" & pids+=($!)
  if [ ${#pids[@]} -ge "$JOBS" ]; then
    wait "${pids[0]}" || status=1
    pids=("${pids[@]:1}")
  fi
done
for p in "${pids[@]}"; do wait "$p" || status=1; done
exit $status
