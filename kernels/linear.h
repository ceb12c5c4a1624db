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
