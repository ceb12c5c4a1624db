// Softmax family over the rows of an M x C matrix (logits of M samples, C classes).
//   softmax:      y = exp(x - max) / sum exp(x - max)
//   log_softmax:  y = x - max - log(sum exp(x - max))
//   softmax backward:      gx = y * (gy - sum_j gy_j y_j)
//   log_softmax backward:  gx = gy - exp(y) * sum_j gy_j
// cross_entropy with label smoothing eps (PyTorch semantics):
//   loss_i = -(1-eps) * logp[i, t_i] - eps/C * sum_j logp[i, j]
//   backward: glogits[i, j] = gloss_i * (softmax[i, j] - (1-eps)*[j == t_i] - eps/C)
// Labels outside [0, C) are a caller error (checked above this layer).
#pragma once

#include <cstdint>

#include "kernels/cuda_exec.h"

namespace lethe::kernels {

// x, y: M*C
template <typename T> void softmax_forward_cpu(int64_t M, int64_t C, const T* x, T* y);
template <typename T> void log_softmax_forward_cpu(int64_t M, int64_t C, const T* x, T* y);
template <typename T>
void softmax_backward_cpu(int64_t M, int64_t C, const T* y, const T* gy, T* gx);
template <typename T>
void log_softmax_backward_cpu(int64_t M, int64_t C, const T* y, const T* gy, T* gx);

// logits: M*C, labels: M, loss: M (per sample), logp: M*C (saved log-softmax for backward)
template <typename T>
void cross_entropy_forward_cpu(int64_t M, int64_t C, const T* logits, const int32_t* labels,
                               T smoothing, T* loss, T* logp);
// gloss: M (per-sample upstream gradient), glogits: M*C (overwritten)
template <typename T>
void cross_entropy_backward_cpu(int64_t M, int64_t C, const T* logp, const int32_t* labels,
                                T smoothing, const T* gloss, T* glogits);

template <typename T> void softmax_forward_ref(int64_t M, int64_t C, const T* x, T* y);
template <typename T> void log_softmax_forward_ref(int64_t M, int64_t C, const T* x, T* y);
template <typename T>
void cross_entropy_forward_ref(int64_t M, int64_t C, const T* logits, const int32_t* labels,
                               T smoothing, T* loss, T* logp);

// ---- CUDA (kernels/cuda/softmax.cu): float32, device pointers ----
// The same formulas and numerics (row max in float, exp in float, row sums in double).
// Versions (e.version): 1 "warp_row" (one warp per row), 2 "block_row" (one 256-thread block
// per row); the default (0) takes v1 for C <= 256 and v2 above. labels: M int32 on the device.
void softmax_forward_cuda(int64_t M, int64_t C, const float* x, float* y,
                          const CudaExec& e = {});
void log_softmax_forward_cuda(int64_t M, int64_t C, const float* x, float* y,
                              const CudaExec& e = {});
void softmax_backward_cuda(int64_t M, int64_t C, const float* y, const float* gy, float* gx,
                           const CudaExec& e = {});
void log_softmax_backward_cuda(int64_t M, int64_t C, const float* y, const float* gy,
                               float* gx, const CudaExec& e = {});
void cross_entropy_forward_cuda(int64_t M, int64_t C, const float* logits,
                                const int32_t* labels, float smoothing, float* loss,
                                float* logp, const CudaExec& e = {});
void cross_entropy_backward_cuda(int64_t M, int64_t C, const float* logp,
                                 const int32_t* labels, float smoothing, const float* gloss,
                                 float* glogits, const CudaExec& e = {});

/// Number of CUDA kernel versions of this family (valid e.version: 0 = default, 1..N).
int softmax_cuda_versions();
/// Short name of version v in 1..N ("warp_row", "block_row").
const char* softmax_cuda_version_name(int v);

}  // namespace lethe::kernels
