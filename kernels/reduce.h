// Reductions over flat arrays. Sums accumulate in double and in a fixed order per thread
// count, so a seeded CPU run is bit-for-bit repeatable on the same machine.
//   sum:  sum x        abs_sum (L1 norm): sum |x|
//   sign: y = sign(x) with sign(0) = 0 (the subgradient of |x| that l1-sparse uses)
#pragma once

#include <cstdint>

#include "kernels/cuda_exec.h"

namespace lethe::kernels {

template <typename T> double sum_cpu(int64_t n, const T* x);
template <typename T> double abs_sum_cpu(int64_t n, const T* x);
// y += alpha * sign(x)
template <typename T> void sign_axpy_cpu(int64_t n, T alpha, const T* x, T* y);

template <typename T> double sum_ref(int64_t n, const T* x);

// ---- CUDA (kernels/cuda/reduce.cu): float32, device pointers ----
// sum and abs_sum return the value to the host: they wait for e.stream. Deterministic: a
// fixed two-level tree in double that depends only on n (no atomics), so repeated calls give
// the same bits. They use a small device scratch allocated once per process and device on
// first use and never freed (no cudaMalloc per call); concurrent callers are serialised.
double sum_cuda(int64_t n, const float* x, const CudaExec& e = {});
double abs_sum_cuda(int64_t n, const float* x, const CudaExec& e = {});
void sign_axpy_cuda(int64_t n, float alpha, const float* x, float* y, const CudaExec& e = {});

}  // namespace lethe::kernels
