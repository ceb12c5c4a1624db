// Reductions over flat arrays. Sums accumulate in double and in a fixed order per thread
// count, so a seeded CPU run is bit-for-bit repeatable on the same machine.
//   sum:  sum x        abs_sum (L1 norm): sum |x|
//   sign: y = sign(x) with sign(0) = 0 (the subgradient of |x| that l1-sparse uses)
#pragma once

#include <cstdint>

namespace lethe::kernels {

template <typename T> double sum_cpu(int64_t n, const T* x);
template <typename T> double abs_sum_cpu(int64_t n, const T* x);
// y += alpha * sign(x)
template <typename T> void sign_axpy_cpu(int64_t n, T alpha, const T* x, T* y);

template <typename T> double sum_ref(int64_t n, const T* x);

}  // namespace lethe::kernels
