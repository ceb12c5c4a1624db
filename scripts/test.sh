#!/usr/bin/env bash
# The test command: installs missing Debian packages, configures, builds everything
# (library, tests, benchmarks) and runs the whole CTest suite, ending with ctest's summary.
#   scripts/test.sh                 # build in ./build, run all tests (cuda ones skip without a GPU)
#   BUILD_DIR=b LETHE_CMAKE_ARGS="-DLETHE_ENABLE_CUDA=OFF" scripts/test.sh
#   CTEST_ARGS="-L cpu" scripts/test.sh
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
