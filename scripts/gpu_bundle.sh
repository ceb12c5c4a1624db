#!/usr/bin/env bash
# Prepares what the GPU machine needs, on a development machine (no GPU needed): builds the
# CUDA binaries for sm_90 in their own folder (BUILD, default build-gpu) without -march=native
# (the GPU machine's CPU is not this one), and packs them stripped into gpu_bundle/
# (git-ignored) with the shared libraries they need that the GPU machine may lack (libsvm,
# Google Benchmark, curl, ...; not glibc, libstdc++, the CUDA toolkit's or OpenBLAS, which it
# has) and the PyTorch baseline. Then, with the device tool:
#   run  command: "bash scripts/gpu_check.sh"   carry: ["gpu_bundle"]   timeout_s: 540
# The GPU machine (Ubuntu 24.04, CUDA 13.0 toolkit, no network) runs them unchanged
# (../shared/docs/GPU.md). A full build takes ~15 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build-gpu}
OUTDIR=gpu_bundle
TARGETS="lethe test_cuda bench_gemm_cuda bench_conv2d_cuda bench_batchnorm_cuda bench_ops_cuda bench_conv2d_sparse_cuda"

cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 \
  -DLETHE_NATIVE=OFF -DLETHE_WERROR=ON >/dev/null
grep -q "^CMAKE_CUDA_COMPILER:.*nvcc" "$BUILD/CMakeCache.txt" ||
  { echo "gpu_bundle: $BUILD was configured without CUDA (no nvcc?)" >&2; exit 1; }
grep -Eq "^CMAKE_CUDA_ARCHITECTURES:[A-Z]+=90$" "$BUILD/CMakeCache.txt" ||
  { echo "gpu_bundle: $BUILD does not target sm_90" >&2; exit 1; }
# shellcheck disable=SC2086
cmake --build "$BUILD" -j "${JOBS:-$(nproc)}" --target $TARGETS

rm -rf "$OUTDIR"
mkdir -p "$OUTDIR/bin" "$OUTDIR/lib"
for t in $TARGETS; do
  f=$(find "$BUILD" -type f -name "$t" -perm -u+x | head -n 1)
  [ -n "$f" ] || { echo "gpu_bundle: $t was not built" >&2; exit 1; }
  cp "$f" "$OUTDIR/bin/$t"
  strip "$OUTDIR/bin/$t"
  # Libraries outside glibc, libstdc++, the CUDA toolkit and OpenBLAS (the GPU machine has
  # those, in newer versions that must not be shadowed).
  ldd "$f" | awk '/=> \// {print $3}' |
    grep -Ev '/(libc|libm|libdl|librt|libpthread|libresolv|libmvec|libanl|libnsl|libutil|libcrypt|libstdc\+\+|libgcc_s|ld-linux[^/]*|libcuda|libcudart|libcublas[^/]*|libcudnn[^/]*|libcusparse|libnvJitLink|libopenblas|libgfortran|libquadmath)\.so' |
    while read -r lib; do cp -Ln "$lib" "$OUTDIR/lib/" 2>/dev/null || true; done
done
# OpenBLAS (and the Fortran run time it needs) should be on the GPU machine; these copies
# are used there only if its loader cannot find them (gpu_check.sh decides).
mkdir -p "$OUTDIR/fallback"
ldd "$BUILD/lethe" | awk '/=> \// {print $3}' | grep -E '/lib(openblas|gfortran|quadmath)\.so' |
  while read -r lib; do cp -L "$lib" "$OUTDIR/fallback/"; done
tar -cJf "$OUTDIR/fallback.tar.xz" -C "$OUTDIR" fallback
rm -rf "$OUTDIR/fallback"
cp ../shared/bench/pytorch_baseline.py "$OUTDIR/"
# The libraries travel compressed (the device tool carries 64 MiB in all); gpu_check.sh
# unpacks them there.
tar -cJf "$OUTDIR/lib.tar.xz" -C "$OUTDIR" lib
rm -rf "$OUTDIR/lib"
git describe --always --dirty > "$OUTDIR/commit.txt"
du -sh "$OUTDIR"
