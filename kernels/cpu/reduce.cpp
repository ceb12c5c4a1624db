// Reductions on the CPU over flat arrays (see kernels/reduce.h): sum, abs_sum (the L1 norm
// that l1-sparse unlearning adds to its loss), sign_axpy (its subgradient step), and the
// sequential sum oracle.
// Determinism: the array is cut into fixed chunks of kChunk elements, independent of the
// thread count; each chunk is summed in double by one thread (an `omp simd` reduction, whose
// lane order is fixed at compile time), and the chunk partials are then added in chunk
// order by one thread. No atomics, no dynamic scheduling, so the result is bit-identical
// from call to call, and even across thread counts. It may differ from the sequential
// sum_ref in the last bits (a different association), which the tests allow for.
#include "kernels/reduce.h"

#include <cmath>
#include <vector>

namespace lethe::kernels {

namespace {
constexpr int64_t kChunk = int64_t{1} << 14;
constexpr int64_t kParallelMin = int64_t{1} << 15;

// Sums f(x[i]) over [0, n) in double with the fixed chunking above.
template <typename T, typename F>
double chunked_sum(int64_t n, const T* x, F f) {
  if (n <= 0) return 0.0;
  const int64_t chunks = (n + kChunk - 1) / kChunk;
  std::vector<double> partial(static_cast<size_t>(chunks));
#pragma omp parallel for schedule(static) if (chunks > 1)
  for (int64_t c = 0; c < chunks; ++c) {
    const int64_t begin = c * kChunk, end = begin + kChunk < n ? begin + kChunk : n;
    double s = 0.0;
#pragma omp simd reduction(+ : s)
    for (int64_t i = begin; i < end; ++i) s += f(static_cast<double>(x[i]));
    partial[static_cast<size_t>(c)] = s;
  }
  double total = 0.0;
  for (double p : partial) total += p;
  return total;
}
}  // namespace

template <typename T>
double sum_cpu(int64_t n, const T* x) {
  return chunked_sum(n, x, [](double v) { return v; });
}

template <typename T>
double abs_sum_cpu(int64_t n, const T* x) {
  return chunked_sum(n, x, [](double v) { return std::fabs(v); });
}

template <typename T>
void sign_axpy_cpu(int64_t n, T alpha, const T* x, T* y) {
  // sign as (x > 0) - (x < 0): 0 at x == 0 (and at NaN), branch-free so it vectorises.
#pragma omp parallel for schedule(static) if (n >= kParallelMin)
  for (int64_t i = 0; i < n; ++i) {
    const T sign = static_cast<T>(x[i] > T(0)) - static_cast<T>(x[i] < T(0));
    y[i] += alpha * sign;
  }
}

template <typename T>
double sum_ref(int64_t n, const T* x) {
  double s = 0.0;
  for (int64_t i = 0; i < n; ++i) s += static_cast<double>(x[i]);
  return s;
}

#define LETHE_INSTANTIATE(T)                                       \
  template double sum_cpu<T>(int64_t, const T*);                   \
  template double abs_sum_cpu<T>(int64_t, const T*);               \
  template void sign_axpy_cpu<T>(int64_t, T, const T*, T*);        \
  template double sum_ref<T>(int64_t, const T*);
LETHE_INSTANTIATE(float)
LETHE_INSTANTIATE(double)
#undef LETHE_INSTANTIATE

}  // namespace lethe::kernels
