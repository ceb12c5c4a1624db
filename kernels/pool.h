// Pooling family over NCHW, window RxS (here `kernel` x `kernel`), stride, zero-size padding
// `pad` (PyTorch semantics: max pooling ignores padded positions; average pooling counts
// them, count_include_pad = true). Output P = (H + 2*pad - kernel)/stride + 1, same for Q.
//   max:  y = max over the window, argmax[n,c,p,q] = h*W + w of the winner (first one on ties)
//         backward: gx[argmax] += gy (overwrites gx first)
//   avg:  y = sum over the window / kernel^2; backward spreads gy/kernel^2 back
//   global average: y[n,c] = mean over H*W; backward gx = gy/(H*W)
#pragma once

#include <cstdint>

namespace lethe::kernels {

struct PoolShape {
  int64_t N = 0, C = 0, H = 0, W = 0;
  int64_t kernel = 2, stride = 2, pad = 0;
  int64_t P() const { return (H + 2 * pad - kernel) / stride + 1; }
  int64_t Q() const { return (W + 2 * pad - kernel) / stride + 1; }
};

// x: N*C*H*W, y / argmax: N*C*P*Q
template <typename T>
void maxpool2d_forward_cpu(const PoolShape& s, const T* x, T* y, int32_t* argmax);
template <typename T>
void maxpool2d_backward_cpu(const PoolShape& s, const T* gy, const int32_t* argmax, T* gx);
template <typename T>
void avgpool2d_forward_cpu(const PoolShape& s, const T* x, T* y);
template <typename T>
void avgpool2d_backward_cpu(const PoolShape& s, const T* gy, T* gx);
// x: N*C*HW, y: N*C
template <typename T>
void global_avgpool_forward_cpu(int64_t NC, int64_t HW, const T* x, T* y);
template <typename T>
void global_avgpool_backward_cpu(int64_t NC, int64_t HW, const T* gy, T* gx);

template <typename T>
void maxpool2d_forward_ref(const PoolShape& s, const T* x, T* y, int32_t* argmax);
template <typename T>
void maxpool2d_backward_ref(const PoolShape& s, const T* gy, const int32_t* argmax, T* gx);
template <typename T>
void avgpool2d_forward_ref(const PoolShape& s, const T* x, T* y);
template <typename T>
void avgpool2d_backward_ref(const PoolShape& s, const T* gy, T* gx);

}  // namespace lethe::kernels
