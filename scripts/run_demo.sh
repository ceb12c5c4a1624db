#!/usr/bin/env bash
# The main job: installs the dependencies, builds lethe and runs the `demo` pipeline end to end
# (train dense -> OMP 95% -> unlearn class 0 with retrain / FT / GA / l1-sparse on the dense and
# the sparse model -> evaluate), then prints the results table. The demo uses the first 10,000
# CIFAR-10 training images; without any CIFAR-10 data it falls back to the synthetic data set
# and says so. Extra arguments go to `lethe pipeline` (e.g. --out DIR). Re-running resumes.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install_deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j "$(nproc)" --target lethe
# The offline copy of CIFAR-10 shipped beside the repository, unpacked once.
if [ -d ../shared/data/cifar10 ] && [ ! -e data_cache/cifar10 ]; then
  /usr/bin/python3 ../shared/data/cifar10/unpack.py data_cache/cifar10
fi
out=runs/demo
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
  if [ "${args[$i]}" = "--out" ] && [ $((i + 1)) -lt ${#args[@]} ]; then out="${args[$((i + 1))]}"; fi
done
build/lethe pipeline --preset demo --out "$out" "$@" >/dev/null
cat "$out/results.md"
if [ -f "$out/results.png" ]; then echo "picture: $out/results.png"; fi
