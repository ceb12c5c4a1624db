// Division by a run-time-invariant divisor as a multiply-high and a shift, for CUDA kernels'
// index arithmetic (kernels/cuda/conv2d_internal.cuh); also compiles as plain C++ so the host
// tests can check it.
#pragma once

#if defined(__CUDACC__)
#define LETHE_HD __host__ __device__
#else
#define LETHE_HD
#endif

namespace lethe::kernels {

/// n / d and n % d for 0 <= n < 2^31 by a divisor d >= 1 fixed for a launch: a multiply-high,
/// an add and a shift instead of the ~20-instruction sequence a division by a run-time int
/// compiles to (Granlund & Montgomery, "Division by invariant integers using multiplication",
/// PLDI 1994, figure 4.1, with N = 32): l = ceil(log2 d), m = floor(2^32 (2^l - d) / d) + 1,
/// q = (mulhi(m, n) + n) >> l (no overflow: mulhi(m, n) <= n < 2^31). The implicit-GEMM
/// descriptions decode a GEMM index into (channel, tap) or (image, row, column) once per
/// staged element. On the H100 (2026-11-27) backward-data took 0.96 ms where forward took
/// 0.77 for the same GEMM; two run-time divisions more per staging step are the suspected
/// cause (this change is not yet measured there). tests/kernels/test_fastdiv.cpp checks it
/// on the host (the device path differs only in using the __umulhi intrinsic).
struct FastDiv {
  unsigned d = 1, m = 1, l = 0;
  FastDiv() = default;
  LETHE_HD explicit FastDiv(int divisor) : d(static_cast<unsigned>(divisor)) {
    l = 0;
    while ((1ull << l) < d) ++l;
    m = static_cast<unsigned>((((1ull << l) - d) << 32) / d + 1);
  }
  LETHE_HD int div(int n) const {
#ifdef __CUDA_ARCH__
    const unsigned hi = __umulhi(m, static_cast<unsigned>(n));
#else
    const unsigned hi = static_cast<unsigned>((static_cast<unsigned long long>(m) *
                                               static_cast<unsigned>(n)) >> 32);
#endif
    return static_cast<int>((hi + static_cast<unsigned>(n)) >> l);
  }
  LETHE_HD int divisor() const { return static_cast<int>(d); }
};

}  // namespace lethe::kernels
