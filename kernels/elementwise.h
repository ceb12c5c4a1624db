// Elementwise family over flat arrays of n elements (shapes are checked above this layer).
//   relu:      y = max(x, 0); backward gx = gy * (x > 0)   (gradient 0 at x == 0, as PyTorch)
//   add:       y = a + b;     mul: y = a * b;     scale: y = alpha * x
//   axpy:      y += alpha * x (gradient accumulation)
//   add_relu:  y = max(a + b, 0)  (the residual join of a BasicBlock, one pass)
// Outputs may alias an input of the same position (in-place use is allowed).
#pragma once

#include <cstdint>

#include "kernels/cuda_exec.h"

namespace lethe::kernels {

template <typename T> void relu_forward_cpu(int64_t n, const T* x, T* y);
// x: the forward input (or output: the sign test is the same)
template <typename T> void relu_backward_cpu(int64_t n, const T* x, const T* gy, T* gx);
template <typename T> void add_cpu(int64_t n, const T* a, const T* b, T* y);
template <typename T> void add_relu_cpu(int64_t n, const T* a, const T* b, T* y);
template <typename T> void mul_cpu(int64_t n, const T* a, const T* b, T* y);
template <typename T> void scale_cpu(int64_t n, T alpha, const T* x, T* y);
template <typename T> void axpy_cpu(int64_t n, T alpha, const T* x, T* y);
template <typename T> void fill_cpu(int64_t n, T value, T* y);
// y = x * mask (mask 0/1 bytes): applying a pruning mask
template <typename T> void mask_mul_cpu(int64_t n, const T* x, const uint8_t* mask, T* y);

template <typename T> void relu_forward_ref(int64_t n, const T* x, T* y);
template <typename T> void relu_backward_ref(int64_t n, const T* x, const T* gy, T* gx);

// ---- CUDA (kernels/cuda/elementwise.cu): float32, device pointers ----
// The same formulas and in-place rules, bit-identical to the CPU fast path (axpy is one fused
// multiply-add, y = fma(alpha, x, y), as GCC contracts the CPU loop). Versions (e.version):
// 1 "scalar" grid-stride loop, 2 "vec4" (default) float4 loads/stores; v2 falls back to v1
// when the float pointers are misaligned differently modulo 16 bytes.
void relu_forward_cuda(int64_t n, const float* x, float* y, const CudaExec& e = {});
void relu_backward_cuda(int64_t n, const float* x, const float* gy, float* gx,
                        const CudaExec& e = {});
void add_cuda(int64_t n, const float* a, const float* b, float* y, const CudaExec& e = {});
void add_relu_cuda(int64_t n, const float* a, const float* b, float* y, const CudaExec& e = {});
void mul_cuda(int64_t n, const float* a, const float* b, float* y, const CudaExec& e = {});
void scale_cuda(int64_t n, float alpha, const float* x, float* y, const CudaExec& e = {});
void axpy_cuda(int64_t n, float alpha, const float* x, float* y, const CudaExec& e = {});
void fill_cuda(int64_t n, float value, float* y, const CudaExec& e = {});
/// @param mask n bytes on the device (0 = pruned)
void mask_mul_cuda(int64_t n, const float* x, const uint8_t* mask, float* y,
                   const CudaExec& e = {});

/// Number of CUDA kernel versions of this family (valid e.version: 0 = default, 1..N).
int elementwise_cuda_versions();
/// Short name of version v in 1..N ("scalar", "vec4"), for test and benchmark names.
const char* elementwise_cuda_version_name(int v);

}  // namespace lethe::kernels
