// linear family: y[n,o] = sum_i x[n,i] * w[o,i] + b[o]   (PyTorch's layout, w: O x I).
//   backward: gx = gy * w (overwrites), gw = gy^T * x (overwrites), gb = column sums of gy.
// Any of gx / gw / gb may be nullptr when that gradient is not needed.
#pragma once

#include <cstdint>

namespace lethe::kernels {

// x: N*I, w: O*I, b: O or nullptr, y: N*O
template <typename T>
void linear_forward_cpu(int64_t N, int64_t I, int64_t O, const T* x, const T* w, const T* b, T* y);
// gy: N*O; gx: N*I, gw: O*I, gb: O (each nullable)
template <typename T>
void linear_backward_cpu(int64_t N, int64_t I, int64_t O, const T* x, const T* w, const T* gy,
                         T* gx, T* gw, T* gb);

template <typename T>
void linear_forward_ref(int64_t N, int64_t I, int64_t O, const T* x, const T* w, const T* b, T* y);
template <typename T>
void linear_backward_ref(int64_t N, int64_t I, int64_t O, const T* x, const T* w, const T* gy,
                         T* gx, T* gw, T* gb);

}  // namespace lethe::kernels

// ---- CUDA (kernels/cuda/linear.cu): float32, device pointers ----
#include "kernels/cuda_exec.h"

namespace lethe::kernels {

/// linear_forward_cpu on the GPU (device pointers, enqueued on e.stream). The product is one
/// gemm_cuda call that receives e unchanged, so e.version and e.math pick the GEMM version.
// x: N*I, w: O*I, b: O or nullptr, y: N*O
void linear_forward_cuda(int64_t N, int64_t I, int64_t O, const float* x, const float* w,
                         const float* b, float* y, const CudaExec& e = {});
/// linear_backward_cpu on the GPU: gx and gw through gemm_cuda (e passed on), gb a
/// deterministic column sum of gy (fixed order, no atomics). Every output is overwritten.
// gy: N*O; gx: N*I, gw: O*I, gb: O (each nullable)
void linear_backward_cuda(int64_t N, int64_t I, int64_t O, const float* x, const float* w,
                          const float* gy, float* gx, float* gw, float* gb,
                          const CudaExec& e = {});

}  // namespace lethe::kernels
