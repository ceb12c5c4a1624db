#!/usr/bin/env bash
# Prepares what the GPU machine needs, on a development machine (no GPU needed): builds the
# CUDA binaries for sm_90 in BUILD (default build/), and copies them stripped, with the
# shared libraries they need that the GPU machine may lack (libsvm, Google Benchmark, ...;
# not glibc/libstdc++, the CUDA toolkit's or OpenBLAS, which it has) and the PyTorch baseline into
# gpu_bundle/ (git-ignored). Then, with the device tool:
#   run  command: "bash scripts/gpu_check.sh"   carry: ["gpu_bundle"]
# The GPU machine (Ubuntu 24.04, CUDA 13.0 toolkit, no network) runs them unchanged
# (../shared/docs/GPU.md); its cuBLAS/cuDNN come from its own /usr/local/cuda.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
OUTDIR=gpu_bundle
TARGETS="lethe test_cuda bench_gemm_cuda bench_conv2d_cuda bench_batchnorm_cuda bench_ops_cuda"

if [ ! -f "$BUILD/CMakeCache.txt" ]; then
  cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90
fi
grep -q "^CMAKE_CUDA_COMPILER:.*nvcc" "$BUILD/CMakeCache.txt" ||
  { echo "gpu_bundle: $BUILD was configured without CUDA (no nvcc?)" >&2; exit 1; }
# shellcheck disable=SC2086
cmake --build "$BUILD" -j "${JOBS:-$(nproc)}" --target $TARGETS

rm -rf "$OUTDIR"
mkdir -p "$OUTDIR/bin" "$OUTDIR/lib"
for t in $TARGETS; do
  f=$(find "$BUILD" -type f -name "$t" -perm -u+x | head -n 1)
  [ -n "$f" ] || { echo "gpu_bundle: $t was not built" >&2; exit 1; }
  cp "$f" "$OUTDIR/bin/$t"
  strip "$OUTDIR/bin/$t"
  # Libraries outside the base system and the CUDA toolkit (the GPU machine has those).
  ldd "$f" | awk '/=> \// {print $3}' |
    grep -Ev '/(libc|libm|libdl|librt|libpthread|libstdc\+\+|libgcc_s|ld-linux[^/]*|libcuda|libcudart|libcublas[^/]*|libcudnn[^/]*|libcusparse|libnvJitLink|libopenblas|libgfortran|libquadmath)\.so' |
    while read -r lib; do cp -Ln "$lib" "$OUTDIR/lib/" 2>/dev/null || true; done
done
cp ../shared/bench/pytorch_baseline.py "$OUTDIR/"
# The libraries travel compressed (the device tool carries 64 MiB in all); gpu_check.sh
# unpacks them there.
tar -cJf "$OUTDIR/lib.tar.xz" -C "$OUTDIR" lib
rm -rf "$OUTDIR/lib"
git rev-parse --short HEAD > "$OUTDIR/commit.txt"
du -sh "$OUTDIR"
