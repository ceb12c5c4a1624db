#!/usr/bin/env bash
# Installs the Debian packages lethe builds and tests with, only those missing.
# Used by the README's commands and by .ci/run, so a fresh Debian 12 machine with the
# CUDA toolkit needs nothing else. Idempotent and quiet when everything is present.
set -euo pipefail

# OpenBLAS: the OpenMP build, so BLAS and lethe's own OpenMP loops share one thread pool
# instead of oversubscribing the cores (docs/design.md, "Threads").
PKGS=(cmake g++ make pkg-config libgtest-dev libgmock-dev libbenchmark-dev
      libopenblas-openmp-dev libsvm-dev nlohmann-json3-dev python3 python3-pil
      libcurl4-openssl-dev libssl-dev libarchive-dev gnuplot-nox)

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "install_deps: installing ${missing[*]}" >&2
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
