// Elementwise family over flat arrays of n elements (shapes are checked above this layer).
//   relu:      y = max(x, 0); backward gx = gy * (x > 0)   (gradient 0 at x == 0, as PyTorch)
//   add:       y = a + b;     mul: y = a * b;     scale: y = alpha * x
//   axpy:      y += alpha * x (gradient accumulation)
//   add_relu:  y = max(a + b, 0)  (the residual join of a BasicBlock, one pass)
// Outputs may alias an input of the same position (in-place use is allowed).
#pragma once

#include <cstdint>

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

}  // namespace lethe::kernels
