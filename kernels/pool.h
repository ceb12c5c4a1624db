// Pooling family over NCHW, window RxS (here `kernel` x `kernel`), stride, zero-size padding
// `pad` (PyTorch semantics: max pooling ignores padded positions; average pooling counts
// them, count_include_pad = true). Output P = (H + 2*pad - kernel)/stride + 1, same for Q.
//   max:  y = max over the window, argmax[n,c,p,q] = h*W + w of the winner (first one on ties)
//         backward: gx[argmax] += gy (overwrites gx first)
//   avg:  y = sum over the window / kernel^2; backward spreads gy/kernel^2 back
//   global average: y[n,c] = mean over H*W; backward gx = gy/(H*W)
#pragma once

#include <cstdint>

#include "kernels/cuda_exec.h"

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

// ---- CUDA (kernels/cuda/pool.cu): float32, device pointers ----
// The same semantics (first maximum on ties, argmax = h*W + w as int32, count_include_pad).
// Backward passes are gathers (one thread per input element, no atomics): deterministic, and
// max pooling's gx sums in the CPU's order, so it equals the CPU result bit for bit.
void maxpool2d_forward_cuda(const PoolShape& s, const float* x, float* y, int32_t* argmax,
                            const CudaExec& e = {});
void maxpool2d_backward_cuda(const PoolShape& s, const float* gy, const int32_t* argmax,
                             float* gx, const CudaExec& e = {});
void avgpool2d_forward_cuda(const PoolShape& s, const float* x, float* y,
                            const CudaExec& e = {});
void avgpool2d_backward_cuda(const PoolShape& s, const float* gy, float* gx,
                             const CudaExec& e = {});
void global_avgpool_forward_cuda(int64_t NC, int64_t HW, const float* x, float* y,
                                 const CudaExec& e = {});
void global_avgpool_backward_cuda(int64_t NC, int64_t HW, const float* gy, float* gx,
                                  const CudaExec& e = {});

}  // namespace lethe::kernels
