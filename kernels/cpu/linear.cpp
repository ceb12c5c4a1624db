// linear on the CPU (kernels/linear.h): y = x w^T + b with x N x I, w O x I (PyTorch's
// layout), y N x O, all row-major. Every product is one GEMM through gemm_cpu (OpenBLAS,
// which threads itself):
//   forward:  y  (N x O) = x (N x I) * w^T (I x O)        (y pre-filled with b, beta = 1)
//   backward: gx (N x I) = gy (N x O) * w (O x I)
//             gw (O x I) = gy^T (O x N) * x (N x I)
//             gb (O)     = column sums of gy, summed over n in order (deterministic)
// Every output is overwritten. *_ref are the same formulas as plain loops in double, the
// oracles for tests/kernels/test_linear.cpp.
#include <algorithm>
#include <cstdint>

#include "kernels/check.h"
#include "kernels/gemm.h"
#include "kernels/linear.h"

namespace lethe::kernels {

namespace {

void check_linear(int64_t N, int64_t I, int64_t O, const char* op) {
  LETHE_CHECK(N >= 0 && I >= 0 && O >= 0, op, ": bad shape N=", N, " I=", I, " O=", O);
}

}  // namespace

template <typename T>
void linear_forward_cpu(int64_t N, int64_t I, int64_t O, const T* x, const T* w, const T* b,
                        T* y) {
  check_linear(N, I, O, "linear_forward_cpu");
  if (N == 0 || O == 0) return;
  if (I == 0) {  // an empty sum: y is the bias alone
    for (int64_t n = 0; n < N; ++n)
      for (int64_t o = 0; o < O; ++o) y[n * O + o] = b != nullptr ? b[o] : T(0);
    return;
  }
  // With a bias, broadcast it into y first and let the GEMM add onto it (beta = 1): one pass
  // over y instead of a GEMM pass plus a bias pass.
  if (b != nullptr)
    for (int64_t n = 0; n < N; ++n) std::copy(b, b + O, y + n * O);
  gemm_cpu<T>(false, true, N, O, I, T(1), x, I, w, I, b != nullptr ? T(1) : T(0), y, O);
}

template <typename T>
void linear_backward_cpu(int64_t N, int64_t I, int64_t O, const T* x, const T* w, const T* gy,
                         T* gx, T* gw, T* gb) {
  check_linear(N, I, O, "linear_backward_cpu");
  // The GEMMs' inner dimension may be 0 (O == 0 for gx, N == 0 for gw): the result is then
  // zero, which is written explicitly rather than trusting BLAS with an empty sum.
  if (gx != nullptr && N * I > 0) {
    if (O == 0)
      std::fill(gx, gx + N * I, T(0));
    else
      gemm_cpu<T>(false, false, N, I, O, T(1), gy, O, w, I, T(0), gx, I);
  }
  if (gw != nullptr && O * I > 0) {
    if (N == 0)
      std::fill(gw, gw + O * I, T(0));
    else
      gemm_cpu<T>(true, false, O, I, N, T(1), gy, O, x, I, T(0), gw, I);
  }
  if (gb != nullptr) {
    // Row by row, so the inner loop runs along contiguous memory and vectorises.
    std::fill(gb, gb + O, T(0));
    for (int64_t n = 0; n < N; ++n)
      for (int64_t o = 0; o < O; ++o) gb[o] += gy[n * O + o];
  }
}

template <typename T>
void linear_forward_ref(int64_t N, int64_t I, int64_t O, const T* x, const T* w, const T* b,
                        T* y) {
  check_linear(N, I, O, "linear_forward_ref");
  for (int64_t n = 0; n < N; ++n)
    for (int64_t o = 0; o < O; ++o) {
      double acc = b != nullptr ? static_cast<double>(b[o]) : 0.0;
      for (int64_t i = 0; i < I; ++i)
        acc += static_cast<double>(x[n * I + i]) * static_cast<double>(w[o * I + i]);
      y[n * O + o] = static_cast<T>(acc);
    }
}

template <typename T>
void linear_backward_ref(int64_t N, int64_t I, int64_t O, const T* x, const T* w, const T* gy,
                         T* gx, T* gw, T* gb) {
  check_linear(N, I, O, "linear_backward_ref");
  if (gx != nullptr)
    for (int64_t n = 0; n < N; ++n)
      for (int64_t i = 0; i < I; ++i) {
        double acc = 0.0;
        for (int64_t o = 0; o < O; ++o)
          acc += static_cast<double>(gy[n * O + o]) * static_cast<double>(w[o * I + i]);
        gx[n * I + i] = static_cast<T>(acc);
      }
  if (gw != nullptr)
    for (int64_t o = 0; o < O; ++o)
      for (int64_t i = 0; i < I; ++i) {
        double acc = 0.0;
        for (int64_t n = 0; n < N; ++n)
          acc += static_cast<double>(gy[n * O + o]) * static_cast<double>(x[n * I + i]);
        gw[o * I + i] = static_cast<T>(acc);
      }
  if (gb != nullptr)
    for (int64_t o = 0; o < O; ++o) {
      double acc = 0.0;
      for (int64_t n = 0; n < N; ++n) acc += static_cast<double>(gy[n * O + o]);
      gb[o] = static_cast<T>(acc);
    }
}

#define LETHE_LINEAR(T)                                                                      \
  template void linear_forward_cpu<T>(int64_t, int64_t, int64_t, const T*, const T*,         \
                                      const T*, T*);                                         \
  template void linear_backward_cpu<T>(int64_t, int64_t, int64_t, const T*, const T*,        \
                                       const T*, T*, T*, T*);                                \
  template void linear_forward_ref<T>(int64_t, int64_t, int64_t, const T*, const T*,         \
                                      const T*, T*);                                         \
  template void linear_backward_ref<T>(int64_t, int64_t, int64_t, const T*, const T*,        \
                                       const T*, T*, T*, T*);
LETHE_LINEAR(float)
LETHE_LINEAR(double)
#undef LETHE_LINEAR

}  // namespace lethe::kernels
