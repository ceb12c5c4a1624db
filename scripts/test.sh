#!/usr/bin/env bash
# The test command: installs missing Debian packages, configures, builds everything
# (library, tests, benchmarks) and runs the whole CTest suite; then builds the CPU code once
# more with AddressSanitizer + UndefinedBehaviorSanitizer and runs the `cpu` tests again
# (docs/hardening.md). Ends with ctest's summary.
#   scripts/test.sh                 # build in ./build (+ ./build-asan), run all tests
#   BUILD_DIR=b LETHE_CMAKE_ARGS="-DLETHE_ENABLE_CUDA=OFF" scripts/test.sh
#   CTEST_ARGS="-L cpu" scripts/test.sh
#   LETHE_SANITIZERS=0 scripts/test.sh   # skip the sanitizer pass (about half the time)
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install_deps.sh

BUILD_DIR=${BUILD_DIR:-build}
JOBS=${JOBS:-$(nproc)}
# shellcheck disable=SC2086  # LETHE_CMAKE_ARGS is a list of flags
cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release -DLETHE_WERROR=ON ${LETHE_CMAKE_ARGS:-}
cmake --build "$BUILD_DIR" -j "$JOBS"
# The kernels use OpenMP; one thread per core, no oversubscription with OpenBLAS.
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-$(nproc)}
# shellcheck disable=SC2086
ctest --test-dir "$BUILD_DIR" --output-on-failure -j 1 ${CTEST_ARGS:-}

if [ "${LETHE_SANITIZERS:-1}" != "0" ]; then
  # A separate CPU-only build: -O1 keeps ASan's reports exact and compiles fast; no -g (the
  # reports still name functions), no benchmarks. Any report fails the test that caused it.
  ASAN_DIR=${ASAN_BUILD_DIR:-build-asan}
  cmake -S . -B "$ASAN_DIR" -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_FLAGS_RELEASE=-O1 \
    -DLETHE_SANITIZE=ON -DLETHE_ENABLE_CUDA=OFF -DLETHE_BUILD_BENCH=OFF -DLETHE_WERROR=ON
  cmake --build "$ASAN_DIR" -j "$JOBS"
  export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:strict_string_checks=1}
  export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
  echo "== the cpu tests again under AddressSanitizer + UndefinedBehaviorSanitizer =="
  # CrashResume kills and restarts the binary (process behaviour, not memory): the pass
  # above runs it; here it would cost 3 minutes of sanitizer slowdown for nothing new.
  ctest --test-dir "$ASAN_DIR" --output-on-failure -j 1 -L cpu -E '^CrashResume\.'
fi
