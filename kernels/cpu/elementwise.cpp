// Elementwise kernels on the CPU over flat arrays of n elements (see kernels/elementwise.h):
// relu forward/backward, add, add_relu, mul, scale, axpy, fill, mask_mul, plus the relu
// oracles. Layout does not matter here: every op is a pure map over i in [0, n).
// Threading: one OpenMP `parallel for` over i with a static schedule, switched on only
// above kParallelMin elements (below that the fork/join costs more than the loop); the loop
// bodies are branch-free selects so the compiler vectorises them (AVX-512 with
// -march=native). No __restrict: outputs may alias an input of the same position.
#include "kernels/elementwise.h"

namespace lethe::kernels {

namespace {
constexpr int64_t kParallelMin = int64_t{1} << 15;
}  // namespace

template <typename T>
void relu_forward_cpu(int64_t n, const T* x, T* y) {
  // `x < 0 ? 0 : x` rather than `x > 0 ? x : 0`: a NaN passes through (as in PyTorch), so a
  // diverging run shows up in the loss instead of being silently zeroed.
#pragma omp parallel for schedule(static) if (n >= kParallelMin)
  for (int64_t i = 0; i < n; ++i) y[i] = x[i] < T(0) ? T(0) : x[i];
}

template <typename T>
void relu_backward_cpu(int64_t n, const T* x, const T* gy, T* gx) {
#pragma omp parallel for schedule(static) if (n >= kParallelMin)
  for (int64_t i = 0; i < n; ++i) gx[i] = x[i] > T(0) ? gy[i] : T(0);
}

template <typename T>
void add_cpu(int64_t n, const T* a, const T* b, T* y) {
#pragma omp parallel for schedule(static) if (n >= kParallelMin)
  for (int64_t i = 0; i < n; ++i) y[i] = a[i] + b[i];
}

template <typename T>
void add_relu_cpu(int64_t n, const T* a, const T* b, T* y) {
#pragma omp parallel for schedule(static) if (n >= kParallelMin)
  for (int64_t i = 0; i < n; ++i) {
    const T s = a[i] + b[i];
    y[i] = s < T(0) ? T(0) : s;
  }
}

template <typename T>
void mul_cpu(int64_t n, const T* a, const T* b, T* y) {
#pragma omp parallel for schedule(static) if (n >= kParallelMin)
  for (int64_t i = 0; i < n; ++i) y[i] = a[i] * b[i];
}

template <typename T>
void scale_cpu(int64_t n, T alpha, const T* x, T* y) {
#pragma omp parallel for schedule(static) if (n >= kParallelMin)
  for (int64_t i = 0; i < n; ++i) y[i] = alpha * x[i];
}

template <typename T>
void axpy_cpu(int64_t n, T alpha, const T* x, T* y) {
#pragma omp parallel for schedule(static) if (n >= kParallelMin)
  for (int64_t i = 0; i < n; ++i) y[i] += alpha * x[i];
}

template <typename T>
void fill_cpu(int64_t n, T value, T* y) {
#pragma omp parallel for schedule(static) if (n >= kParallelMin)
  for (int64_t i = 0; i < n; ++i) y[i] = value;
}

template <typename T>
void mask_mul_cpu(int64_t n, const T* x, const uint8_t* mask, T* y) {
  // A select, not x * mask: a pruned entry becomes exactly +0 even when x is inf or NaN.
#pragma omp parallel for schedule(static) if (n >= kParallelMin)
  for (int64_t i = 0; i < n; ++i) y[i] = mask[i] ? x[i] : T(0);
}

template <typename T>
void relu_forward_ref(int64_t n, const T* x, T* y) {
  for (int64_t i = 0; i < n; ++i) {
    if (x[i] < T(0))
      y[i] = T(0);
    else
      y[i] = x[i];
  }
}

template <typename T>
void relu_backward_ref(int64_t n, const T* x, const T* gy, T* gx) {
  for (int64_t i = 0; i < n; ++i) {
    if (x[i] > T(0))
      gx[i] = gy[i];
    else
      gx[i] = T(0);
  }
}

#define LETHE_INSTANTIATE(T)                                                 \
  template void relu_forward_cpu<T>(int64_t, const T*, T*);                  \
  template void relu_backward_cpu<T>(int64_t, const T*, const T*, T*);       \
  template void add_cpu<T>(int64_t, const T*, const T*, T*);                 \
  template void add_relu_cpu<T>(int64_t, const T*, const T*, T*);            \
  template void mul_cpu<T>(int64_t, const T*, const T*, T*);                 \
  template void scale_cpu<T>(int64_t, T, const T*, T*);                      \
  template void axpy_cpu<T>(int64_t, T, const T*, T*);                       \
  template void fill_cpu<T>(int64_t, T, T*);                                 \
  template void mask_mul_cpu<T>(int64_t, const T*, const uint8_t*, T*);      \
  template void relu_forward_ref<T>(int64_t, const T*, T*);                  \
  template void relu_backward_ref<T>(int64_t, const T*, const T*, T*);
LETHE_INSTANTIATE(float)
LETHE_INSTANTIATE(double)
#undef LETHE_INSTANTIATE

}  // namespace lethe::kernels
